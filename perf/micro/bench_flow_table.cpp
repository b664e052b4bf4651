// FlowTable: burst lookup (with its prefetch stages) against one-by-one lookup at 10k, 100k
// and 1M resident flows, insert, and expiry. Without EAL the table lives on the C heap
// (dp::table_alloc falls back to aligned_alloc), as in the unit tests.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "dataplane/flow_key.hpp"
#include "dataplane/flow_table.hpp"

namespace l7gate::perf {
namespace {

using dp::FlowEntry;
using dp::FlowKey;
using dp::FlowTable;

constexpr unsigned kBurst = 32;

// n distinct TCP flows: client 198.18.0.0/15 (131072 addresses) x source port, towards 256
// servers in 198.19.0.0/16 on 443; canonical keys as the parser makes them.
struct KeySet {
    std::vector<FlowKey> keys;
    std::vector<uint32_t> hashes;
};

// One fixed hash secret, so that every table and every precomputed hash agree.
const dp::HashKey kBenchSecret{0x0123456789abcdefull, 0xfedcba9876543210ull};
const dp::FlowHasher kBenchHasher(kBenchSecret);  // the construction the tables pick

KeySet make_keys(uint32_t n) {
    KeySet s;
    s.keys.resize(n);
    s.hashes.resize(n);
    for (uint32_t i = 0; i < n; ++i) {
        const uint32_t c = i & 0x1ffffu;
        const uint8_t src[4] = {198, static_cast<uint8_t>(18 + (c >> 16)), static_cast<uint8_t>(c >> 8),
                                static_cast<uint8_t>(c)};
        const uint8_t dst[4] = {198, 19, static_cast<uint8_t>((i * 7) >> 8), static_cast<uint8_t>(i * 7)};
        dp::make_flow_key(s.keys[i], 4, 6, 0, src, dst, static_cast<uint16_t>(1024 + (i >> 17)), 443);
        s.hashes[i] = kBenchHasher(s.keys[i]);
    }
    return s;
}

// A full table of n flows (capacity n) and a random lookup order, built once per size.
struct Filled {
    KeySet ks;
    std::unique_ptr<FlowTable> table;
    std::vector<uint32_t> order;  // random permutation of [0, n)
};

Filled& filled(uint32_t n) {
    static std::map<uint32_t, std::unique_ptr<Filled>> cache;
    auto& slot = cache[n];
    if (!slot) {
        slot = std::make_unique<Filled>();
        slot->ks = make_keys(n);
        slot->table = std::make_unique<FlowTable>();
        if (!slot->table->init(n, dp::FlowTimeouts{}, 0, kBenchSecret)) {
            std::fprintf(stderr, "bench_flow_table: cannot allocate a table of %u\n", n);
            std::abort();
        }
        for (uint32_t i = 0; i < n; ++i) {
            if (slot->table->insert(slot->ks.keys[i], slot->ks.hashes[i], 1'000'000'000, 0) == nullptr) {
                std::fprintf(stderr, "bench_flow_table: table of %u full at %u\n", n, i);
                std::abort();
            }
        }
        slot->order.resize(n);
        for (uint32_t i = 0; i < n; ++i) {
            slot->order[i] = i;
        }
        std::shuffle(slot->order.begin(), slot->order.end(), std::mt19937(12345));
    }
    return *slot;
}

// Burst of 32 random resident keys per iteration, as the worker does after parsing.
void BM_LookupBurst(benchmark::State& state) {
    const auto n = static_cast<uint32_t>(state.range(0));
    Filled& f = filled(n);
    const FlowKey* keys[kBurst];
    uint32_t hashes[kBurst];
    FlowEntry* out[kBurst];
    uint32_t pos = 0;
    uint64_t misses = 0;
    for (auto _ : state) {
        for (unsigned i = 0; i < kBurst; ++i) {
            const uint32_t k = f.order[pos];
            pos = pos + 1 == n ? 0 : pos + 1;
            keys[i] = &f.ks.keys[k];
            hashes[i] = f.ks.hashes[k];
        }
        f.table->lookup_burst(keys, hashes, kBurst, out);
        for (unsigned i = 0; i < kBurst; ++i) {
            misses += out[i] == nullptr;
        }
        benchmark::DoNotOptimize(out);
    }
    if (misses != 0) {
        state.SkipWithError("a resident key was not found");
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kBurst);
}

// The same keys one lookup() at a time: what the burst's prefetch stages buy.
void BM_LookupScalar(benchmark::State& state) {
    const auto n = static_cast<uint32_t>(state.range(0));
    Filled& f = filled(n);
    uint32_t pos = 0;
    uint64_t misses = 0;
    for (auto _ : state) {
        for (unsigned i = 0; i < kBurst; ++i) {
            const uint32_t k = f.order[pos];
            pos = pos + 1 == n ? 0 : pos + 1;
            FlowEntry* e = f.table->lookup(f.ks.keys[k], f.ks.hashes[k]);
            misses += e == nullptr;
            benchmark::DoNotOptimize(e);
        }
    }
    if (misses != 0) {
        state.SkipWithError("a resident key was not found");
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kBurst);
}

// Bursts of keys that are not in the table (a SYN flood's new flows before insert).
void BM_LookupBurstMiss(benchmark::State& state) {
    const auto n = static_cast<uint32_t>(state.range(0));
    Filled& f = filled(n);
    static const KeySet absent = [] {
        KeySet s = make_keys(1u << 16);
        for (auto& k : s.keys) {
            k.port[1] = 8443;  // another server port: none of these is resident
        }
        for (size_t i = 0; i < s.keys.size(); ++i) {
            s.hashes[i] = kBenchHasher(s.keys[i]);
        }
        return s;
    }();
    const FlowKey* keys[kBurst];
    uint32_t hashes[kBurst];
    FlowEntry* out[kBurst];
    uint32_t pos = 0;
    for (auto _ : state) {
        for (unsigned i = 0; i < kBurst; ++i) {
            const uint32_t k = (pos++ * 40503u) & 0xffffu;
            keys[i] = &absent.keys[k];
            hashes[i] = absent.hashes[k];
        }
        f.table->lookup_burst(keys, hashes, kBurst, out);
        benchmark::DoNotOptimize(out);
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kBurst);
}

// Filling an empty table of capacity n with n new flows (load factor up to 50% of slots).
void BM_Insert(benchmark::State& state) {
    const auto n = static_cast<uint32_t>(state.range(0));
    static std::map<uint32_t, KeySet> sets;
    if (sets.find(n) == sets.end()) {
        sets[n] = make_keys(n);
    }
    const KeySet& ks = sets[n];
    for (auto _ : state) {
        state.PauseTiming();
        auto t = std::make_unique<FlowTable>();
        if (!t->init(n, dp::FlowTimeouts{}, 0, kBenchSecret)) {
            state.SkipWithError("cannot allocate");
            break;
        }
        state.ResumeTiming();
        for (uint32_t i = 0; i < n; ++i) {
            benchmark::DoNotOptimize(t->insert(ks.keys[i], ks.hashes[i], 1'000'000'000, 0));
        }
        state.PauseTiming();
        if (t->active() != n) {
            state.SkipWithError("insert failed");
        }
        t.reset();
        state.ResumeTiming();
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * n);
}

// Expiring n idle flows, kExpireBudget (256) list heads per housekeeping call, as the worker.
void BM_Expire(benchmark::State& state) {
    const auto n = static_cast<uint32_t>(state.range(0));
    static std::map<uint32_t, KeySet> sets;
    if (sets.find(n) == sets.end()) {
        sets[n] = make_keys(n);
    }
    const KeySet& ks = sets[n];
    uint64_t expired = 0;
    for (auto _ : state) {
        state.PauseTiming();
        auto t = std::make_unique<FlowTable>();
        if (!t->init(n, dp::FlowTimeouts{}, 0, kBenchSecret)) {
            state.SkipWithError("cannot allocate");
            break;
        }
        for (uint32_t i = 0; i < n; ++i) {
            t->insert(ks.keys[i], ks.hashes[i], 1'000'000'000ull + i, 0);
        }
        state.ResumeTiming();
        const uint64_t now = 1'000'000'000ull * 1000;  // long after every timeout
        unsigned calls = 0;
        while (t->active() != 0) {
            expired += t->expire(now, 256, [](FlowEntry& e) { benchmark::DoNotOptimize(&e); });
            ++calls;
        }
        benchmark::DoNotOptimize(calls);
        state.PauseTiming();
        t.reset();
        state.ResumeTiming();
    }
    state.SetItemsProcessed(static_cast<int64_t>(expired));
}

} // namespace

BENCHMARK(BM_LookupBurst)->Arg(10'000)->Arg(100'000)->Arg(1'000'000);
BENCHMARK(BM_LookupScalar)->Arg(10'000)->Arg(100'000)->Arg(1'000'000);
BENCHMARK(BM_LookupBurstMiss)->Arg(10'000)->Arg(100'000)->Arg(1'000'000);
BENCHMARK(BM_Insert)->Arg(10'000)->Arg(100'000)->Arg(1'000'000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Expire)->Arg(10'000)->Arg(100'000)->Arg(1'000'000)->Unit(benchmark::kMillisecond);

} // namespace l7gate::perf
