// The whole per-packet path of one worker (parse, flow table, nDPI classification) must not
// call malloc once running. This test interposes the C allocator for the process, feeds a
// worker generated traffic through real mbufs, and counts allocations made on its thread.
//
// Pass 1 warms nDPI up; pass 2 replays the same traffic with every address rewritten, so
// every flow is new again and goes through classification: pass 2 must allocate nothing.

#include <gtest/gtest.h>

#include <pcap/pcap.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <rte_eal.h>
#include <rte_mbuf.h>

#include "dataplane/ndpi_arena.hpp"
#include "dataplane/worker.hpp"
#include "eal_env.hpp"
#include "l7_frames.hpp"

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
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
void* aligned_alloc(size_t al, size_t n) {
    note();
    return __libc_memalign(al, n);
}
int posix_memalign(void** out, size_t al, size_t n) {
    note();
    *out = __libc_memalign(al, n);
    return *out == nullptr ? 12 : 0;
}
}
#endif

namespace l7gate::test {
namespace {

class WorkerAlloc : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        pool_ = eal_pool();
        ASSERT_NE(pool_, nullptr);
    }

    // Feeds frames to the worker in bursts on port index 0; returns allocations counted.
    uint64_t run(dp::Worker& w, const std::vector<std::vector<uint8_t>>& frames, uint64_t t0) {
        dp::Burst& b = w.burst();
        uint64_t now = t0;
        g_allocs.store(0);
        for (size_t i = 0; i < frames.size();) {
            unsigned n = 0;
            t_counting = false;
            for (; n < dp::kMaxBurst && i < frames.size(); ++n, ++i) {
                rte_mbuf* m = rte_pktmbuf_alloc(pool_);
                EXPECT_NE(m, nullptr);
                char* d = rte_pktmbuf_append(m, static_cast<uint16_t>(frames[i].size()));
                std::memcpy(d, frames[i].data(), frames[i].size());
                b.mbufs[n] = m;
            }
            t_counting = true;
            const unsigned nout = w.process_burst(0, n, now);
            t_counting = false;
            for (unsigned k = 0; k < nout; ++k) {
                rte_pktmbuf_free(b.out[k]);
            }
            now += 1000000;
        }
        return g_allocs.load();
    }

    static rte_mempool* pool_;
};
rte_mempool* WorkerAlloc::pool_ = nullptr;

TEST_F(WorkerAlloc, ClassificationPathDoesNotCallMalloc) {
#if defined(__SANITIZE_ADDRESS__)
    GTEST_SKIP() << "the sanitizer runtime owns malloc; counted in the release build";
#else
    const char* path = std::getenv("L7GATE_L7_PCAP");
    ASSERT_NE(path, nullptr) << "L7GATE_L7_PCAP must name the generated l7.pcap";
    auto frames = read_pcap(path);
    ASSERT_GT(frames.size(), 20u);

    auto* w = new dp::Worker();
    ASSERT_EQ(w->init(eal_worker_config(0, 1)), nullptr);
    w->classifier_attach_for_test();

    const uint64_t warm = run(*w, frames, 1700000000ull * 1000000000ull);
    for (auto& f : frames) {
        remap(f, 0x5a);
    }
    const auto& cc = w->classifier().counters();
    const uint64_t ndpi_warm = cc.ndpi_packets.get();
    const uint64_t allocs = run(*w, frames, 1700000100ull * 1000000000ull);
    const uint64_t ndpi_steady = cc.ndpi_packets.get() - ndpi_warm;
    RecordProperty("warmup_allocs", std::to_string(warm));
    std::printf("warm-up pass: %lu allocations; steady pass: %lu allocations, %lu packets through nDPI\n",
                static_cast<unsigned long>(warm), static_cast<unsigned long>(allocs),
                static_cast<unsigned long>(ndpi_steady));
    // The steady pass goes through nDPI: every payload packet until its flow is classified
    // (the handshakes of flows opened by a SYN are recorded, not fed: deferred).
    EXPECT_GT(ndpi_steady, frames.size() / 8) << "the traffic must go through nDPI";
    EXPECT_GT(cc.deferred.get(), 0u);
    EXPECT_GT(w->counters().flows_created.get(), 10u);
    EXPECT_EQ(allocs, 0u) << "malloc called in the per-packet path";
    EXPECT_EQ(w->classifier().arena_heap_fallbacks(), 0u);
    dp::NdpiArena::attach(nullptr);
    delete w;
#endif
}

} // namespace
} // namespace l7gate::test
