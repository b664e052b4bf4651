// The shaper's pieces: the shared bucket's chunk take (alone and with two threads on one
// bucket), the per-packet admit of a flow in profile, and a queue's push + release.

#include <benchmark/benchmark.h>

#include <cstring>
#include <new>

#include <rte_eal.h>
#include <rte_mbuf.h>

#include "dataplane/memory.hpp"
#include "dataplane/shaper.hpp"

namespace {

using namespace l7gate;

rte_mempool* eal_pool() {
    static rte_mempool* pool = [] {
        const char* argv[] = {"bench", "--no-huge", "--no-pci", "-m", "256", "--log-level=*:error",
                              "--file-prefix", "l7g-bench-shaper", "--no-shconf"};
        if (rte_eal_init(sizeof(argv) / sizeof(argv[0]), const_cast<char**>(argv)) < 0) {
            return static_cast<rte_mempool*>(nullptr);
        }
        dp::memory_use_eal(true);
        return rte_pktmbuf_pool_create("bench_pool", 4095, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    }();
    return pool;
}

dp::ShaperProfile profile(uint64_t rate_bps) {
    dp::ShaperProfile p;
    p.name = "bench";
    p.rate_bps = rate_bps;
    p.burst_bytes = 1 << 20;
    p.queue_packets = 1024;
    p.max_delay_us = 10000000;
    dp::shaper_derive(p);
    return p;
}

dp::ShaperBuckets* buckets() {
    static dp::ShaperBuckets* b = new (dp::table_alloc(sizeof(dp::ShaperBuckets), 0)) dp::ShaperBuckets();
    return b;
}

// EAL up and the shaper initialised, or the benchmark skipped with the reason.
bool ready(benchmark::State& state, rte_mempool* pool, dp::Shaper& sh) {
    if (pool == nullptr) {
        state.SkipWithError("EAL did not start");
        return false;
    }
    if (sh.init(buckets(), 0) != nullptr) {
        state.SkipWithError("shaper init failed");
        return false;
    }
    return true;
}

// One chunk taken from the shared bucket per iteration (time moves on so it always can).
void BM_BucketTake(benchmark::State& state) {
    dp::SharedBucket& b = buckets()->flat(0, static_cast<unsigned>(state.thread_index()));
    dp::SharedBucket& shared = buckets()->flat(1, 0);
    dp::SharedBucket& bucket = state.range(0) != 0 ? shared : b;
    uint64_t now = 1000000000, retry = 0;
    for (auto _ : state) {
        now += 1000;
        benchmark::DoNotOptimize(dp::bucket_take(bucket, now, 1000, 1000000, retry));
    }
}
BENCHMARK(BM_BucketTake)->Arg(0)->ArgName("shared")->Threads(1);
BENCHMARK(BM_BucketTake)->Arg(1)->ArgName("shared")->Threads(2)->UseRealTime();

// A packet of a shape: flow in profile: Send, credit taken (a chunk from the bucket every
// ~1 ms of the rate's bytes).
void BM_ShaperAdmitInProfile(benchmark::State& state) {
    rte_mempool* pool = eal_pool();
    dp::Shaper sh;
    if (!ready(state, pool, sh)) {
        return;
    }
    const dp::ShaperProfile p = profile(100'000'000'000ull);
    rte_mbuf* m = rte_pktmbuf_alloc(pool);
    rte_pktmbuf_append(m, 512);
    const bool per_host = state.range(0) != 0;
    uint8_t addr[16] = {198, 18, 1, 10};
    const uint64_t key = per_host ? dp::shaper_host_key(dp::HashKey{0x1234, 0x5678}, 2, 1, addr) : 0;
    uint64_t now = 1000000000;
    dp::DropReason why = dp::DropReason::None;
    for (auto _ : state) {
        now += 5;  // 512 B every 5 ns: about 800 Gbit/s offered, under the credit it gets
        benchmark::DoNotOptimize(sh.admit(m, p, 2, false, 1, 1, key, now, why));
    }
    rte_pktmbuf_free(m);
}
BENCHMARK(BM_ShaperAdmitInProfile)->Arg(0)->ArgName("per_host");
BENCHMARK(BM_ShaperAdmitInProfile)->Arg(1)->ArgName("per_host");

// Over the rate: 32 packets queued, then released (the policy no longer has the shaper):
// the cost of the intrusive FIFO per packet.
void BM_ShaperQueueRelease(benchmark::State& state) {
    rte_mempool* pool = eal_pool();
    dp::Shaper sh;
    if (!ready(state, pool, sh)) {
        return;
    }
    const dp::ShaperProfile p = profile(8000);  // 1 KB/s: everything waits
    rte_mbuf* ms[32];
    for (auto& m : ms) {
        m = rte_pktmbuf_alloc(pool);
        rte_pktmbuf_append(m, 512);
    }
    dp::PolicySnapshot none;
    uint64_t now = 1000000000;
    dp::DropReason why = dp::DropReason::None;
    // Drain the bucket's initial burst first.
    while (sh.admit(ms[0], p, 3, false, 1, 1, 0, now, why) == dp::Admit::Send) {
    }
    sh.drain(&none, now, [](uint8_t, uint8_t, rte_mbuf*) {}, [](uint8_t, rte_mbuf*) {});
    for (auto _ : state) {
        for (rte_mbuf* m : ms) {
            benchmark::DoNotOptimize(sh.admit(m, p, 3, false, 1, 1, 0, now, why));
        }
        unsigned out = 0;
        sh.drain(&none, now, [&](uint8_t, uint8_t, rte_mbuf*) { ++out; }, [](uint8_t, rte_mbuf*) {});
        benchmark::DoNotOptimize(out);
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * 32);
    for (rte_mbuf* m : ms) {
        rte_pktmbuf_free(m);
    }
}
BENCHMARK(BM_ShaperQueueRelease);

} // namespace
