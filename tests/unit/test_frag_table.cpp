#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "dataplane/frag_table.hpp"
#include "dataplane/hash.hpp"

namespace l7gate::test {
namespace {

using dp::FragKey;
using dp::FragTable;

constexpr uint64_t kSec = 1000000000ull;

FragKey fkey(uint32_t id, uint8_t last_octet = 1) {
    FragKey k;
    std::memset(&k, 0, sizeof(k));
    const uint8_t src[4] = {198, 18, 0, last_octet};
    const uint8_t dst[4] = {198, 19, 0, 9};
    std::memcpy(k.src, src, 4);
    std::memcpy(k.dst, dst, 4);
    k.id = id;
    k.proto = 17;
    k.ip_version = 4;
    return k;
}

// Datagrams a sender picks so that they share one bucket of a 64-entry table (16 buckets)
// under `bucket`: the sender's keys are (src, dst, id), the id its free choice.
template <class F>
std::vector<FragKey> colliding_keys(unsigned n, F bucket) {
    std::vector<FragKey> out;
    const uint32_t target = bucket(fkey(0));
    for (uint32_t id = 0; out.size() < n; ++id) {
        if (bucket(fkey(id)) == target) {
            out.push_back(fkey(id));
        }
    }
    return out;
}

// The table's previous bucket function, a CRC32C of the key with a fixed seed: anyone could
// compute datagram ids that fill a victim's bucket (kept here as the attack's fixture).
uint32_t old_fixed_bucket(const FragKey& k) { return dp::crc32c_key<sizeof(FragKey)>(&k, 0) & 15u; }

TEST(FragTable, DatagramsCollidingUnderTheOldFixedHashSpread) {
    const std::vector<FragKey> keys = colliding_keys(FragTable::kWays + 1, old_fixed_bucket);
    for (const dp::HashKey secret : {dp::HashKey{1, 2}, dp::HashKey{0x5eed, 0xfeed}}) {
        FragTable t;
        ASSERT_TRUE(t.init(64, 5, 0, secret));
        for (size_t i = 0; i < keys.size(); ++i) {
            EXPECT_TRUE(t.insert(keys[i], static_cast<uint32_t>(i), 0, kSec)) << i;
        }
    }
}

TEST(FragTable, SecretsAreDrawnPerTable) {
    FragTable a;
    FragTable b;
    ASSERT_TRUE(a.init(1 << 14, 5, 0));
    ASSERT_TRUE(b.init(1 << 14, 5, 0));
    unsigned same = 0;
    for (uint32_t id = 0; id < 64; ++id) {
        same += a.bucket_of(fkey(id)) == b.bucket_of(fkey(id)) ? 1 : 0;
    }
    EXPECT_LT(same, 8u);  // 4,096 buckets: two random secrets agree on about 0.02 of 64 keys
}

// With the secret known (only the test knows it), a full bucket still refuses the fifth
// datagram: counted by the worker as frag_table_full, its later fragments as frag_no_first.
TEST(FragTable, AFullBucketRefusesTheNextDatagram) {
    const dp::HashKey secret{7, 9};
    FragTable t;
    ASSERT_TRUE(t.init(64, 5, 0, secret));
    const std::vector<FragKey> keys =
        colliding_keys(FragTable::kWays + 1, [&](const FragKey& k) { return t.bucket_of(k); });
    for (unsigned i = 0; i < FragTable::kWays; ++i) {
        ASSERT_TRUE(t.insert(keys[i], i, 0, kSec));
    }
    EXPECT_FALSE(t.insert(keys[FragTable::kWays], 99, 0, kSec));
    EXPECT_TRUE(t.insert(keys[FragTable::kWays], 99, 0, 7 * kSec));  // the others expired
}

TEST(FragTable, LaterFragmentFindsTheFirstFragmentsFlow) {
    FragTable t;
    ASSERT_TRUE(t.init(64, 5, 0));
    ASSERT_TRUE(t.insert(fkey(77), 1234, 1, kSec));
    uint8_t slot = 9;
    EXPECT_EQ(t.lookup(fkey(77), 2 * kSec, slot), 1234u);
    EXPECT_EQ(slot, 1);
    EXPECT_EQ(t.lookup(fkey(78), 2 * kSec, slot), FragTable::kNone);
    EXPECT_EQ(t.lookup(fkey(77, 2), 2 * kSec, slot), FragTable::kNone);
}

TEST(FragTable, EntriesExpireAfterTheTimeoutSinceLastUse) {
    FragTable t;
    ASSERT_TRUE(t.init(64, 5, 0));
    ASSERT_TRUE(t.insert(fkey(1), 10, 0, 0));
    uint8_t slot;
    EXPECT_EQ(t.lookup(fkey(1), 4 * kSec, slot), 10u);   // refreshes to 9 s
    EXPECT_EQ(t.lookup(fkey(1), 8 * kSec, slot), 10u);   // refreshes to 13 s
    EXPECT_EQ(t.lookup(fkey(1), 14 * kSec, slot), FragTable::kNone);
}

TEST(FragTable, FullBucketRefusesNewDatagramsUntilEntriesExpire) {
    FragTable t;
    ASSERT_TRUE(t.init(4, 5, 0));  // one bucket of 4 ways
    EXPECT_EQ(t.capacity(), 4u);
    for (uint32_t id = 0; id < 4; ++id) {
        ASSERT_TRUE(t.insert(fkey(id), id, 0, 0));
    }
    EXPECT_FALSE(t.insert(fkey(100), 100, 0, kSec));
    EXPECT_TRUE(t.insert(fkey(100), 100, 0, 6 * kSec));  // expired ways are reused
    uint8_t slot;
    EXPECT_EQ(t.lookup(fkey(100), 6 * kSec, slot), 100u);
}

TEST(FragTable, RetransmittedFirstFragmentRefreshesItsEntry) {
    FragTable t;
    ASSERT_TRUE(t.init(4, 5, 0));
    ASSERT_TRUE(t.insert(fkey(5), 1, 0, 0));
    ASSERT_TRUE(t.insert(fkey(5), 2, 0, kSec));
    for (uint32_t id = 10; id < 13; ++id) {
        EXPECT_TRUE(t.insert(fkey(id), id, 0, kSec)) << "the duplicate must not use a second way";
    }
    uint8_t slot;
    EXPECT_EQ(t.lookup(fkey(5), kSec, slot), 2u);
}

} // namespace
} // namespace l7gate::test
