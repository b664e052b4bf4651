// A peer port that stops draining: the worker's TX ring fills, every packet it cannot send
// is counted as tx_full, nothing crashes, and every mbuf comes back to the pool once the
// ring is emptied. The ports are ring-backed (rte_eth_from_rings): the test feeds port A's
// RX ring and never drains port B's TX ring; the worker runs its real loop on lcore 1.

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "dataplane/port.hpp"
#include "dataplane/worker.hpp"
#include "eal_env.hpp"

namespace l7gate::test {
namespace {

int run_worker(void* w) { return static_cast<dp::Worker*>(w)->run(); }

std::vector<uint8_t> udp_frame(uint32_t i) {
    std::vector<uint8_t> f(128, 0);
    const uint8_t hdr[] = {2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00,          // Ethernet
                           0x45, 0, 0, 114, 0, 0, 0, 0, 64, 17, 0, 0,               // IPv4 ...
                           198, 18, 1, static_cast<uint8_t>(i % 200), 198, 19, 0, 1,  // src, dst
                           0x13, 0x88, 0x17, 0x70, 0, 94, 0, 0};                     // UDP
    std::memcpy(f.data(), hdr, sizeof(hdr));
    return f;
}

TEST(TxFull, AnUndrainedPeerIsCountedAndLeaksNothing) {
    rte_mempool* pool = eal_pool();
    ASSERT_NE(pool, nullptr);
    const unsigned lcore = rte_get_next_lcore(rte_get_main_lcore(), 1, 0);
    if (lcore >= RTE_MAX_LCORE) {
        GTEST_SKIP() << "needs a second lcore for the worker";
    }
    // Port A: RX from `in` (fed here), TX into `a_tx` (unused). Port B: TX into `out`, 64
    // slots, never drained; RX from an empty ring.
    rte_ring* in = rte_ring_create("txfull_in", 4096, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    rte_ring* a_tx = rte_ring_create("txfull_atx", 4096, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    rte_ring* out = rte_ring_create("txfull_out", 64, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    rte_ring* b_rx = rte_ring_create("txfull_brx", 64, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    ASSERT_TRUE(in && a_tx && out && b_rx);
    const int pa = rte_eth_from_rings("txfull_a", &in, 1, &a_tx, 1, 0);
    const int pb = rte_eth_from_rings("txfull_b", &b_rx, 1, &out, 1, 0);
    ASSERT_GE(pa, 0);
    ASSERT_GE(pb, 0);
    dp::PortSetup setup;
    setup.pool = pool;
    setup.rx_desc = 256;
    setup.tx_desc = 256;
    ASSERT_EQ(dp::port_start(static_cast<uint16_t>(pa), setup), "");
    ASSERT_EQ(dp::port_start(static_cast<uint16_t>(pb), setup), "");

    auto* w = new dp::Worker();
    ASSERT_EQ(w->init(eal_worker_config(static_cast<uint16_t>(pa), static_cast<uint16_t>(pb))), nullptr);

    const unsigned before = rte_mempool_avail_count(pool);
    constexpr unsigned kFrames = 3000;
    ASSERT_EQ(rte_eal_remote_launch(run_worker, w, lcore), 0);
    for (unsigned i = 0; i < kFrames; ++i) {
        rte_mbuf* m = rte_pktmbuf_alloc(pool);
        ASSERT_NE(m, nullptr);
        const auto f = udp_frame(i);
        std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(f.size())), f.data(), f.size());
        while (rte_ring_enqueue(in, m) != 0) {
            std::this_thread::yield();  // the worker drains `in`
        }
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (w->counters().rx_packets.get() < kFrames && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    w->request_stop();
    rte_eal_wait_lcore(lcore);

    const dp::WorkerCounters& c = w->counters();
    const uint64_t sent = c.port[pb].tx_packets.get();
    const uint64_t full = c.drops[static_cast<unsigned>(dp::DropReason::TxFull)].get();
    std::printf("tx_full: %u frames into a peer whose 64-slot TX ring is never drained: %lu sent, %lu tx_full\n",
                kFrames, static_cast<unsigned long>(sent), static_cast<unsigned long>(full));
    EXPECT_EQ(c.rx_packets.get(), kFrames);
    EXPECT_EQ(sent, rte_ring_count(out));  // what the port took is exactly what sits in the ring
    EXPECT_EQ(sent, rte_ring_get_capacity(out));
    EXPECT_EQ(sent + full, kFrames);
    // Empty the stuck ring: every mbuf is back in the pool.
    rte_mbuf* m = nullptr;
    while (rte_ring_dequeue(out, reinterpret_cast<void**>(&m)) == 0) {
        rte_pktmbuf_free(m);
    }
    dp::port_stop(static_cast<uint16_t>(pa));
    dp::port_stop(static_cast<uint16_t>(pb));
    EXPECT_EQ(rte_mempool_avail_count(pool), before) << "mbufs leaked";
    dp::NdpiArena::attach(nullptr);
    delete w;
}

} // namespace
} // namespace l7gate::test
