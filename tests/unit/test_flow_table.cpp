#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <set>
#include <string>
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
    const uint32_t h = t.hash(k);
    EXPECT_EQ(t.lookup(k, h), nullptr);
    return t.insert(k, h, now, 0);
}

TEST(FlowTable, InsertThenLookupFindsTheSameEntry) {
    FlowTable t;
    ASSERT_TRUE(t.init(1024, {}, 0));
    const FlowKey k = key_v4(1, 2, 1000, 53);
    FlowEntry* e = add(t, k, 5 * kSec);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(t.lookup(k, t.hash(k)), e);
    EXPECT_TRUE(e->key == k);
    EXPECT_EQ(e->first_ns, 5 * kSec);
    EXPECT_EQ(t.active(), 1u);
    EXPECT_EQ(t.lookup(key_v4(1, 2, 1000, 54), t.hash(key_v4(1, 2, 1000, 54))), nullptr);
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
            hs[i] = t.hash(keys[base + i]);
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
    EXPECT_EQ(t.lookup(key_v4(42, 0, 1, 2), t.hash(key_v4(42, 0, 1, 2))), nullptr);
    EXPECT_NE(add(t, key_v4(500, 0, 1, 2), kSec), nullptr);
    // Every other entry is still found.
    for (uint32_t i = 0; i < 100; ++i) {
        if (i != 42) {
            const FlowKey k = key_v4(i, 0, 1, 2);
            EXPECT_EQ(t.lookup(k, t.hash(k)), es[i]);
        }
    }
}

// high_water() bounds the active timeout's scan: every live entry lies below it, and it is the
// most flows held at once, not the number ever created (freed entries are reused first).
TEST(FlowTable, HighWaterIsTheMostFlowsHeldAtOnce) {
    FlowTable t;
    ASSERT_TRUE(t.init(4096, {}, 0));
    EXPECT_EQ(t.high_water(), 0u);
    std::vector<FlowEntry*> es;
    for (uint32_t i = 0; i < 300; ++i) {
        es.push_back(add(t, key_v4(i, 0, 1, 2), kSec));
        ASSERT_NE(es.back(), nullptr);
    }
    EXPECT_EQ(t.high_water(), 300u);
    // Churn: 10 rounds of 300 flows ended and 300 new ones, never more than 300 at once.
    for (uint32_t round = 1; round <= 10; ++round) {
        for (FlowEntry* e : es) {
            t.remove(*e);
        }
        es.clear();
        for (uint32_t i = 0; i < 300; ++i) {
            es.push_back(add(t, key_v4(i, round, 1, 2), kSec));
            ASSERT_NE(es.back(), nullptr);
        }
    }
    EXPECT_EQ(t.high_water(), 300u) << "3,300 flows created, at most 300 at once";
    es.push_back(add(t, key_v4(9999, 99, 1, 2), kSec));
    EXPECT_EQ(t.high_water(), 301u);
    for (uint32_t i = 0; i < t.capacity(); ++i) {
        if (t.at(i).live()) {
            EXPECT_LT(i, t.high_water());
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
    EXPECT_NE(t.lookup(busy_key, t.hash(busy_key)), nullptr);
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
            const uint32_t h = t.hash(k);
            if (t.lookup(k, h) == nullptr) {
                ASSERT_NE(t.insert(k, h, kSec, 0), nullptr);
                live.push_back(k);
            }
        } else if (!live.empty()) {
            const size_t i = (seed >> 4) % live.size();
            FlowEntry* e = t.lookup(live[i], t.hash(live[i]));
            ASSERT_NE(e, nullptr);
            t.remove(*e);
            live[i] = live.back();
            live.pop_back();
        }
    }
    EXPECT_EQ(t.active(), live.size());
    for (const FlowKey& k : live) {
        EXPECT_NE(t.lookup(k, t.hash(k)), nullptr);
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


// -- keyed bucket selection ---------------------------------------------------------------

// Fixture: the flow hash l7gate used before (CRC32C, fixed seed), kept to show what the
// keyed hash defends against. CRC is affine over GF(2): with everything but the ports fixed,
// hash(ports) = hash(0) ^ L * ports for a 32x32 bit matrix L, so ports giving any wanted hash
// are found by solving a linear system.
uint32_t crc_flow_key_hash(const FlowKey& k) {
    constexpr uint32_t kSeed = 0x9e3779b9u;
    if (k.ip_version == 4) {
        uint32_t a0, a1, tail;
        uint64_t ports_vlan;
        std::memcpy(&a0, k.addr[0], 4);
        std::memcpy(&a1, k.addr[1], 4);
        std::memcpy(&ports_vlan, k.port, 8);
        std::memcpy(&tail, &k.proto, 4);
        uint32_t h = dp::crc32c_u64(uint64_t{a0} | uint64_t{a1} << 32, kSeed);
        h = dp::crc32c_u64(ports_vlan, h);
        return dp::crc32c_u32(tail, h);
    }
    return dp::crc32c_key<sizeof(FlowKey)>(&k, kSeed);
}

FlowKey with_ports(FlowKey k, uint32_t ports) {
    std::memcpy(k.port, &ports, 4);
    return k;
}

// Ports for `base` (other fields kept) whose CRC hash is `target`; false when L is singular.
bool solve_ports(const FlowKey& base, uint32_t target, uint32_t& ports) {
    const uint32_t h0 = crc_flow_key_hash(with_ports(base, 0));
    // Augmented rows: row r holds bit r of each column (bits 0-31) and of the right side (bit 32).
    uint64_t rows[32] = {};
    for (unsigned j = 0; j < 32; ++j) {
        const uint32_t col = crc_flow_key_hash(with_ports(base, 1u << j)) ^ h0;
        for (unsigned r = 0; r < 32; ++r) {
            rows[r] |= uint64_t{(col >> r) & 1u} << j;
        }
    }
    for (unsigned r = 0; r < 32; ++r) {
        rows[r] |= uint64_t{((target ^ h0) >> r) & 1u} << 32;
    }
    for (unsigned c = 0; c < 32; ++c) {  // Gauss-Jordan elimination
        unsigned p = c;
        while (p < 32 && ((rows[p] >> c) & 1u) == 0) {
            ++p;
        }
        if (p == 32) {
            return false;
        }
        std::swap(rows[c], rows[p]);
        for (unsigned r = 0; r < 32; ++r) {
            if (r != c && ((rows[r] >> c) & 1u) != 0) {
                rows[r] ^= rows[c];
            }
        }
    }
    ports = 0;
    for (unsigned c = 0; c < 32; ++c) {
        ports |= static_cast<uint32_t>((rows[c] >> 32) & 1u) << c;
    }
    return true;
}

// 24 UDP flows from other office hosts whose old hash equals the victim's (a TLS connection),
// as in the attack of issue 18: computed, not searched.
std::vector<FlowKey> crc_colliders(const FlowKey& victim, unsigned n) {
    std::vector<FlowKey> out;
    for (uint32_t i = 1; out.size() < n && i < 1000; ++i) {
        FlowKey k = key_v4(i, 2, 0, 0, 17);
        uint32_t ports;
        if (solve_ports(k, crc_flow_key_hash(victim), ports)) {
            out.push_back(with_ports(k, ports));
        }
    }
    return out;
}

// Each keyed construction the table may use (FlowHasher): the AES-round hash (skipped on a
// CPU without AES-NI) and SipHash-1-3; every test below runs for both.
class FlowTableKeyedHash : public ::testing::TestWithParam<dp::FlowHasher::Kind> {
protected:
    void SetUp() override {
        if (GetParam() == dp::FlowHasher::Kind::AesRounds && !dp::FlowHasher::cpu_has_aes()) {
            GTEST_SKIP() << "no AES-NI on this CPU";
        }
    }
    // A table keyed like l7gate's (secret from getrandom(2)) with this test's construction.
    bool init_random(FlowTable& t, uint32_t capacity) const {
        dp::HashKey secret;
        return dp::random_hash_key(secret) && t.init(capacity, {}, 0, dp::FlowHasher(secret, GetParam())) &&
               t.hash_kind() == GetParam();
    }
};
INSTANTIATE_TEST_SUITE_P(Each, FlowTableKeyedHash,
                         ::testing::Values(dp::FlowHasher::Kind::AesRounds, dp::FlowHasher::Kind::SipHash13),
                         [](const ::testing::TestParamInfo<dp::FlowHasher::Kind>& i) {
                             return std::string(i.param == dp::FlowHasher::Kind::AesRounds ? "AesRounds" : "SipHash13");
                         });

TEST_P(FlowTableKeyedHash, OldCrcCollisionsSpreadOverBuckets) {
    const FlowKey victim = key_v4(1, 2, 40000, 443, 6);
    const std::vector<FlowKey> coll = crc_colliders(victim, 24);
    ASSERT_EQ(coll.size(), 24u);
    FlowTable t;
    ASSERT_TRUE(init_random(t, 1024));  // 256 buckets, secret from getrandom(2)
    std::set<uint32_t> crc_hashes, primaries, pairs_like_victim;
    const uint32_t vh = t.hash(victim);
    unsigned share_victim_pair = 0;
    for (const FlowKey& k : coll) {
        EXPECT_FALSE(k == victim);
        crc_hashes.insert(crc_flow_key_hash(k));
        const uint32_t h = t.hash(k);
        primaries.insert(t.primary_bucket(h));
        const bool same = (t.primary_bucket(h) == t.primary_bucket(vh) && t.alternative_bucket(h) == t.alternative_bucket(vh)) ||
                          (t.primary_bucket(h) == t.alternative_bucket(vh) && t.alternative_bucket(h) == t.primary_bucket(vh));
        share_victim_pair += same ? 1 : 0;
    }
    // The fixture is real: all 24 have the victim's CRC hash, so its two buckets under CRC.
    EXPECT_EQ(crc_hashes.size(), 1u);
    EXPECT_EQ(*crc_hashes.begin(), crc_flow_key_hash(victim));
    // Under the keyed hash they spread: 24 keys in 256 buckets (about 23 distinct expected).
    EXPECT_GE(primaries.size(), 16u);
    EXPECT_LE(share_victim_pair, 2u);
}

TEST_P(FlowTableKeyedHash, OldCrcCollisionsNoLongerBlockTheVictimsInsert) {
    const FlowKey victim = key_v4(1, 2, 40000, 443, 6);
    const std::vector<FlowKey> coll = crc_colliders(victim, 24);
    ASSERT_EQ(coll.size(), 24u);
    {
        // Under the old hash: 16 of them fill the victim's two buckets and its insert fails
        // although 1,008 of 1,024 entries are free.
        FlowTable old;
        ASSERT_TRUE(old.init(1024, {}, 0));
        unsigned placed = 0;
        for (const FlowKey& k : coll) {
            placed += old.insert(k, crc_flow_key_hash(k), kSec, 0) != nullptr ? 1 : 0;
        }
        EXPECT_EQ(placed, 2 * FlowTable::kBucketSlots);
        EXPECT_EQ(old.insert(victim, crc_flow_key_hash(victim), kSec, 0), nullptr);
        EXPECT_FALSE(old.full());
    }
    FlowTable t;
    ASSERT_TRUE(init_random(t, 1024));
    for (const FlowKey& k : coll) {
        EXPECT_NE(add(t, k, kSec), nullptr);
    }
    FlowEntry* e = add(t, victim, kSec);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(t.lookup(victim, t.hash(victim)), e);
}

// With the secret known (the test's), 16 flows sharing a victim's bucket pair can be found;
// its insert then fails with free entries left: full() says which failure it was, and the
// worker counts it as bucket_full (tests/eal/test_bucket_full.cpp), not table_full.
TEST_P(FlowTableKeyedHash, FilledBucketPairIsNotAFullTable) {
    const dp::HashKey secret{0x1111222233334444ull, 0x5555666677778888ull};
    FlowTable t;
    ASSERT_TRUE(t.init(256, {}, 0, dp::FlowHasher(secret, GetParam())));  // 64 buckets
    EXPECT_EQ(t.bucket_count(), 64u);
    const FlowKey victim = key_v4(1, 2, 40000, 443, 6);
    EXPECT_EQ(t.hash(victim), dp::FlowHasher(secret, GetParam())(victim));
    const uint32_t vh = t.hash(victim);
    const uint32_t v0 = t.primary_bucket(vh), v1 = t.alternative_bucket(vh);
    ASSERT_NE(v0, v1);
    unsigned placed = 0;
    for (uint32_t i = 0; placed < 2 * FlowTable::kBucketSlots && i < (1u << 22); ++i) {
        const FlowKey k = key_v4(3 + (i >> 16), 2, static_cast<uint16_t>(i), 53, 17);
        const uint32_t h = t.hash(k);
        const uint32_t b0 = t.primary_bucket(h), b1 = t.alternative_bucket(h);
        if ((b0 == v0 && b1 == v1) || (b0 == v1 && b1 == v0)) {
            ASSERT_NE(add(t, k, kSec), nullptr);
            ++placed;
        }
    }
    ASSERT_EQ(placed, 2 * FlowTable::kBucketSlots);
    EXPECT_EQ(t.insert(victim, vh, kSec, 0), nullptr);
    EXPECT_FALSE(t.full());
    EXPECT_EQ(t.active(), 16u);
    // Filling the rest: a really full table says so.
    for (uint32_t i = 0; t.active() < t.capacity() && i < 100000; ++i) {
        add(t, key_v4(5000 + i, 7, 1, 2, 17), kSec);
    }
    EXPECT_EQ(t.active(), t.capacity());
    EXPECT_TRUE(t.full());
}

} // namespace
} // namespace l7gate::test
