// dp::HostTable: exact names and "*.suffix" wildcards with priorities (no EAL).

#include <gtest/gtest.h>

#include <string>

#include "dataplane/host_table.hpp"

namespace l7gate::test {
namespace {

using dp::HostTable;

uint32_t find(const HostTable& t, const std::string& host) {
    return t.lookup(host).value;
}

TEST(HostTable, ExactNames) {
    HostTable t;
    t.add("www.example.com", 1, 10);
    t.add("example.com", 1, 11);
    t.build();
    EXPECT_EQ(t.size(), 2u);
    EXPECT_EQ(find(t, "www.example.com"), 10u);
    EXPECT_EQ(find(t, "example.com"), 11u);
    EXPECT_EQ(find(t, "a.www.example.com"), HostTable::kNone);  // exact only
    EXPECT_EQ(find(t, "ww.example.com"), HostTable::kNone);
    EXPECT_EQ(find(t, "www.example.co"), HostTable::kNone);
    EXPECT_EQ(find(t, "www.example.com.evil"), HostTable::kNone);
    EXPECT_EQ(find(t, ""), HostTable::kNone);
}

TEST(HostTable, WildcardMatchesSubdomainsOnly) {
    HostTable t;
    t.add("*.doubleclick.net", 1, 7);
    t.build();
    EXPECT_EQ(find(t, "a.doubleclick.net"), 7u);
    EXPECT_EQ(find(t, "x.y.doubleclick.net"), 7u);
    EXPECT_EQ(find(t, "a-b_c.x.y.z.doubleclick.net"), 7u);
    EXPECT_EQ(find(t, "doubleclick.net"), HostTable::kNone);
    EXPECT_EQ(find(t, "notdoubleclick.net"), HostTable::kNone);
    EXPECT_EQ(find(t, "a.notdoubleclick.net"), HostTable::kNone);
    EXPECT_EQ(find(t, "doubleclick.net.evil.com"), HostTable::kNone);
    EXPECT_EQ(find(t, "net"), HostTable::kNone);
}

TEST(HostTable, WildcardAndExactOfTheSameNameAreDistinct) {
    HostTable t;
    t.add("*.example.com", 1, 1);
    t.add("example.com", 1, 2);
    t.build();
    EXPECT_EQ(t.size(), 2u);
    EXPECT_EQ(find(t, "example.com"), 2u);
    EXPECT_EQ(find(t, "a.example.com"), 1u);
}

TEST(HostTable, PatternsAreCaseInsensitive) {
    HostTable t;
    t.add("*.DoubleClick.NET", 1, 3);
    t.add("WWW.Example.COM", 1, 4);
    t.build();
    // Callers pass lowercase names.
    EXPECT_EQ(find(t, "ad.doubleclick.net"), 3u);
    EXPECT_EQ(find(t, "www.example.com"), 4u);
    EXPECT_EQ(HostTable::lower('Q'), 'q');
    EXPECT_EQ(HostTable::lower('q'), 'q');
    EXPECT_EQ(HostTable::lower('-'), '-');
}

TEST(HostTable, HigherPriorityWins) {
    HostTable t;
    t.add("*.example.com", 5, 1);
    t.add("a.example.com", 3, 2);           // exact, but a lower priority
    t.add("*.b.example.com", 4, 3);         // deeper wildcard, lower priority
    t.add("c.example.com", 9, 4);           // exact with a higher priority
    t.add("*.d.example.com", 8, 5);         // deeper wildcard with a higher priority
    t.build();
    EXPECT_EQ(find(t, "a.example.com"), 1u);
    EXPECT_EQ(t.lookup("a.example.com").priority, 5u);
    EXPECT_EQ(find(t, "x.b.example.com"), 1u);
    EXPECT_EQ(find(t, "c.example.com"), 4u);
    EXPECT_EQ(find(t, "x.d.example.com"), 5u);
    EXPECT_EQ(find(t, "x.y.d.example.com"), 5u);
    EXPECT_EQ(find(t, "z.example.com"), 1u);
}

TEST(HostTable, EqualPriorityPrefersExactThenTheLongestSuffix) {
    HostTable t;
    t.add("*.com", 1, 1);
    t.add("*.example.com", 1, 2);
    t.add("a.example.com", 1, 3);
    t.build();
    EXPECT_EQ(find(t, "a.example.com"), 3u);
    EXPECT_EQ(find(t, "b.example.com"), 2u);
    EXPECT_EQ(find(t, "example.com"), 1u);
    EXPECT_EQ(find(t, "com"), HostTable::kNone);
}

TEST(HostTable, RepeatedPatternKeepsTheHigherPriority) {
    HostTable t;
    t.add("a.example.com", 1, 1);
    t.add("A.Example.com", 7, 2);
    t.add("a.example.com", 3, 3);
    t.add("*.example.com", 2, 4);
    t.add("*.EXAMPLE.com", 1, 5);
    t.build();
    EXPECT_EQ(t.size(), 2u);
    EXPECT_EQ(find(t, "a.example.com"), 2u);
    EXPECT_EQ(t.lookup("a.example.com").priority, 7u);
    EXPECT_EQ(find(t, "b.example.com"), 4u);
}

TEST(HostTable, ManyEntriesAreAllFound) {
    HostTable t;
    constexpr uint32_t kCount = 10000;
    for (uint32_t i = 0; i < kCount; ++i) {
        t.add("host" + std::to_string(i) + ".example.com", 2, i);
        t.add("*.zone" + std::to_string(i) + ".example.net", 1, kCount + i);
    }
    t.build();
    EXPECT_EQ(t.size(), 2 * kCount);
    for (uint32_t i = 0; i < kCount; ++i) {
        const std::string n = std::to_string(i);
        ASSERT_EQ(find(t, "host" + n + ".example.com"), i) << n;
        ASSERT_EQ(find(t, "www.zone" + n + ".example.net"), kCount + i) << n;
        ASSERT_EQ(find(t, "zone" + n + ".example.net"), HostTable::kNone) << n;
    }
    EXPECT_EQ(find(t, "host10000.example.com"), HostTable::kNone);
    EXPECT_EQ(find(t, "a.host1.example.com"), HostTable::kNone);
    EXPECT_EQ(find(t, "www.zone10000.example.net"), HostTable::kNone);
}

TEST(HostTable, EmptyTable) {
    HostTable never_built;
    EXPECT_EQ(never_built.size(), 0u);
    EXPECT_EQ(find(never_built, "example.com"), HostTable::kNone);
    HostTable t;
    t.build();
    EXPECT_EQ(t.size(), 0u);
    EXPECT_EQ(find(t, "example.com"), HostTable::kNone);
    EXPECT_EQ(find(t, ""), HostTable::kNone);
    EXPECT_EQ(find(t, "."), HostTable::kNone);
}

TEST(HostTable, RebuildReplacesTheContents) {
    HostTable t;
    t.add("a.example.com", 1, 1);
    t.build();
    t.add("b.example.com", 1, 2);
    t.build();
    EXPECT_EQ(t.size(), 1u);
    EXPECT_EQ(find(t, "a.example.com"), HostTable::kNone);
    EXPECT_EQ(find(t, "b.example.com"), 2u);
}

TEST(HostTable, LongNames) {
    // 80 characters: what the worker passes at most.
    const std::string name80 = std::string(59, 'a') + "." + std::string(12, 'b') + ".example";
    ASSERT_EQ(name80.size(), 80u);
    std::string deep;
    for (int i = 0; i < 40; ++i) {
        deep += "x.";
    }
    deep += "deep.example";  // 92 characters, 42 labels
    const std::string name253 =
        std::string(63, 'c') + "." + std::string(63, 'd') + "." + std::string(63, 'e') + "." +
        std::string(61, 'f');
    ASSERT_EQ(name253.size(), 253u);
    HostTable t;
    t.add(name80, 1, 1);
    t.add("*.deep.example", 1, 2);
    t.add(name253, 1, 3);
    t.add("*." + name253, 1, 4);
    t.build();
    EXPECT_EQ(find(t, name80), 1u);
    EXPECT_EQ(find(t, name80.substr(1)), HostTable::kNone);
    EXPECT_EQ(find(t, deep), 2u);
    EXPECT_EQ(find(t, name253), 3u);
    EXPECT_EQ(find(t, "w." + name253), 4u);
    EXPECT_EQ(find(t, std::string(80, 'z')), HostTable::kNone);
}

} // namespace
} // namespace l7gate::test
