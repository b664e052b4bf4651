// Nothing a worker does once running may call the C allocator: the per-packet path (parse,
// flow table, nDPI classification, policy, shaper), draining the shaper, and housekeeping
// (flow expiry, which gives up on flows nDPI never named and hands flow records to the
// control thread). This test interposes every allocation entry point of the C library for
// the process, drives a worker through the calls Worker::run() makes, in its order, on a
// simulated clock, and counts allocations made on the driving thread while inside them.
//
// Pass 1 warms everything up; pass 2 replays the same traffic with every address rewritten,
// so every flow is new again, goes through classification and is expired: pass 2 must
// allocate nothing. A worker whose nDPI arena runs out must count every allocation it could
// not serve (heap fallbacks): nothing else may reach the C allocator.

#include <gtest/gtest.h>

#include <malloc.h>
#include <pcap/pcap.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <vector>

#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <ndpi_api.h>

#include "control/base/ndpi_names.hpp"
#include "control/policy/compiler.hpp"
#include "control/policy/config.hpp"
#include "control/policy/loader.hpp"
#include "dataplane/flow_record.hpp"
#include "dataplane/ndpi_arena.hpp"
#include "dataplane/port.hpp"
#include "dataplane/worker.hpp"
#include "eal_env.hpp"
#include "l7_frames.hpp"
#include "unit/frame_builder.hpp"

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void* __libc_valloc(size_t);
void* __libc_pvalloc(size_t);
}

namespace {
thread_local bool t_counting = false;
std::atomic<uint64_t> g_allocs{0};
inline void note() {
    if (t_counting) {
        g_allocs.fetch_add(1, std::memory_order_relaxed);
    }
}
} // namespace

// glibc lets a program replace malloc, calloc, realloc and free; its other entry points
// (memalign, valloc, ...) do not go through malloc, so each one is replaced here as well.
// operator new (plain and aligned) and strdup reach these through malloc/aligned_alloc.
#if !defined(__SANITIZE_ADDRESS__)
extern "C" {
void* malloc(size_t n) {
    note();
    return __libc_malloc(n);
}
void* calloc(size_t a, size_t b) {
    note();
    return __libc_calloc(a, b);
}
void* realloc(void* p, size_t n) {
    note();
    return __libc_realloc(p, n);
}
void* reallocarray(void* p, size_t a, size_t b) {
    size_t n;
    if (__builtin_mul_overflow(a, b, &n)) {
        errno = ENOMEM;
        return nullptr;
    }
    note();
    return __libc_realloc(p, n);
}
void* memalign(size_t al, size_t n) {
    note();
    return __libc_memalign(al, n);
}
void* aligned_alloc(size_t al, size_t n) {
    note();
    return __libc_memalign(al, n);
}
int posix_memalign(void** out, size_t al, size_t n) {
    note();
    *out = __libc_memalign(al, n);
    return *out == nullptr ? ENOMEM : 0;
}
void* valloc(size_t n) {
    note();
    return __libc_valloc(n);
}
void* pvalloc(size_t n) {
    note();
    return __libc_pvalloc(n);
}
}
#endif

namespace l7gate::test {
namespace {

using Frames = std::vector<std::vector<uint8_t>>;

constexpr uint64_t kSec = 1000000000ull;

// Shapes and polices some of the l7 set's servers (198.19.1.x: shape, 198.19.2.x: police),
// through a bucket small enough to queue, delay and drop; drops one hostname.
const char* const kPolicy = R"(version: 1
default_policy: p
shapers:
  s: {rate: 2mbit, burst: 4kb, queue: 16, max_delay: 5ms}
policies:
  p:
    default: pass
    ips: {198.19.1.0/24: "shape:s", 198.19.2.0/24: "police:s"}
    hostnames: {"*.youtube.com": drop}
)";

// Flows nDPI cannot name, so that they end unclassified (ndpi_detection_giveup): per i, a
// UDP exchange of random payloads to an unassigned port (more packets than nDPI is given for
// UDP, so it gives up in the per-packet path), a TCP connection carrying random bytes, and a
// bare SYN nobody answers (given up from its record at expiry). `net` keeps passes apart.
// (Unused in the sanitizer build, which skips the tests that feed it.)
[[maybe_unused]] Frames unknown_flows(unsigned flows, uint8_t net) {
    std::mt19937 rng(net);
    auto noise = [&rng](size_t n) {
        Bytes b(n);
        for (uint8_t& x : b) {
            x = static_cast<uint8_t>(rng());
        }
        return b;
    };
    Frames out;
    for (unsigned i = 0; i < flows; ++i) {
        const Ip4 client = ip4(198, 18, net, static_cast<uint8_t>(1 + i));
        const Ip4 server = ip4(198, 19, static_cast<uint8_t>(100 + net), static_cast<uint8_t>(1 + i));
        const uint16_t cport = static_cast<uint16_t>(40000 + i);
        Ipv4Spec up;
        up.src = client;
        up.dst = server;
        Ipv4Spec down;
        down.src = server;
        down.dst = client;

        up.proto = down.proto = ipproto::kUdp;
        UdpSpec uu;
        uu.sport = cport;
        uu.dport = 39617;
        UdpSpec ud;
        ud.sport = 39617;
        ud.dport = cport;
        for (unsigned k = 0; k < 30; ++k) {
            out.push_back((k & 1) == 0 ? ipv4_frame(up, udp(uu, noise(80 + k)))
                                       : ipv4_frame(down, udp(ud, noise(120 + k))));
        }

        up.proto = down.proto = ipproto::kTcp;
        TcpSpec t;
        t.sport = cport;
        t.dport = 39618;
        t.seq = 1000;
        t.flags = dp::tcp_flag::kSyn;
        out.push_back(ipv4_frame(up, tcp(t)));
        TcpSpec r;
        r.sport = 39618;
        r.dport = cport;
        r.seq = 5000;
        r.ack = 1001;
        r.flags = dp::tcp_flag::kSyn | dp::tcp_flag::kAck;
        out.push_back(ipv4_frame(down, tcp(r)));
        t.seq = 1001;
        t.ack = 5001;
        t.flags = dp::tcp_flag::kAck;
        out.push_back(ipv4_frame(up, tcp(t)));
        t.flags = dp::tcp_flag::kAck | dp::tcp_flag::kPsh;
        out.push_back(ipv4_frame(up, tcp(t, noise(300))));
        r.seq = 5001;
        r.ack = 1301;
        r.flags = dp::tcp_flag::kAck | dp::tcp_flag::kPsh;
        out.push_back(ipv4_frame(down, tcp(r, noise(200))));

        TcpSpec syn;
        syn.sport = static_cast<uint16_t>(cport + 1000);
        syn.dport = 39619;
        out.push_back(ipv4_frame(up, tcp(syn)));
    }
    return out;
}

class WorkerAlloc : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        pool_ = eal_pool();
        ASSERT_NE(pool_, nullptr);
        // Two ring-backed ports, so that what the shaper releases is really sent.
        for (int p = 0; p < 2; ++p) {
            const std::string n = "walloc" + std::to_string(p);
            rx_[p] = rte_ring_create((n + "_rx").c_str(), 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
            tx_[p] = rte_ring_create((n + "_tx").c_str(), 4096, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
            ASSERT_TRUE(rx_[p] != nullptr && tx_[p] != nullptr);
            const int id = rte_eth_from_rings(n.c_str(), &rx_[p], 1, &tx_[p], 1, 0);
            ASSERT_GE(id, 0);
            port_[p] = static_cast<uint16_t>(id);
            dp::PortSetup setup;
            setup.pool = pool_;
            setup.rx_desc = 256;
            setup.tx_desc = 256;
            ASSERT_EQ(dp::port_start(port_[p], setup), "");
        }
        flow_log_ = rte_ring_create_elem("walloc_log", sizeof(dp::FlowRecord), 8192, 0,
                                         RING_F_SP_ENQ | RING_F_SC_DEQ);
        ASSERT_NE(flow_log_, nullptr);
    }
    static void TearDownTestSuite() {
        for (uint16_t p : port_) {
            dp::port_stop(p);
        }
    }

    void SetUp() override {
        frames_ = l7_frames();
        ASSERT_GT(frames_.size(), 20u) << "L7GATE_L7_PCAP must name the generated l7.pcap";
        dp::NdpiArena::attach(nullptr);  // nDPI's start-up allocations: the C heap
        static ctl::NdpiNames names;
        static const std::string err = names.init("", "");
        ASSERT_EQ(err, "");
        ctl::PolicyConfig cfg;
        std::vector<ctl::PolicyError> errors;
        ASSERT_TRUE(ctl::load_policy_text(kPolicy, "alloc.yaml", ctl::PolicyFormat::Auto, cfg, errors));
        ctl::CompileContext ctx{&names, nullptr, &reasons_, 1, 1};
        snapshot_ = ctl::compile_policy(cfg, ctx, errors);
        ASSERT_NE(snapshot_, nullptr) << (errors.empty() ? "" : errors.front().str());
        policy_.store(snapshot_.get());
    }
    void TearDown() override {
        dp::NdpiArena::attach(nullptr);
        if (w_ != nullptr) {
            w_->flush_flows();
            w_->flush_shaper();
        }
        drain_outputs();
        delete w_;
        w_ = nullptr;
        policy_.store(nullptr);
    }

    void start(size_t arena_bytes, uint32_t active_timeout_s = 0) {
        dp::WorkerConfig cfg = eal_worker_config(port_[0], port_[1]);
        cfg.classifier.arena_bytes = arena_bytes;
        cfg.policy = &policy_;
        cfg.flow_log = flow_log_;
        cfg.active_timeout_s = active_timeout_s;
        w_ = new dp::Worker();
        dp::NdpiArena::attach(nullptr);  // start-up allocations: the C heap, as on the control thread
        ASSERT_EQ(w_->init(cfg), nullptr);
        w_->classifier_attach_for_test();
    }

    // What the worker sent (ports' TX rings) and the flow records it handed over, emptied
    // outside the counted calls. Returns the number of flow records.
    static uint64_t drain_outputs() {
        for (rte_ring* r : tx_) {
            rte_mbuf* m = nullptr;
            while (rte_ring_sc_dequeue(r, reinterpret_cast<void**>(&m)) == 0) {
                rte_pktmbuf_free(m);
            }
        }
        uint64_t records = 0;
        dp::FlowRecord rec;
        while (rte_ring_sc_dequeue_elem(flow_log_, &rec, sizeof(rec)) == 0) {
            ++records;
        }
        return records;
    }

    // One iteration of Worker::run()'s loop, at `now`, with `n` frames in burst().mbufs
    // received on port index `pi` (none: an idle iteration). Only the worker's calls count.
    void iteration(uint64_t iter, unsigned pi, unsigned n, uint64_t now) {
        dp::Burst& b = w_->burst();
        t_counting = true;
        w_->load_snapshots();
        const unsigned nout = n != 0 ? w_->process_burst(pi, n, now) : 0;
        t_counting = false;
        peak_states_ = std::max(peak_states_, w_->classifier().dpi_in_use());
        for (unsigned k = 0; k < nout; ++k) {
            rte_pktmbuf_free(b.out[k]);  // what the TX burst would take
        }
        t_counting = true;
        if (!w_->shaper().idle()) {
            w_->drain_shaper(now);
        }
        if (n == 0 || (iter & (dp::kHousekeepingEvery - 1)) == 0) {
            w_->housekeeping(now);
        }
        t_counting = false;
        drain_outputs();
    }

    // Feeds `frames` in bursts, 1 ms apart, then lets time run in idle iterations (100 ms
    // apart) until every flow has expired and the shaper is empty. Returns allocations
    // counted; `now` ends where the pass ended.
    uint64_t pass(const Frames& frames, uint64_t& now) {
        g_allocs.store(0);
        uint64_t iter = 1;
        for (size_t i = 0; i < frames.size(); ++iter) {
            dp::Burst& b = w_->burst();
            unsigned n = 0;
            for (; n < dp::kMaxBurst && i < frames.size(); ++n, ++i) {
                rte_mbuf* m = rte_pktmbuf_alloc(pool_);
                EXPECT_NE(m, nullptr);
                char* d = rte_pktmbuf_append(m, static_cast<uint16_t>(frames[i].size()));
                std::memcpy(d, frames[i].data(), frames[i].size());
                b.mbufs[n] = m;
            }
            iteration(iter, static_cast<unsigned>(iter & 1), n, now);
            now += 1000000;
        }
        // Twice the longest timeout (TCP established, 300 s): a list head looked at less than
        // a timeout after its last packet goes back to the tail for one more round.
        const uint64_t until = now + 700 * kSec;
        for (; now < until; ++iter, now += 100000000) {
            iteration(iter, 0, 0, now);
            if (w_->flow_table().active() == 0 && w_->shaper().idle()) {
                break;
            }
        }
        EXPECT_EQ(w_->flow_table().active(), 0u) << "flows left after 700 s idle";
        now += kSec;
        return g_allocs.load();
    }

    static rte_mempool* pool_;
    static uint16_t port_[2];
    static rte_ring* rx_[2];
    static rte_ring* tx_[2];
    static rte_ring* flow_log_;
    Frames frames_;
    ctl::ReasonRegistry reasons_;
    std::unique_ptr<dp::PolicySnapshot> snapshot_;
    std::atomic<const dp::PolicySnapshot*> policy_{nullptr};
    dp::Worker* w_ = nullptr;
    uint32_t peak_states_ = 0;  // most nDPI states in use after a burst
};
rte_mempool* WorkerAlloc::pool_ = nullptr;
uint16_t WorkerAlloc::port_[2] = {};
rte_ring* WorkerAlloc::rx_[2] = {};
rte_ring* WorkerAlloc::tx_[2] = {};
rte_ring* WorkerAlloc::flow_log_ = nullptr;

// The counting itself: every entry point is seen, called directly or through C++.
TEST_F(WorkerAlloc, InterposerCountsEveryAllocationEntryPoint) {
#if defined(__SANITIZE_ADDRESS__)
    GTEST_SKIP() << "the sanitizer runtime owns malloc; counted in the release build";
#else
    // Called through volatile pointers: the compiler may not pair and drop them.
    void* (*volatile f_malloc)(size_t) = malloc;
    void* (*volatile f_calloc)(size_t, size_t) = calloc;
    void* (*volatile f_realloc)(void*, size_t) = realloc;
    void* (*volatile f_reallocarray)(void*, size_t, size_t) = reallocarray;
    void* (*volatile f_memalign)(size_t, size_t) = memalign;
    void* (*volatile f_aligned_alloc)(size_t, size_t) = aligned_alloc;
    int (*volatile f_posix_memalign)(void**, size_t, size_t) = posix_memalign;
    void* (*volatile f_valloc)(size_t) = valloc;
    void* (*volatile f_pvalloc)(size_t) = pvalloc;
    char* (*volatile f_strdup)(const char*) = strdup;
    const char* const names[] = {"malloc", "calloc", "realloc", "reallocarray", "memalign",
                                 "aligned_alloc", "posix_memalign", "valloc", "pvalloc", "strdup"};
    auto call = [&](int k) -> void* {
        void* p = nullptr;
        switch (k) {
        case 0: return f_malloc(24);
        case 1: return f_calloc(3, 8);
        case 2: return f_realloc(nullptr, 24);
        case 3: return f_reallocarray(nullptr, 3, 8);
        case 4: return f_memalign(64, 24);
        case 5: return f_aligned_alloc(64, 64);
        case 6: return f_posix_memalign(&p, 64, 24) == 0 ? p : nullptr;
        case 7: return f_valloc(24);
        case 8: return f_pvalloc(24);
        default: return f_strdup("l7gate");
        }
    };
    for (int k = 0; k < 10; ++k) {
        g_allocs.store(0);
        t_counting = true;
        void* p = call(k);
        t_counting = false;
        EXPECT_NE(p, nullptr) << names[k];
        EXPECT_EQ(g_allocs.load(), 1u) << names[k];
        free(p);
    }
    struct alignas(128) Wide {
        char c[128];
    };
    g_allocs.store(0);
    t_counting = true;
    auto* i = new int(7);
    auto* v = new std::vector<uint32_t>(100);
    auto* wide = new Wide();  // aligned operator new
    t_counting = false;
    EXPECT_GE(g_allocs.load(), 3u) << "operator new";
    delete wide;
    delete v;
    delete i;
#endif
}

TEST_F(WorkerAlloc, RunningWorkerDoesNotAllocate) {
#if defined(__SANITIZE_ADDRESS__)
    GTEST_SKIP() << "the sanitizer runtime owns malloc; counted in the release build";
#else
    start(0);  // sized from --dpi-flows (1,024 here)
    Frames warm_frames = frames_;
    const Frames u1 = unknown_flows(40, 1);
    warm_frames.insert(warm_frames.end(), u1.begin(), u1.end());
    Frames steady_frames = frames_;
    for (auto& f : steady_frames) {
        remap(f, 0x5a);
    }
    const Frames u2 = unknown_flows(40, 2);
    steady_frames.insert(steady_frames.end(), u2.begin(), u2.end());

    uint64_t now = 1700000000ull * kSec;
    const uint64_t warm = pass(warm_frames, now);

    const dp::WorkerCounters& c = w_->counters();
    const auto& cc = w_->classifier().counters();
    const dp::ShaperCounters& sc = c.shaper[0];
    const uint64_t ndpi0 = cc.ndpi_packets.get();
    const uint64_t giveups0 = cc.giveups.get();
    const uint64_t no_payload0 = cc.deferred_no_payload.get();
    const uint64_t expired0 = c.flows_expired.get();
    const uint64_t records0 = c.flow_log_records.get();
    const uint64_t delayed0 = sc.delayed.get();
    const uint64_t shaper_dropped0 = sc.dropped.get();
    const uint64_t evaluations0 = c.policy_evaluations.get();

    const uint64_t allocs = pass(steady_frames, now);

    const uint64_t ndpi = cc.ndpi_packets.get() - ndpi0;
    const uint64_t giveups = cc.giveups.get() - giveups0;
    const uint64_t expired = c.flows_expired.get() - expired0;
    const uint64_t records = c.flow_log_records.get() - records0;
    RecordProperty("warmup_allocs", std::to_string(warm));
    std::printf("warm-up pass: %lu allocations; steady pass: %lu allocations, %lu packets through nDPI, "
                "%lu flows expired (%lu given up), %lu shaped packets delayed\n",
                static_cast<unsigned long>(warm), static_cast<unsigned long>(allocs),
                static_cast<unsigned long>(ndpi), static_cast<unsigned long>(expired),
                static_cast<unsigned long>(giveups), static_cast<unsigned long>(sc.delayed.get() - delayed0));
    // The steady pass went through every path it is meant to cover.
    EXPECT_GT(ndpi, steady_frames.size() / 8) << "the traffic must go through nDPI";
    EXPECT_GT(c.policy_evaluations.get(), evaluations0);
    EXPECT_GT(sc.delayed.get(), delayed0) << "nothing waited in the shaper";
    EXPECT_GT(sc.dropped.get(), shaper_dropped0) << "the shaper dropped nothing";
    EXPECT_GE(expired, 3 * 40u) << "the flows must end by expiry";
    EXPECT_EQ(records, expired) << "every expired flow hands over a record";
    // nDPI's heuristics name a few of the random UDP exchanges; most end given up.
    EXPECT_GE(giveups, 2 * 40u) << "flows nDPI cannot name must end given up";
    EXPECT_GE(cc.deferred_no_payload.get() - no_payload0, 40u) << "bare SYNs are given up at expiry";
    EXPECT_EQ(c.flow_log_lost.get(), 0u);

    EXPECT_EQ(allocs, 0u) << "the C allocator was called by a running worker";
    EXPECT_EQ(cc.arena_refused.get(), 0u);
    EXPECT_EQ(cc.arena_full.get(), 0u);
    const dp::NdpiArena& arena = w_->classifier().arena();
    std::printf("nDPI arena: %zu bytes, peak %lu bytes in use, peak %u states in use (%.0f bytes/state), "
                "%lu flows classified\n",
                arena.size(), static_cast<unsigned long>(arena.peak_bytes()), peak_states_,
                static_cast<double>(arena.peak_bytes()) / static_cast<double>(peak_states_),
                static_cast<unsigned long>(cc.classified.get()));
#endif
}

// --ipfix-active-timeout: a UDP flow with a packet every 200 ms for 5.8 s is reported while it
// lives (FlowEnd::Active) about every second, each record naming the totals the previous one
// had; the last record (flush) has the flow's totals; nothing allocated on the way.
TEST_F(WorkerAlloc, ActiveTimeoutReportsALongFlowWithoutAllocating) {
#if defined(__SANITIZE_ADDRESS__)
    GTEST_SKIP() << "the sanitizer runtime owns malloc; counted in the release build";
#else
    start(0, 1);
    drain_outputs();
    Frames frames = unknown_flows(1, 9);
    frames.resize(30);  // the UDP exchange, both ways
    std::vector<dp::FlowRecord> recs;
    auto collect = [&recs] {
        dp::FlowRecord r;
        while (rte_ring_sc_dequeue_elem(flow_log_, &r, sizeof(r)) == 0) {
            recs.push_back(r);
        }
    };
    uint64_t now = 1700000000ull * kSec;
    uint64_t allocs = 0;
    for (size_t i = 0; i < frames.size(); ++i, now += 200000000) {
        dp::Burst& b = w_->burst();
        rte_mbuf* m = rte_pktmbuf_alloc(pool_);
        ASSERT_NE(m, nullptr);
        std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(frames[i].size())), frames[i].data(),
                    frames[i].size());
        b.mbufs[0] = m;
        g_allocs.store(0);
        t_counting = true;
        w_->load_snapshots();
        const unsigned nout = w_->process_burst(0, 1, now);
        // An idle worker's loop until the next packet: housekeeping until the report cursor
        // went round the table. The steps are paced (a pass in an eighth of the timeout, here
        // 125 ms), so the clock moves on between them, within the 200 ms to the next packet.
        const uint32_t steps = w_->flow_table().capacity() / dp::kActiveBudget;
        for (uint32_t h = 0; h < steps; ++h) {
            w_->housekeeping(now + uint64_t{h} * (200000000u / steps));
        }
        t_counting = false;
        allocs += g_allocs.load();
        for (unsigned k = 0; k < nout; ++k) {
            rte_pktmbuf_free(b.out[k]);
        }
        collect();
    }
    w_->flush_flows();
    collect();
    drain_outputs();
    EXPECT_EQ(allocs, 0u) << "the C allocator was called by a running worker";
    ASSERT_GE(recs.size(), 5u) << "5.8 s at a 1 s active timeout: 4 interim records at least";
    uint64_t prev_p[2] = {0, 0};
    uint64_t prev_b[2] = {0, 0};
    uint64_t last_end = 0;
    for (size_t i = 0; i < recs.size(); ++i) {
        const dp::FlowRecord& r = recs[i];
        const bool last = i + 1 == recs.size();
        EXPECT_EQ(r.end, static_cast<uint8_t>(last ? dp::FlowEnd::Shutdown : dp::FlowEnd::Active)) << i;
        EXPECT_EQ(r.first_ns, recs[0].first_ns) << i;
        if (!last) {
            EXPECT_GE(r.last_ns, (i == 0 ? r.first_ns : last_end) + kSec) << i << ": too soon";
        }
        last_end = r.last_ns;
        for (unsigned d = 0; d < 2; ++d) {
            EXPECT_EQ(r.reported_packets[d], prev_p[d]) << i;
            EXPECT_EQ(r.reported_bytes[d], prev_b[d]) << i;
            EXPECT_GT(r.packets[d], prev_p[d]) << i << ": an interim record with nothing new";
            prev_p[d] = r.packets[d];
            prev_b[d] = r.bytes[d];
        }
    }
    EXPECT_EQ(prev_p[0] + prev_p[1], frames.size());
    EXPECT_EQ(w_->counters().flow_log_lost.get(), 0u);
#endif
}

// A worker whose nDPI arena is too small for the traffic: flows in classification are given
// up once the arena runs low (counted, arena_full), and the worker never reaches the C
// allocator for nDPI.
TEST_F(WorkerAlloc, ExhaustedArenaGivesFlowsUpWithoutAllocating) {
#if defined(__SANITIZE_ADDRESS__)
    GTEST_SKIP() << "the sanitizer runtime owns malloc; counted in the release build";
#else
    // libgcrypt takes a 512 KiB block of each worker's arena at its first QUIC decryption and
    // keeps it; beyond it 32 KiB, less than the traffic's flows need together (about 90 KB).
    constexpr size_t kGcrypt = 512 * 1024;
    constexpr size_t kArena = kGcrypt + 32 * 1024;
    uint64_t now = 1700001000ull * kSec;
    // nDPI and libgcrypt initialise a few things in the process on their first use, from the
    // C heap: done once, on a worker with the default arena that is kept.
    static dp::Worker* warm = nullptr;
    if (warm == nullptr) {
        start(0);
        pass(frames_, now);
        warm = w_;
        w_ = nullptr;
    }
    start(kArena);
    Frames frames = frames_;
    for (auto& f : frames) {
        remap(f, 0x33);
    }
    const Frames u = unknown_flows(20, 3);
    frames.insert(frames.end(), u.begin(), u.end());

    const uint64_t allocs = pass(frames, now);
    const dp::NdpiArena& arena = w_->classifier().arena();
    const auto& cc = w_->classifier().counters();
    std::printf("%zu-byte arena: %zu bytes carved, %lu allocations, %lu flows given up for it, %lu requests refused\n",
                kArena, arena.region_used(), static_cast<unsigned long>(allocs),
                static_cast<unsigned long>(cc.arena_full.get()), static_cast<unsigned long>(cc.arena_refused.get()));
    EXPECT_GT(cc.ndpi_packets.get(), 0u);
    EXPECT_GT(arena.region_used(), kGcrypt) << "the arena was used before it ran low";
    EXPECT_GT(cc.arena_full.get(), 0u) << "the arena never ran low: the test needs a smaller one";
    EXPECT_EQ(allocs, 0u) << "a worker whose arena ran out called the C allocator";
    EXPECT_LE(arena.in_use_bytes(), kGcrypt + 64 * 1024) << "blocks still held after every flow ended";
#endif
}

// The arena itself: a request it cannot serve is refused (NULL) and counted, never taken
// from the C heap, and what is freed is served again.
TEST_F(WorkerAlloc, ArenaRefusesBeyondItsRegion) {
#if defined(__SANITIZE_ADDRESS__)
    GTEST_SKIP() << "the sanitizer runtime owns malloc; counted in the release build";
#else
    dp::Counter refused;
    dp::NdpiArena arena;
    ASSERT_TRUE(arena.init(64 * 1024, 0, &refused));
    std::vector<void*> got(100);
    g_allocs.store(0);
    t_counting = true;
    for (void*& p : got) {
        p = arena.alloc(1000);  // 1,016 bytes with the header: 1 KiB class
    }
    void* big = arena.alloc(2u << 20);  // beyond the largest class
    t_counting = false;
    EXPECT_EQ(g_allocs.load(), 0u);
    EXPECT_EQ(big, nullptr);
    EXPECT_EQ(std::count(got.begin(), got.end(), nullptr), 100 - 64);
    EXPECT_EQ(refused.get(), 100u - 64 + 1);
    EXPECT_EQ(arena.headroom(), 0u);
    // (Blocks go back through the hook, which knows their arena from the header.)
    dp::NdpiArena::attach(&arena);
    for (void* p : got) {
        if (p != nullptr) {
            ndpi_free(p);
        }
    }
    EXPECT_EQ(arena.headroom(), 64u * 1024);
    void* again = ndpi_malloc(1000);
    EXPECT_NE(again, nullptr);
    ndpi_free(again);
    dp::NdpiArena::attach(nullptr);
    EXPECT_EQ(arena.in_use(), 0u);
#endif
}

} // namespace
} // namespace l7gate::test
