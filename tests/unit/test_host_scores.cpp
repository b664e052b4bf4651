#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "control/hosts/host_scores.hpp"
#include "control/policy/compiler.hpp"
#include "dataplane/policy_snapshot.hpp"

namespace l7gate::test {
namespace {

constexpr uint64_t kSec = 1000000000ull;

dp::ScoreEvent ev(uint8_t last, uint16_t score, uint64_t t, uint8_t role = 0) {
    dp::ScoreEvent e{};
    const uint8_t a[4] = {198, 18, 1, last};
    std::memcpy(e.addr, a, 4);
    e.ip_version = 4;
    e.role = role;
    e.score = score;
    e.time_ns = t;
    return e;
}

bool blocked(const ctl::HostScores& h, uint8_t last) {
    const uint8_t a[4] = {198, 18, 1, last};
    return h.slot().load()->contains(4, a);
}

struct Fixture {
    ctl::ReasonRegistry reasons;
    ctl::HostScores hosts{nullptr, reasons, true};
    dp::PolicySnapshot policy;
    Fixture() {
        policy.auto_block = true;
        policy.auto_block_score = 500;
        policy.auto_block_window_ns = 60 * kSec;
        policy.auto_block_for_ns = 10 * kSec;
    }
};

TEST(HostScores, BlocksAtTheThresholdAndPublishesANewSet) {
    Fixture f;
    const uint64_t gen0 = f.hosts.slot().load()->generation;
    f.hosts.add(ev(50, 225, 1 * kSec));
    f.hosts.add(ev(50, 225, 2 * kSec));
    f.hosts.decide(&f.policy, 2 * kSec, nullptr);
    EXPECT_FALSE(blocked(f.hosts, 50)) << "450 < 500";
    EXPECT_EQ(f.hosts.slot().load()->generation, gen0);
    f.hosts.add(ev(50, 50, 3 * kSec));
    f.hosts.decide(&f.policy, 3 * kSec, nullptr);
    EXPECT_TRUE(blocked(f.hosts, 50)) << "500 reaches the threshold";
    EXPECT_FALSE(blocked(f.hosts, 51));
    EXPECT_GT(f.hosts.slot().load()->generation, gen0);
    EXPECT_EQ(f.hosts.slot().load()->reason, f.reasons.id("hosts/auto_block"));
    EXPECT_EQ(f.hosts.blocked_count(), 1u);
    EXPECT_EQ(f.hosts.blocks_total(), 1u);
}

TEST(HostScores, OldEventsLeaveTheWindow) {
    Fixture f;
    f.hosts.add(ev(60, 300, 0));
    f.hosts.add(ev(60, 300, 61 * kSec));  // the first one is out of the 60 s window by now
    f.hosts.decide(&f.policy, 61 * kSec, nullptr);
    EXPECT_FALSE(blocked(f.hosts, 60));
    const auto top = f.hosts.top(5);
    ASSERT_EQ(top.size(), 1u);
    EXPECT_EQ(top[0].score, 300u);
}

TEST(HostScores, ReleasedAfterBlockForUnlessItKeptAttacking) {
    Fixture f;
    f.hosts.add(ev(70, 600, kSec));
    f.hosts.add(ev(71, 600, kSec));
    f.hosts.decide(&f.policy, kSec, nullptr);
    ASSERT_TRUE(blocked(f.hosts, 70));
    ASSERT_TRUE(blocked(f.hosts, 71));
    // While blocked, .71 earns the threshold again; .70 stays quiet.
    f.hosts.add(ev(71, 500, 5 * kSec));
    f.hosts.decide(&f.policy, 10 * kSec, nullptr);
    EXPECT_TRUE(blocked(f.hosts, 70)) << "block_for (10 s) has not passed";
    f.hosts.decide(&f.policy, 11 * kSec, nullptr);
    EXPECT_FALSE(blocked(f.hosts, 70)) << "released after block_for";
    EXPECT_TRUE(blocked(f.hosts, 71)) << "blocked again: it kept attacking";
    EXPECT_EQ(f.hosts.blocks_total(), 3u);
}

TEST(HostScores, ClientAndServerPartsAndNoBlockWithoutAutoBlock) {
    Fixture f;
    f.policy.auto_block = false;
    f.hosts.add(ev(80, 900, kSec, 0));
    f.hosts.add(ev(80, 100, kSec, 1));
    f.hosts.decide(&f.policy, kSec, nullptr);
    EXPECT_FALSE(blocked(f.hosts, 80));
    const auto top = f.hosts.top(1);
    ASSERT_EQ(top.size(), 1u);
    EXPECT_EQ(top[0].score, 1000u);
    EXPECT_EQ(top[0].client_score, 900u);
    EXPECT_EQ(top[0].server_score, 100u);
}

} // namespace
} // namespace l7gate::test

namespace l7gate::test {
namespace {

dp::ScoreEvent ev_v4(uint32_t i, uint16_t score, uint64_t t) {  // 198.18.0.0/16, host i
    dp::ScoreEvent e{};
    const uint8_t a[4] = {198, 18, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
    std::memcpy(e.addr, a, 4);
    e.ip_version = 4;
    e.score = score;
    e.time_ns = t;
    return e;
}

dp::ScoreEvent ev_v6(uint32_t i, uint16_t score, uint64_t t) {  // 2001:db8::/96 + i
    dp::ScoreEvent e{};
    const uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0,
                           static_cast<uint8_t>(i >> 24), static_cast<uint8_t>(i >> 16),
                           static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
    std::memcpy(e.addr, a, 16);
    e.ip_version = 6;
    e.score = score;
    e.time_ns = t;
    return e;
}

bool present(const ctl::HostScores& h, const std::string& host) {
    for (const ctl::HostInfo& i : h.top(ctl::HostScores::kMaxHosts + 1)) {
        if (i.host == host) {
            return true;
        }
    }
    return false;
}

TEST(HostScores, ForgetsTheHostHeardFromLeastRecentlyWhenFull) {
    Fixture f;
    const uint32_t n = ctl::HostScores::kMaxHosts;
    for (uint32_t i = 0; i < n; ++i) {
        f.hosts.add(ev_v4(i, 1, kSec + i));
    }
    f.hosts.add(ev_v4(0, 1000, 2 * kSec));   // heard from again: now the most recent
    f.hosts.add(ev_v6(1, 1, 2 * kSec + 1));  // one too many: 198.18.0.1 goes, not 198.18.0.0
    EXPECT_TRUE(present(f.hosts, "198.18.0.0"));
    EXPECT_FALSE(present(f.hosts, "198.18.0.1"));
    EXPECT_TRUE(present(f.hosts, "198.18.0.2"));
    EXPECT_EQ(f.hosts.top(1).front().score, 1001u);

    // A flood of scored flows from new addresses, one event each: every one evicts a host in
    // constant time (a scan of the 65,536 per event took minutes and stalled the control
    // thread), and the table stays bounded.
    for (uint32_t i = 2; i < 200000; ++i) {
        f.hosts.add(ev_v6(i, 1, 3 * kSec + i));
    }
    EXPECT_EQ(f.hosts.top(n + 1).size(), n);
    EXPECT_FALSE(present(f.hosts, "198.18.0.0"));  // older than every flood host by now
    EXPECT_TRUE(present(f.hosts, "2001:db8::3:d3f"));  // the newest, 199,999
    f.hosts.decide(&f.policy, 4 * kSec, nullptr);  // the window walk keeps the LRU list in step
    f.hosts.add(ev_v4(7, 1, 5 * kSec));
    EXPECT_TRUE(present(f.hosts, "198.18.0.7"));
}

} // namespace
} // namespace l7gate::test
