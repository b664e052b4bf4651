// Verdict epochs (issue 18, point 3): a flow caches the worker's verdict epoch and is decided
// again when it differs. New flows start at 0, so the epoch must never be 0 whatever the
// policy and blocked-set generations are: a cache key made of uint16(policy generation +
// blocked generation) was 0 whenever that sum wrapped, and new flows then went undecided (no
// ips, country or default rule, no blocked-host check). Driven directly: both generations
// across the 16-bit wrap, and the worker's own epoch across its wrap. Also what the per-reason
// verdict counters (l7gate_verdicts_total) count: verdict changes.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "policy_worker.hpp"

namespace l7gate::test {
namespace {

const char* const kDropAll = R"(version: 1
default_policy: p
policies:
  p:
    default: drop
)";
const char* const kPassAll = R"(version: 1
default_policy: p
policies:
  p:
    default: pass
)";

class VerdictEpoch : public PolicyWorker {};

TEST_F(VerdictEpoch, NewFlowsAreDecidedWhateverTheGenerations) {
    std::unique_ptr<dp::PolicySnapshot> pols[2] = {compile(kDropAll), compile(kDropAll)};
    ASSERT_TRUE(pols[0] && pols[1]);
    uint32_t flow = 0;
    unsigned step = 0;
    for (const auto& [pg, bg] : generations()) {
        publish(pols[step++ & 1].get(), pg, bg >= 0, static_cast<uint64_t>(bg));
        const uint64_t evals = w_->counters().policy_evaluations.get();
        // Two new flows per step: the first after the change, and one more in the same epoch.
        for (int k = 0; k < 2; ++k) {
            EXPECT_FALSE(forwarded(syn(++flow))) << "policy generation " << pg << ", blocked generation " << bg
                                                 << ": a new flow passed a default-drop policy undecided";
        }
        EXPECT_EQ(w_->counters().policy_evaluations.get(), evals + 2)
            << "policy generation " << pg << ", blocked generation " << bg;
    }
}

TEST_F(VerdictEpoch, BlockedHostsAreCheckedWhateverTheGenerations) {
    std::unique_ptr<dp::PolicySnapshot> pols[2] = {compile(kPassAll), compile(kPassAll)};
    ASSERT_TRUE(pols[0] && pols[1]);
    uint32_t flow = 0;
    unsigned step = 0;
    for (const auto& [pg, bg] : generations()) {
        if (bg < 0) {
            continue;
        }
        publish(pols[step++ & 1].get(), pg, true, static_cast<uint64_t>(bg));
        EXPECT_FALSE(forwarded(syn(++flow, &kBlockedHost)))
            << "policy generation " << pg << ", blocked generation " << bg << ": a blocked host's new flow passed";
        EXPECT_TRUE(forwarded(syn(++flow))) << "policy generation " << pg << ", blocked generation " << bg;
    }
}

TEST_F(VerdictEpoch, TheWorkersOwnEpochSkipsZeroWhenItWraps) {
    std::unique_ptr<dp::PolicySnapshot> pol = compile(kDropAll);
    ASSERT_NE(pol, nullptr);
    // A blocked set republished 70,000 times (one per 5 ms at most in l7gate: about 6 min),
    // the policy once: the epoch passes 65,535 and wraps; a new flow is decided at every
    // epoch near the wrap and at every 1,000th.
    uint32_t flow = 0;
    bool wrapped = false;
    uint16_t last = 0;
    for (uint64_t bg = 1; bg <= 70000; ++bg) {
        publish(pol.get(), 7, true, bg);
        const uint16_t epoch = w_->verdict_epoch();
        ASSERT_NE(epoch, last) << "a new blocked set did not move the epoch";
        wrapped = wrapped || epoch < last;
        last = epoch;
        if (epoch <= 3 || epoch >= 65533 || bg % 1000 == 0) {
            ASSERT_FALSE(forwarded(syn(++flow))) << "epoch " << epoch << ": a new flow passed undecided";
        }
    }
    EXPECT_TRUE(wrapped);
}

TEST_F(VerdictEpoch, AnUnchangedSnapshotKeepsTheEpoch) {
    std::unique_ptr<dp::PolicySnapshot> pol = compile(kDropAll);
    ASSERT_NE(pol, nullptr);
    publish(pol.get(), 5, false, 0);
    const uint16_t epoch = w_->verdict_epoch();
    w_->load_snapshots();
    w_->load_snapshots();
    EXPECT_EQ(w_->verdict_epoch(), epoch) << "known flows would be decided again on every loop";
    // The known flow keeps its verdict without another evaluation.
    const std::vector<uint8_t> f = syn(1);
    EXPECT_FALSE(forwarded(f));
    const uint64_t evals = w_->counters().policy_evaluations.get();
    EXPECT_FALSE(forwarded(f));
    EXPECT_EQ(w_->counters().policy_evaluations.get(), evals);
}

// What l7gate_verdicts_total (the per-reason reason_flows counters, `reasons[].flows` in the
// stats JSON) counts: verdict changes. Each time a flow's verdict (action, reason) becomes
// another one, +1 under the new reason; a new flow's first verdict is such a change; a
// re-evaluation that gives the same verdict (a reload of the same policy) counts nothing. So
// a flow that passes as `pending` until nDPI names HTTP and is then dropped counts twice.
TEST_F(VerdictEpoch, VerdictsTotalCountsVerdictChanges) {
    const char* const policy = R"(version: 1
default_policy: p
policies:
  p:
    default: pass
    protocols: {HTTP: drop}
)";
    std::unique_ptr<dp::PolicySnapshot> pols[2] = {compile(policy), compile(policy)};
    ASSERT_TRUE(pols[0] && pols[1]);
    publish(pols[0].get(), 1, false, 0);
    const uint16_t pending = pols[0]->pending_reason;
    const uint16_t http = reasons_.id("p/protocols/HTTP");
    const uint16_t dflt = reasons_.id("p/default");
    const auto& c = w_->counters();
    auto flows = [&](uint16_t r) { return c.reason_flows[r].get(); };

    using namespace dp::tcp_flag;
    auto seg = [](bool from_client, uint16_t cport, uint8_t flags, uint32_t seq, uint32_t ack, const char* data) {
        Ipv4Spec ip;
        ip.src = from_client ? Ip4{198, 18, 5, 1} : Ip4{198, 19, 5, 2};
        ip.dst = from_client ? Ip4{198, 19, 5, 2} : Ip4{198, 18, 5, 1};
        TcpSpec t;
        t.sport = from_client ? cport : 80;
        t.dport = from_client ? 80 : cport;
        t.flags = flags;
        t.seq = seq;
        t.ack = ack;
        return ipv4_frame(ip, tcp(t, data != nullptr ? text(data) : Bytes{}));
    };
    const char* get = "GET / HTTP/1.1\r\nHost: counts.test\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
    // An HTTP flow: handshake (pending, passes), then the request (HTTP: dropped).
    EXPECT_TRUE(forwarded(seg(true, 41000, kSyn, 100, 0, nullptr)));
    EXPECT_EQ(flows(pending), 1u) << "a new flow's first verdict counts";
    EXPECT_TRUE(forwarded(seg(false, 41000, kSyn | kAck, 500, 101, nullptr)));
    EXPECT_TRUE(forwarded(seg(true, 41000, kAck, 101, 501, nullptr)));
    EXPECT_EQ(flows(pending), 1u) << "the same verdict again is no change";
    EXPECT_FALSE(forwarded(seg(true, 41000, kPsh | kAck, 101, 501, get)));
    EXPECT_EQ(flows(pending), 1u);
    EXPECT_EQ(flows(http), 1u) << "the change to drop counts under its reason";
    // A reload of the same policy: every flow is decided again; the same verdicts count nothing.
    publish(pols[1].get(), 2, false, 0);
    EXPECT_FALSE(forwarded(seg(true, 41000, kAck, 180, 501, nullptr)));
    EXPECT_EQ(flows(pending), 1u);
    EXPECT_EQ(flows(http), 1u);
    // So the counter is not flows by final verdict: two changes for one flow.
    uint64_t total = 0;
    for (const auto& r : c.reason_flows) {
        total += r.get();
    }
    EXPECT_EQ(total, 2u);
    EXPECT_EQ(flows(dflt), 0u);
}

} // namespace
} // namespace l7gate::test
