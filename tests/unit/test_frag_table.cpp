#include <gtest/gtest.h>

#include <cstring>

#include "dataplane/frag_table.hpp"

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
