// A new flow whose two buckets are full while the flow table has free entries is counted as
// bucket_full, apart from table_full (a key-collision attack shows there, not as a full table),
// and --on-flow-table-full drop drops it under its own reason. The test knows the worker's
// hash secret (WorkerConfig::flow_secret), so it can find 16 flows sharing a victim's buckets;
// nobody outside can, since the secret comes from getrandom(2). Driven directly:
// process_burst() on a simulated clock.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include <rte_mbuf.h>

#include "dataplane/packet_parser.hpp"
#include "dataplane/worker.hpp"
#include "eal_env.hpp"
#include "unit/frame_builder.hpp"

namespace l7gate::test {
namespace {

// A UDP datagram from 198.18.x.y:sport to 198.19.0.1:53, unique per i.
std::vector<uint8_t> udp_frame(uint32_t i) {
    Ipv4Spec ip;
    ip.proto = ipproto::kUdp;
    ip.src = {198, 18, static_cast<uint8_t>(i >> 16), static_cast<uint8_t>(i >> 8)};
    ip.dst = {198, 19, 0, 1};
    UdpSpec u;
    u.sport = static_cast<uint16_t>(1024 + (i & 0xff));
    return ipv4_frame(ip, udp(u));
}

dp::FlowKey key_of(const std::vector<uint8_t>& f) {
    dp::PacketMeta pm;
    dp::parse_packet(f.data(), static_cast<uint32_t>(f.size()), pm);
    EXPECT_EQ(pm.kind, dp::PacketKind::Ip);
    return pm.key;
}

unsigned run(dp::Worker& w, rte_mempool* pool, const std::vector<std::vector<uint8_t>>& frames, uint64_t now) {
    dp::Burst& b = w.burst();
    unsigned n = 0;
    for (const auto& f : frames) {
        rte_mbuf* m = rte_pktmbuf_alloc(pool);
        EXPECT_NE(m, nullptr);
        std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(f.size())), f.data(), f.size());
        b.mbufs[n++] = m;
    }
    const unsigned nout = w.process_burst(0, n, now);
    for (unsigned k = 0; k < nout; ++k) {
        rte_pktmbuf_free(b.out[k]);
    }
    return nout;
}

void filled_bucket_pair(bool drop) {
    rte_mempool* pool = eal_pool();
    ASSERT_NE(pool, nullptr);
    const dp::HashKey secret{0x5eed5eed12345678ull, 0x0badc0ffee000001ull};
    dp::WorkerConfig cfg = eal_worker_config(0, 1);
    cfg.flows = 256;  // 64 buckets of 8 slots
    cfg.flow_secret = &secret;
    cfg.table_full_drop = drop;
    auto* w = new dp::Worker();
    ASSERT_EQ(w->init(cfg), nullptr);
    w->classifier_attach_for_test();
    const dp::FlowTable& t = w->flow_table();

    // The victim, and 16 flows whose bucket pair is the victim's (found by trying sources).
    const std::vector<uint8_t> victim = udp_frame(0);
    const uint32_t vh = t.hash(key_of(victim));
    const uint32_t v0 = t.primary_bucket(vh), v1 = t.alternative_bucket(vh);
    ASSERT_NE(v0, v1);
    std::vector<std::vector<uint8_t>> fill;
    for (uint32_t i = 1; fill.size() < 2 * dp::FlowTable::kBucketSlots && i < (1u << 22); ++i) {
        std::vector<uint8_t> f = udp_frame(i);
        const uint32_t h = t.hash(key_of(f));
        const uint32_t b0 = t.primary_bucket(h), b1 = t.alternative_bucket(h);
        if ((b0 == v0 && b1 == v1) || (b0 == v1 && b1 == v0)) {
            fill.push_back(std::move(f));
        }
    }
    ASSERT_EQ(fill.size(), 2 * dp::FlowTable::kBucketSlots);

    const uint64_t t0 = 1700000000ull * 1000000000ull;
    EXPECT_EQ(run(*w, pool, fill, t0), fill.size());
    const auto& c = w->counters();
    EXPECT_EQ(c.flows_created.get(), fill.size());
    EXPECT_EQ(c.bucket_full.get(), 0u);

    const unsigned out = run(*w, pool, {victim}, t0 + 1000);
    EXPECT_EQ(c.bucket_full.get(), 1u) << "the victim's buckets were full";
    EXPECT_EQ(c.table_full.get(), 0u) << "240 of 256 entries are free: not a full table";
    EXPECT_EQ(t.active(), fill.size());
    EXPECT_EQ(out, drop ? 0u : 1u);
    EXPECT_EQ(c.drops[static_cast<unsigned>(dp::DropReason::BucketFull)].get(), drop ? 1u : 0u);
    EXPECT_EQ(c.drops[static_cast<unsigned>(dp::DropReason::TableFull)].get(), 0u);

    // A flow with other buckets still gets its entry.
    for (uint32_t i = 1u << 22;; ++i) {
        std::vector<uint8_t> f = udp_frame(i);
        const uint32_t h = t.hash(key_of(f));
        const uint32_t b0 = t.primary_bucket(h), b1 = t.alternative_bucket(h);
        if (b0 != v0 && b0 != v1 && b1 != v0 && b1 != v1) {
            EXPECT_EQ(run(*w, pool, {f}, t0 + 2000), 1u);
            break;
        }
    }
    EXPECT_EQ(c.flows_created.get(), fill.size() + 1);
    EXPECT_EQ(c.bucket_full.get(), 1u);
    dp::NdpiArena::attach(nullptr);
    delete w;
}

TEST(BucketFull, FilledBucketPairIsCountedApartFromAFullTable) { filled_bucket_pair(false); }
TEST(BucketFull, FilledBucketPairIsDroppedUnderItsOwnReason) { filled_bucket_pair(true); }

} // namespace
} // namespace l7gate::test
