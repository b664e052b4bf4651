// Shaping cannot empty the mbuf pool (issue 18, point 2). One worker on two ring-backed ports
// and a pool of the default size for its configuration (dp::PoolSizing), from which a
// simulated PMD takes every received frame; the mbufs the descriptor rings would hold are
// kept aside. 200 hosts shaped per host (shape:perhost, 1 Mbit/s each) are each offered 10x
// their rate, next to an unshaped flow, for 600 ms of simulated time: the unshaped flow is
// forwarded completely, the PMD never misses an mbuf (rx_nombuf), and every shaped packet
// that did not leave is counted under a drop reason. Once with the default queue length
// (rate x max_delay), once with an explicit `queue: 512`, where the worker's backlog cap is
// what holds the pool.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "control/base/ndpi_names.hpp"
#include "control/policy/compiler.hpp"
#include "control/policy/config.hpp"
#include "control/policy/loader.hpp"
#include "dataplane/memory.hpp"
#include "dataplane/port.hpp"
#include "dataplane/worker.hpp"
#include "eal_env.hpp"
#include "unit/frame_builder.hpp"

namespace l7gate::test {
namespace {

constexpr unsigned kHosts = 200;
constexpr uint64_t kMs = 1000000;
constexpr uint64_t kT0 = 1700000000ull * 1000000000ull;
constexpr unsigned kSimMs = 600;
constexpr unsigned kFrameBytes = 1000;
constexpr unsigned kRxDesc = 256;
constexpr unsigned kTxDesc = 256;

const char* const kPolicyDefaultQueue = R"(version: 1
default_policy: p
shapers:
  perhost: {rate: 1mbit, burst: 4kb, per: host}
policies:
  p:
    default: pass
    ips: {192.0.2.0/24: "shape:perhost"}
)";
const char* const kPolicyLongQueue = R"(version: 1
default_policy: p
shapers:
  perhost: {rate: 1mbit, burst: 4kb, per: host, queue: 512}
policies:
  p:
    default: pass
    ips: {192.0.2.0/24: "shape:perhost"}
)";

std::vector<uint8_t> frame(Ip4 src, Ip4 dst, uint16_t sport, uint32_t seq) {
    Ipv4Spec ip;
    ip.src = src;
    ip.dst = dst;
    ip.proto = ipproto::kUdp;
    UdpSpec u;
    u.sport = sport;
    u.dport = 9;  // discard
    Bytes payload(kFrameBytes - 14 - 20 - 8, 0x5a);
    std::memcpy(payload.data(), &seq, sizeof(seq));
    return ipv4_frame(ip, udp(u, payload));
}

class ShaperPool : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        ASSERT_NE(eal_pool(), nullptr);  // EAL up
        for (int p = 0; p < 2; ++p) {
            const std::string n = "spool" + std::to_string(p);
            rx_[p] = rte_ring_create((n + "_rx").c_str(), 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
            tx_[p] = rte_ring_create((n + "_tx").c_str(), 8192, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
            ASSERT_TRUE(rx_[p] != nullptr && tx_[p] != nullptr);
            const int id = rte_eth_from_rings(n.c_str(), &rx_[p], 1, &tx_[p], 1, 0);
            ASSERT_GE(id, 0);
            port_[p] = static_cast<uint16_t>(id);
            dp::PortSetup setup;
            setup.pool = eal_pool();
            setup.rx_desc = kRxDesc;
            setup.tx_desc = kTxDesc;
            ASSERT_EQ(dp::port_start(port_[p], setup), "");
        }
    }
    static void TearDownTestSuite() {
        for (uint16_t p : port_) {
            dp::port_stop(p);
        }
    }

    // Runs the scenario under `policy_text`; the pool has the default size for one worker
    // on two ports with kRxDesc/kTxDesc descriptors.
    void run(const char* policy_text, const char* pool_name) {
        dp::PoolSizing sizing;
        sizing.workers = 1;
        sizing.ports = 2;
        sizing.rx_desc = kRxDesc;
        sizing.tx_desc = kTxDesc;
        const uint64_t mbufs = sizing.default_mbufs();
        rte_mempool* pool = rte_pktmbuf_pool_create(pool_name, static_cast<unsigned>(mbufs),
                                                    dp::PoolSizing::kCache, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
        ASSERT_NE(pool, nullptr);
        // What the descriptor rings of the worker's queues would hold, kept out of the pool.
        std::vector<rte_mbuf*> rings(2u * (kRxDesc + kTxDesc));
        ASSERT_EQ(rte_pktmbuf_alloc_bulk(pool, rings.data(), static_cast<unsigned>(rings.size())), 0);

        dp::NdpiArena::attach(nullptr);
        static ctl::NdpiNames names;
        static const std::string err = names.init("", "");
        ASSERT_EQ(err, "");
        ctl::PolicyConfig cfg;
        std::vector<ctl::PolicyError> errors;
        ASSERT_TRUE(ctl::load_policy_text(policy_text, "pool.yaml", ctl::PolicyFormat::Auto, cfg, errors));
        ctl::ReasonRegistry reasons;
        ctl::CompileContext ctx{&names, nullptr, &reasons, 1, 1};
        std::unique_ptr<dp::PolicySnapshot> snap = ctl::compile_policy(cfg, ctx, errors);
        ASSERT_NE(snap, nullptr);
        std::atomic<const dp::PolicySnapshot*> policy{snap.get()};

        dp::WorkerConfig wc = eal_worker_config(port_[0], port_[1]);
        wc.policy = &policy;
        wc.shaper_backlog = sizing.shaper_backlog_cap(mbufs);
        auto w = std::make_unique<dp::Worker>();
        ASSERT_EQ(w->init(wc), nullptr);
        w->classifier_attach_for_test();
        w->load_snapshots();

        // The offered traffic of one millisecond: each shaped host 10 Mbit/s in 1,000-byte
        // frames (1.25 a millisecond: 5 every 4 ms), the unshaped flow 8 frames.
        std::vector<std::vector<uint8_t>> shaped(kHosts);
        for (unsigned h = 0; h < kHosts; ++h) {
            shaped[h] = frame(Ip4{10, 1, static_cast<uint8_t>(h >> 8), static_cast<uint8_t>(h + 1)},
                              Ip4{192, 0, 2, 1}, static_cast<uint16_t>(20000 + h), 0);
        }
        uint64_t nombuf = 0, offered_shaped = 0, offered_free = 0, free_out = 0, shaped_out = 0;
        uint32_t seq = 0;
        std::vector<rte_mbuf*> pending;
        auto to_worker = [&](const std::vector<uint8_t>& f, uint64_t now) {
            rte_mbuf* m = rte_pktmbuf_alloc(pool);  // the PMD refilling a descriptor
            if (m == nullptr) {
                ++nombuf;
                return;
            }
            std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(f.size())), f.data(), f.size());
            pending.push_back(m);
            if (pending.size() == dp::kMaxBurst) {
                dp::Burst& b = w->burst();
                std::copy(pending.begin(), pending.end(), b.mbufs);
                const unsigned n = w->process_burst(0, static_cast<unsigned>(pending.size()), now);
                for (unsigned k = 0; k < n; ++k) {
                    const uint8_t* ip = rte_pktmbuf_mtod(b.out[k], const uint8_t*) + 14;
                    (ip[13] == 9 ? free_out : shaped_out) += 1;  // 10.9.0.1: the unshaped flow
                    rte_pktmbuf_free(b.out[k]);
                }
                pending.clear();
            }
        };
        auto drain_tx = [&] {
            for (rte_ring* r : tx_) {
                rte_mbuf* m = nullptr;
                while (rte_ring_sc_dequeue(r, reinterpret_cast<void**>(&m)) == 0) {
                    ++shaped_out;
                    rte_pktmbuf_free(m);
                }
            }
        };
        uint64_t now = kT0;
        for (unsigned ms = 0; ms < kSimMs; ++ms, now += kMs) {
            for (unsigned h = 0; h < kHosts; ++h) {
                const unsigned n = (ms % 4 == 0) ? 2 : 1;  // 5 frames every 4 ms
                for (unsigned k = 0; k < n; ++k) {
                    to_worker(shaped[h], now);
                    ++offered_shaped;
                }
                if (h % 25 == 0) {
                    to_worker(frame(Ip4{10, 9, 0, 1}, Ip4{10, 9, 0, 2}, 7000, seq++), now);
                    ++offered_free;
                }
            }
            w->drain_shaper(now);
            drain_tx();
            w->housekeeping(now);
        }
        // The last partial burst (unshaped frames complete it, unless the pool is empty).
        for (unsigned k = 0; k < dp::kMaxBurst && !pending.empty(); ++k) {
            to_worker(frame(Ip4{10, 9, 0, 1}, Ip4{10, 9, 0, 2}, 7000, seq++), now);
            ++offered_free;
        }
        const dp::WorkerCounters& c = w->counters();
        const uint64_t backlog = w->shaper().backlog();
        uint64_t by_reason = 0;
        for (dp::DropReason r : {dp::DropReason::ShaperOverflow, dp::DropReason::ShaperDelay,
                                 dp::DropReason::ShaperBacklog, dp::DropReason::ShaperHosts, dp::DropReason::Police}) {
            by_reason += c.drops[static_cast<size_t>(r)].get();
        }
        std::printf("pool %lu mbufs, backlog cap %u: offered %lu shaped + %lu unshaped; out %lu shaped, %lu unshaped; "
                    "rx_nombuf %lu; drops: overflow %lu, delay %lu, backlog %lu, hosts %lu; still queued %lu\n",
                    static_cast<unsigned long>(mbufs), wc.shaper_backlog, static_cast<unsigned long>(offered_shaped),
                    static_cast<unsigned long>(offered_free), static_cast<unsigned long>(shaped_out),
                    static_cast<unsigned long>(free_out), static_cast<unsigned long>(nombuf),
                    static_cast<unsigned long>(c.drops[static_cast<size_t>(dp::DropReason::ShaperOverflow)].get()),
                    static_cast<unsigned long>(c.drops[static_cast<size_t>(dp::DropReason::ShaperDelay)].get()),
                    static_cast<unsigned long>(c.drops[static_cast<size_t>(dp::DropReason::ShaperBacklog)].get()),
                    static_cast<unsigned long>(c.drops[static_cast<size_t>(dp::DropReason::ShaperHosts)].get()),
                    static_cast<unsigned long>(backlog));
        EXPECT_EQ(nombuf, 0u) << "the simulated PMD found the pool empty";
        EXPECT_EQ(free_out, offered_free) << "unshaped packets lost";
        EXPECT_EQ(c.drops[static_cast<size_t>(dp::DropReason::Policy)].get(), 0u);
        EXPECT_EQ(offered_shaped, shaped_out + by_reason + backlog) << "shaped packets neither sent, dropped nor queued";
        uint64_t shaper_dropped = 0;
        for (const dp::ShaperCounters& sc : c.shaper) {
            shaper_dropped += sc.dropped.get();
        }
        EXPECT_EQ(shaper_dropped, by_reason) << "every shaper drop under a reason";
        // Each host got about its rate: 1 Mbit/s for 0.6 s plus the 4 KB burst (125 frames in all).
        EXPECT_GT(shaped_out, kHosts * 60u);
        EXPECT_LT(shaped_out, kHosts * 85u);
        EXPECT_LE(backlog, wc.shaper_backlog);

        rte_pktmbuf_free_bulk(pending.data(), static_cast<unsigned>(pending.size()));  // pool ran out mid-burst
        w->flush_shaper();
        w->flush_flows();
        last_counters_backlog_drops_ = c.drops[static_cast<size_t>(dp::DropReason::ShaperBacklog)].get();
        dp::NdpiArena::attach(nullptr);
        w.reset();  // `c` goes with it
        drain_tx();
        rte_pktmbuf_free_bulk(rings.data(), static_cast<unsigned>(rings.size()));
        EXPECT_EQ(rte_mempool_in_use_count(pool), 0u);
        rte_mempool_free(pool);
    }

    static uint16_t port_[2];
    static rte_ring* rx_[2];
    static rte_ring* tx_[2];
    uint64_t last_counters_backlog_drops_ = 0;
};
uint16_t ShaperPool::port_[2] = {};
rte_ring* ShaperPool::rx_[2] = {};
rte_ring* ShaperPool::tx_[2] = {};

TEST_F(ShaperPool, PerHostShapingAtTenTimesTheRateLeavesThePoolToTheRest) {
    run(kPolicyDefaultQueue, "spool_a");
}

TEST_F(ShaperPool, TheBacklogCapHoldsWhenQueuesAreLong) {
    run(kPolicyLongQueue, "spool_b");
}

} // namespace
} // namespace l7gate::test
