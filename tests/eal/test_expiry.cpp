// A flood of new flows (one per packet) expires as fast as it arrives once its timeout has
// passed: the worker's expiry budget follows creation, so dead half-open flows do not fill the
// table. Driven directly: process_burst() and housekeeping() on a simulated clock.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include <rte_mbuf.h>

#include "dataplane/worker.hpp"
#include "eal_env.hpp"
#include "unit/frame_builder.hpp"

namespace l7gate::test {
namespace {

// A TCP SYN from 198.18.x.y:sport to 198.18.0.2:80, the 5-tuple unique per i.
std::vector<uint8_t> syn(uint32_t i) {
    Ipv4Spec ip;
    ip.src = {198, static_cast<uint8_t>(18 + (i >> 24 & 1)), static_cast<uint8_t>(i >> 16), static_cast<uint8_t>(i >> 8)};
    TcpSpec t;
    t.sport = static_cast<uint16_t>(1024 + (i & 0xff));
    return ipv4_frame(ip, tcp(t));
}

TEST(Expiry, KeepsPaceWithAFloodOfNewFlows) {
    rte_mempool* pool = eal_pool();
    ASSERT_NE(pool, nullptr);
    dp::WorkerConfig cfg = eal_worker_config(0, 1);
    cfg.flows = 65536;
    cfg.timeouts.seconds[static_cast<unsigned>(dp::TimeoutClass::TcpSyn)] = 1;
    auto* w = new dp::Worker();
    ASSERT_EQ(w->init(cfg), nullptr);
    w->classifier_attach_for_test();
    dp::Burst& b = w->burst();

    // 20,000 SYNs a second for 12 s, a burst of 32 every 1.6 ms, housekeeping every 16 bursts
    // (as the worker loop does): 512 flows created per housekeeping. Live flows settle at
    // about 2 s of them (timeout 1 s, second granularity): 40,000 of the 65,536 entries.
    const uint64_t t0 = 1700000000ull * 1000000000ull;
    const uint32_t total = 20000 * 12;
    uint32_t next = 0;
    unsigned bursts = 0;
    uint64_t peak = 0;
    for (uint64_t now = t0; next < total; now += 1600000) {
        unsigned n = 0;
        for (; n < dp::kMaxBurst && next < total; ++n) {
            const std::vector<uint8_t> f = syn(next++);
            rte_mbuf* m = rte_pktmbuf_alloc(pool);
            ASSERT_NE(m, nullptr);
            std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(f.size())), f.data(), f.size());
            b.mbufs[n] = m;
        }
        const unsigned nout = w->process_burst(0, n, now);
        for (unsigned k = 0; k < nout; ++k) {
            rte_pktmbuf_free(b.out[k]);
        }
        if ((++bursts & (dp::kHousekeepingEvery - 1)) == 0) {
            w->housekeeping(now);
            peak = std::max<uint64_t>(peak, w->counters().flows_active.get());
        }
    }
    const auto& c = w->counters();
    std::printf("created %lu, expired %lu, table full %lu, peak live %lu\n",
                static_cast<unsigned long>(c.flows_created.get()), static_cast<unsigned long>(c.flows_expired.get()),
                static_cast<unsigned long>(c.table_full.get()), static_cast<unsigned long>(peak));
    EXPECT_EQ(c.table_full.get(), 0u) << "dead flows filled the table";
    EXPECT_EQ(c.flows_created.get(), total);
    EXPECT_GT(c.flows_expired.get(), total - 3 * 20000u) << "all but the last seconds' flows expired";
    EXPECT_LT(peak, 50000u);
    dp::NdpiArena::attach(nullptr);
    delete w;
}

} // namespace
} // namespace l7gate::test
