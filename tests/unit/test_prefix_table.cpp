#include <gtest/gtest.h>

#include <random>

#include "dataplane/prefix_table.hpp"

namespace l7gate::test {
namespace {

using dp::PrefixTable4;
using dp::PrefixTable6;

uint32_t v4(int a, int b, int c, int d) {
    return static_cast<uint32_t>(a) << 24 | static_cast<uint32_t>(b) << 16 | static_cast<uint32_t>(c) << 8 |
           static_cast<uint32_t>(d);
}

TEST(PrefixTable, LongestPrefixWinsWhenPriorityIsLength) {
    PrefixTable4 t;
    t.build({{v4(198, 18, 0, 0), 15, 15, 1}, {v4(198, 18, 1, 0), 24, 24, 2}, {v4(198, 18, 1, 128), 25, 25, 3}});
    EXPECT_EQ(t.lookup(v4(198, 18, 0, 1)), 1u);
    EXPECT_EQ(t.lookup(v4(198, 18, 1, 1)), 2u);
    EXPECT_EQ(t.lookup(v4(198, 18, 1, 200)), 3u);
    EXPECT_EQ(t.lookup(v4(198, 18, 2, 0)), 1u);
    EXPECT_EQ(t.lookup(v4(198, 19, 255, 255)), 1u);
    EXPECT_EQ(t.lookup(v4(198, 20, 0, 0)), PrefixTable4::kNone);
    EXPECT_EQ(t.lookup(v4(198, 17, 255, 255)), PrefixTable4::kNone);
    EXPECT_EQ(t.lookup(0), PrefixTable4::kNone);
}

TEST(PrefixTable, HigherPriorityBeatsALongerPrefix) {
    // The policy engine's first-policy-wins rule: a /8 in the leaf beats a /16 in the parent.
    PrefixTable4 t;
    t.build({{v4(10, 0, 0, 0), 8, 100, 7}, {v4(10, 1, 0, 0), 16, 50, 8}});
    EXPECT_EQ(t.lookup(v4(10, 1, 2, 3)), 7u);
    EXPECT_EQ(t.lookup(v4(10, 2, 0, 0)), 7u);
}

TEST(PrefixTable, EdgesOfTheAddressSpace) {
    PrefixTable4 t;
    t.build({{0, 0, 0, 1}, {v4(255, 255, 255, 255), 32, 32, 2}, {0, 32, 32, 3}});
    EXPECT_EQ(t.lookup(0), 3u);
    EXPECT_EQ(t.lookup(1), 1u);
    EXPECT_EQ(t.lookup(v4(255, 255, 255, 254)), 1u);
    EXPECT_EQ(t.lookup(v4(255, 255, 255, 255)), 2u);
    PrefixTable4 e;
    e.build({});
    EXPECT_TRUE(e.empty());
    EXPECT_EQ(e.lookup(v4(1, 2, 3, 4)), PrefixTable4::kNone);
}

TEST(PrefixTable, Ipv6Prefixes) {
    const dp::Ip6 base = static_cast<dp::Ip6>(0x20010db8) << 96;
    PrefixTable6 t;
    t.build({{base, 32, 32, 1}, {base | static_cast<dp::Ip6>(1) << 80, 48, 48, 2}});
    EXPECT_EQ(t.lookup(base | 5), 1u);
    EXPECT_EQ(t.lookup(base | static_cast<dp::Ip6>(1) << 80 | 9), 2u);
    EXPECT_EQ(t.lookup(static_cast<dp::Ip6>(0x20010db9) << 96), PrefixTable6::kNone);
}

TEST(PrefixTable, AgreesWithABruteForceMatcherOnRandomPrefixes) {
    std::mt19937 rng(42);
    for (int round = 0; round < 20; ++round) {
        std::vector<PrefixTable4::Prefix> ps;
        const int n = 1 + static_cast<int>(rng() % 60);
        for (int i = 0; i < n; ++i) {
            const uint8_t len = static_cast<uint8_t>(rng() % 33);
            // Cluster prefixes in a small space so they overlap a lot.
            const uint32_t a = (v4(198, 18, 0, 0) | (rng() & 0x1ffff)) & PrefixTable4::mask(len);
            ps.push_back({a, len, static_cast<uint32_t>(rng() % 5), static_cast<uint32_t>(i)});
        }
        PrefixTable4 t;
        t.build(ps);
        for (int probe = 0; probe < 3000; ++probe) {
            const uint32_t a = v4(198, 18, 0, 0) + (rng() % 0x30000) - 0x8000;
            uint32_t want = PrefixTable4::kNone;
            uint32_t wp = 0;
            uint8_t wl = 0;
            for (size_t i = 0; i < ps.size(); ++i) {
                if ((a & PrefixTable4::mask(ps[i].len)) != ps[i].addr) {
                    continue;
                }
                const bool better = want == PrefixTable4::kNone || ps[i].priority > wp ||
                                    (ps[i].priority == wp && ps[i].len > wl);
                if (better) {
                    want = ps[i].value;
                    wp = ps[i].priority;
                    wl = ps[i].len;
                }
            }
            // Equal priority and equal length means the same prefix twice: either value is fine.
            const uint32_t got = t.lookup(a);
            if (got != want) {
                bool same_prefix_tie = false;
                for (const auto& p : ps) {
                    if (p.value == got && (a & PrefixTable4::mask(p.len)) == p.addr && p.priority == wp && p.len == wl) {
                        same_prefix_tie = true;
                    }
                }
                ASSERT_TRUE(same_prefix_tie) << "round " << round << " addr " << a;
            }
        }
    }
}

} // namespace
} // namespace l7gate::test

namespace l7gate::test {
namespace {

TEST(PrefixTable, IndexedLookupOfALargeTableAgreesWithBruteForce) {
    // More than PrefixTable::kIndexFrom intervals: lookups go through the /16 index.
    std::mt19937 rng(99);
    std::vector<PrefixTable4::Prefix> ps;
    for (int i = 0; i < 3000; ++i) {
        const uint8_t len = static_cast<uint8_t>(8 + rng() % 25);
        const uint32_t a = static_cast<uint32_t>(rng()) & PrefixTable4::mask(len);
        ps.push_back({a, len, len, static_cast<uint32_t>(i)});
    }
    PrefixTable4 t;
    t.build(ps);
    ASSERT_GT(t.intervals(), PrefixTable4::kIndexFrom);
    for (int probe = 0; probe < 3000; ++probe) {
        // Half the probes inside a prefix (often at its edges), half anywhere.
        uint32_t a = static_cast<uint32_t>(rng());
        if (probe % 2 == 0) {
            const auto& p = ps[rng() % ps.size()];
            const uint32_t last = p.addr | ~PrefixTable4::mask(p.len);
            a = probe % 4 == 0 ? p.addr : last;
        }
        uint32_t want = PrefixTable4::kNone;
        uint8_t wl = 0;
        for (const auto& p : ps) {
            if ((a & PrefixTable4::mask(p.len)) == p.addr && (want == PrefixTable4::kNone || p.len > wl)) {
                want = p.value;
                wl = p.len;
            }
        }
        const uint32_t got = t.lookup(a);
        if (got != want) {
            // Only a duplicate prefix (same address and length) may resolve either way.
            ASSERT_NE(got, PrefixTable4::kNone) << a;
            ASSERT_EQ(ps[got].len, wl) << a;
            ASSERT_EQ(ps[got].addr, a & PrefixTable4::mask(wl)) << a;
        }
    }
}

} // namespace
} // namespace l7gate::test
