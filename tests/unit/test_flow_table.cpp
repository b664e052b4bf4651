#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <set>
#include <vector>

#include "dataplane/flow_table.hpp"

namespace l7gate::test {
namespace {

using dp::FlowEntry;
using dp::FlowKey;
using dp::FlowTable;
using dp::TimeoutClass;

constexpr uint64_t kSec = 1000000000ull;

FlowKey key_v4(uint32_t a, uint32_t b, uint16_t sp, uint16_t dp, uint8_t proto = 17) {
    uint8_t src[4] = {198, 18, static_cast<uint8_t>(a >> 8), static_cast<uint8_t>(a)};
    uint8_t dst[4] = {198, 19, static_cast<uint8_t>(b >> 8), static_cast<uint8_t>(b)};
    FlowKey k;
    dp::make_flow_key(k, 4, proto, 0, src, dst, sp, dp);
    return k;
}

FlowEntry* add(FlowTable& t, const FlowKey& k, uint64_t now) {
    const uint32_t h = dp::flow_key_hash(k);
    EXPECT_EQ(t.lookup(k, h), nullptr);
    return t.insert(k, h, now, 0);
}

TEST(FlowTable, InsertThenLookupFindsTheSameEntry) {
    FlowTable t;
    ASSERT_TRUE(t.init(1024, {}, 0));
    const FlowKey k = key_v4(1, 2, 1000, 53);
    FlowEntry* e = add(t, k, 5 * kSec);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(t.lookup(k, dp::flow_key_hash(k)), e);
    EXPECT_TRUE(e->key == k);
    EXPECT_EQ(e->first_ns, 5 * kSec);
    EXPECT_EQ(t.active(), 1u);
    EXPECT_EQ(t.lookup(key_v4(1, 2, 1000, 54), dp::flow_key_hash(key_v4(1, 2, 1000, 54))), nullptr);
}

TEST(FlowTable, BulkLookupMatchesScalarLookup) {
    FlowTable t;
    ASSERT_TRUE(t.init(4096, {}, 0));
    std::vector<FlowKey> keys;
    for (uint32_t i = 0; i < 64; ++i) {
        keys.push_back(key_v4(i, i + 7, static_cast<uint16_t>(1024 + i), 443, 6));
    }
    std::vector<FlowEntry*> inserted;
    for (size_t i = 0; i < keys.size(); i += 2) {  // every other key present
        inserted.push_back(add(t, keys[i], kSec));
    }
    const FlowKey* kp[32];
    uint32_t hs[32];
    FlowEntry* out[32];
    for (unsigned base = 0; base < 64; base += 32) {
        for (unsigned i = 0; i < 32; ++i) {
            kp[i] = &keys[base + i];
            hs[i] = dp::flow_key_hash(keys[base + i]);
        }
        t.lookup_burst(kp, hs, 32, out);
        for (unsigned i = 0; i < 32; ++i) {
            if ((base + i) % 2 == 0) {
                EXPECT_EQ(out[i], inserted[(base + i) / 2]) << i;
            } else {
                EXPECT_EQ(out[i], nullptr) << i;
            }
        }
    }
}

TEST(FlowTable, FullTableRefusesInsertAndRecoversAfterRemove) {
    FlowTable t;
    ASSERT_TRUE(t.init(100, {}, 0));
    std::vector<FlowEntry*> es;
    for (uint32_t i = 0; i < 100; ++i) {
        FlowEntry* e = add(t, key_v4(i, 0, 1, 2), kSec);
        ASSERT_NE(e, nullptr) << "insert " << i << " of exactly capacity must succeed";
        es.push_back(e);
    }
    EXPECT_EQ(t.active(), 100u);
    EXPECT_EQ(add(t, key_v4(500, 0, 1, 2), kSec), nullptr);
    t.remove(*es[42]);
    EXPECT_EQ(t.active(), 99u);
    EXPECT_EQ(t.lookup(key_v4(42, 0, 1, 2), dp::flow_key_hash(key_v4(42, 0, 1, 2))), nullptr);
    EXPECT_NE(add(t, key_v4(500, 0, 1, 2), kSec), nullptr);
    // Every other entry is still found.
    for (uint32_t i = 0; i < 100; ++i) {
        if (i != 42) {
            const FlowKey k = key_v4(i, 0, 1, 2);
            EXPECT_EQ(t.lookup(k, dp::flow_key_hash(k)), es[i]);
        }
    }
}

TEST(FlowTable, IdleFlowsExpireAfterTheirClassTimeout) {
    dp::FlowTimeouts to;
    to.seconds[static_cast<unsigned>(TimeoutClass::Udp)] = 60;
    to.seconds[static_cast<unsigned>(TimeoutClass::TcpSyn)] = 5;
    FlowTable t;
    ASSERT_TRUE(t.init(64, to, 0));
    FlowEntry* udp = add(t, key_v4(1, 1, 10, 53, 17), 100 * kSec);
    FlowEntry* syn = add(t, key_v4(2, 2, 10, 80, 6), 100 * kSec);
    ASSERT_NE(udp, nullptr);
    ASSERT_NE(syn, nullptr);
    EXPECT_EQ(syn->tclass(), TimeoutClass::TcpSyn);
    std::set<uint32_t> gone;
    auto cb = [&](FlowEntry& e) { gone.insert(t.index_of(e)); };
    EXPECT_EQ(t.expire(104 * kSec, 100, cb), 0u);
    const uint32_t syn_idx = t.index_of(*syn);
    EXPECT_EQ(t.expire(105 * kSec, 100, cb), 1u);
    EXPECT_EQ(gone.count(syn_idx), 1u);
    EXPECT_EQ(t.expire(159 * kSec, 100, cb), 0u);
    EXPECT_EQ(t.expire(160 * kSec, 100, cb), 1u);
    EXPECT_EQ(t.active(), 0u);
}

TEST(FlowTable, ActiveFlowIsNotExpiredWhileIdleOnesAre) {
    dp::FlowTimeouts to;
    to.seconds[static_cast<unsigned>(TimeoutClass::Udp)] = 10;
    FlowTable t;
    ASSERT_TRUE(t.init(64, to, 0));
    FlowEntry* busy = add(t, key_v4(1, 1, 10, 53), 0);
    FlowEntry* idle = add(t, key_v4(2, 2, 10, 53), 0);
    const FlowKey busy_key = busy->key;
    for (uint64_t s = 1; s <= 30; ++s) {
        t.touch(*busy, 0, 100, s * kSec);
        t.expire(s * kSec, 100, [](FlowEntry&) {});
    }
    (void)idle;
    EXPECT_EQ(t.active(), 1u);
    EXPECT_NE(t.lookup(busy_key, dp::flow_key_hash(busy_key)), nullptr);
    EXPECT_EQ(busy->packets[0], 30u);
    EXPECT_EQ(busy->bytes[0], 3000u);
}

TEST(FlowTable, ExpiryLooksAtNoMoreThanTheBudget) {
    dp::FlowTimeouts to;
    to.seconds[static_cast<unsigned>(TimeoutClass::Udp)] = 1;
    FlowTable t;
    ASSERT_TRUE(t.init(1024, to, 0));
    for (uint32_t i = 0; i < 1000; ++i) {
        ASSERT_NE(add(t, key_v4(i, 3, 7, 53), 0), nullptr);
    }
    EXPECT_EQ(t.expire(10 * kSec, 100, [](FlowEntry&) {}), 100u);
    EXPECT_EQ(t.active(), 900u);
    unsigned total = 100;
    while (t.active() > 0) {
        total += t.expire(10 * kSec, 256, [](FlowEntry&) {});
    }
    EXPECT_EQ(total, 1000u);
}

TEST(FlowTable, ClosedTcpMovesToTheShortTimeout) {
    dp::FlowTimeouts to;
    to.seconds[static_cast<unsigned>(TimeoutClass::Tcp)] = 300;
    to.seconds[static_cast<unsigned>(TimeoutClass::TcpClosed)] = 10;
    FlowTable t;
    ASSERT_TRUE(t.init(16, to, 0));
    FlowEntry* e = add(t, key_v4(1, 2, 1234, 80, 6), 0);
    t.set_class(*e, TimeoutClass::Tcp, 0);
    EXPECT_EQ(t.expire(20 * kSec, 10, [](FlowEntry&) {}), 0u);
    t.set_class(*e, TimeoutClass::TcpClosed, 20 * kSec);
    EXPECT_EQ(t.expire(29 * kSec, 10, [](FlowEntry&) {}), 0u);
    EXPECT_EQ(t.expire(30 * kSec, 10, [](FlowEntry&) {}), 1u);
}

TEST(FlowTable, ExpireAllEmptiesTheTable) {
    FlowTable t;
    ASSERT_TRUE(t.init(128, {}, 0));
    for (uint32_t i = 0; i < 77; ++i) {
        add(t, key_v4(i, 9, 5, 6, i % 2 ? 6 : 17), kSec);
    }
    unsigned seen = 0;
    EXPECT_EQ(t.expire_all([&](FlowEntry&) { ++seen; }), 77u);
    EXPECT_EQ(seen, 77u);
    EXPECT_EQ(t.active(), 0u);
}

TEST(FlowTable, ManyInsertsAndRemovesKeepIndexConsistent) {
    FlowTable t;
    ASSERT_TRUE(t.init(2048, {}, 0));
    std::vector<FlowKey> live;
    uint32_t seed = 12345;
    for (int round = 0; round < 20000; ++round) {
        seed = seed * 1103515245u + 12345u;
        if (live.size() < 2000 && (seed >> 16) % 3 != 0) {
            FlowKey k = key_v4(seed & 0xffff, (seed >> 8) & 0xffff, static_cast<uint16_t>(round), 99);
            const uint32_t h = dp::flow_key_hash(k);
            if (t.lookup(k, h) == nullptr) {
                ASSERT_NE(t.insert(k, h, kSec, 0), nullptr);
                live.push_back(k);
            }
        } else if (!live.empty()) {
            const size_t i = (seed >> 4) % live.size();
            FlowEntry* e = t.lookup(live[i], dp::flow_key_hash(live[i]));
            ASSERT_NE(e, nullptr);
            t.remove(*e);
            live[i] = live.back();
            live.pop_back();
        }
    }
    EXPECT_EQ(t.active(), live.size());
    for (const FlowKey& k : live) {
        EXPECT_NE(t.lookup(k, dp::flow_key_hash(k)), nullptr);
    }
}

// Lookups prefetch two cache lines per candidate entry (its address and 64 bytes on): that
// covers the whole entry only if every entry starts on a cache line, which depends on where
// the table's storage lands at run time, not on the type alone.
TEST(FlowTable, EveryEntryStartsOnACacheLineAndSpansTwo) {
    FlowTable t;
    ASSERT_TRUE(t.init(1000, {}, 0));
    for (uint32_t i = 0; i < 1000; ++i) {
        FlowEntry* e = add(t, key_v4(i, i, static_cast<uint16_t>(2000 + i), 80, 6), kSec);
        ASSERT_NE(e, nullptr);
        const auto first = reinterpret_cast<uintptr_t>(e);
        const auto last = reinterpret_cast<uintptr_t>(e + 1) - 1;
        ASSERT_EQ(first % 64, 0u) << "entry " << t.index_of(*e) << " at " << e;
        ASSERT_EQ(last / 64, first / 64 + 1) << "entry " << t.index_of(*e) << " at " << e;
    }
}

TEST(FlowTable, MemoryIsBoundedByCapacity) {
    FlowTable t;
    ASSERT_TRUE(t.init(1000, {}, 0));
    // Buckets at load factor <= 50% plus entries plus free stack: bounded by capacity.
    EXPECT_LE(t.memory_bytes(), 1000u * (128 + 4) + 2 * 1000u * 8 + 8192);
}

} // namespace
} // namespace l7gate::test
