// Monitor mode (issue 20, point 1): a policy with `enforce: false`, or every policy under
// --mode monitor, decides its verdicts as when enforcing and records them (flow record
// `unenforced`, the reason counters), but its packets leave: nothing dropped, rejected,
// shaped, policed nor blocked; they are counted by verdict in monitor_forwarded_*. A reload
// switches a policy between the two on the next packet of its flows.
//
// One worker, driven directly (no ports): reject_rate 0, so nothing is injected here (the
// RST / ICMP side is tests/integration/test_monitor.py's).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <rte_ring.h>

#include "policy_worker.hpp"

namespace l7gate::test {
namespace {

// Server addresses and the marker each gets.
const Ip4 kPassServer = {198, 19, 1, 5};
const Ip4 kDropServer = {198, 19, 1, 1};
const Ip4 kRejectServer = {198, 19, 1, 2};
const Ip4 kShapeServer = {198, 19, 1, 3};
const Ip4 kPoliceServer = {198, 19, 1, 4};

std::string policy_text(const char* enforce) {
    std::string s = "version: 1\ndefault_policy: p\n"
                    "shapers:\n  s: {rate: 8kbit, burst: 2kb}\n"
                    "policies:\n  p:\n";
    if (enforce != nullptr) {
        s += std::string("    enforce: ") + enforce + "\n";
    }
    s += "    default: pass\n"
         "    ips: {198.19.1.1: drop, 198.19.1.2: reject, 198.19.1.3: \"shape:s\", 198.19.1.4: \"police:s\"}\n";
    return s;
}

// A 1,000-byte UDP datagram of flow `sport` from `client` to `server`.
std::vector<uint8_t> datagram(const Ip4& client, const Ip4& server, uint16_t sport) {
    Ipv4Spec ip;
    ip.src = client;
    ip.dst = server;
    ip.proto = ipproto::kUdp;
    UdpSpec u;
    u.sport = sport;
    u.dport = 5000;
    return ipv4_frame(ip, udp(u, Bytes(1000, 0x5a)));
}

class Monitor : public PolicyWorker {
protected:
    void configure(dp::WorkerConfig& cfg) override {
        cfg.reject_rate = 0;  // nothing injected: process_burst() alone never sends it
        cfg.flows = 64;       // small enough to fill (PacketsWithoutAFlowEntryFollowTheMode)
        ring_ = rte_ring_create_elem("monitor_log", sizeof(dp::FlowRecord), 256, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
        ASSERT_NE(ring_, nullptr);
        cfg.flow_log = ring_;
    }
    void TearDown() override {
        PolicyWorker::TearDown();
        rte_ring_free(ring_);
    }
    std::unique_ptr<dp::PolicySnapshot> compile_mode(const std::string& text, bool monitor_mode) {
        ctl::PolicyConfig cfg;
        std::vector<ctl::PolicyError> errors;
        EXPECT_TRUE(ctl::load_policy_text(text, "policy.yaml", ctl::PolicyFormat::Auto, cfg, errors));
        ctl::CompileContext ctx{names_, nullptr, &reasons_, 1, 1};
        ctx.shaper_slots = &slots_;
        ctx.monitor = monitor_mode;
        auto snap = ctl::compile_policy(cfg, ctx, errors);
        EXPECT_TRUE(errors.empty());
        return snap;
    }
    // Packets of one flow (client port `sport`) to `server`, 1 ms apart; how many left now.
    unsigned send(const Ip4& server, uint16_t sport, unsigned packets, const Ip4& client = {198, 18, 0, 10}) {
        unsigned out = 0;
        for (unsigned i = 0; i < packets; ++i) {
            out += forwarded(datagram(client, server, sport)) ? 1 : 0;
        }
        return out;
    }
    uint64_t mon_packets(dp::Monitored k) const {
        return w_->counters().monitor_forwarded_packets[static_cast<size_t>(k)].get();
    }
    uint64_t mon_bytes(dp::Monitored k) const {
        return w_->counters().monitor_forwarded_bytes[static_cast<size_t>(k)].get();
    }
    uint64_t reason_packets(const std::string& name) {
        return w_->counters().reason_packets[reasons_.id(name)].get();
    }
    // Ends every flow and returns its records.
    std::vector<dp::FlowRecord> records() {
        w_->flush_flows();
        std::vector<dp::FlowRecord> out;
        dp::FlowRecord r;
        while (rte_ring_sc_dequeue_elem(ring_, &r, sizeof(r)) == 0) {
            out.push_back(r);
        }
        return out;
    }
    // Every verdict kind once (10 packets a flow), under `snap`; checks what left and the
    // counters for enforce (monitor == false) or monitor mode.
    void every_verdict(dp::PolicySnapshot* snap, bool monitor) {
        publish(snap, 1, true, 1);
        const uint64_t drops0 = w_->counters().drops[static_cast<unsigned>(dp::DropReason::Policy)].get();
        EXPECT_EQ(send(kPassServer, 1001, 10), 10u);
        const unsigned dropped = send(kDropServer, 1002, 10);
        const unsigned rejected = send(kRejectServer, 1003, 10);
        const unsigned shaped = send(kShapeServer, 1004, 10);
        const unsigned policed = send(kPoliceServer, 1005, 10);
        const unsigned blocked = send(kPassServer, 1006, 10, kBlockedHost);  // a host in the auto-block set
        const uint64_t frame = datagram({198, 18, 0, 10}, kPassServer, 1).size();
        if (monitor) {
            EXPECT_EQ(dropped, 10u);
            EXPECT_EQ(rejected, 10u);
            EXPECT_EQ(shaped, 10u);
            EXPECT_EQ(policed, 10u);
            EXPECT_EQ(blocked, 10u);
            for (const dp::Monitored k : {dp::Monitored::Drop, dp::Monitored::Reject, dp::Monitored::Shape,
                                          dp::Monitored::Police, dp::Monitored::Block}) {
                EXPECT_EQ(mon_packets(k), 10u) << dp::kMonitoredNames[static_cast<size_t>(k)];
                EXPECT_EQ(mon_bytes(k), 10u * frame) << dp::kMonitoredNames[static_cast<size_t>(k)];
            }
            EXPECT_EQ(w_->counters().drops[static_cast<unsigned>(dp::DropReason::Policy)].get(), drops0);
            EXPECT_EQ(w_->counters().shaper[0].sent.get() + w_->counters().shaper[0].dropped.get() +
                          w_->counters().shaper[0].queued.get(),
                      0u)
                << "the shaper saw no packet";
        } else {
            EXPECT_EQ(dropped, 0u);
            EXPECT_EQ(rejected, 0u);
            EXPECT_LT(shaped, 10u) << "8 kbit/s with a 2 KB burst: the rest waits";
            EXPECT_LT(policed, 10u);
            EXPECT_EQ(blocked, 0u);
            for (size_t k = 0; k < static_cast<size_t>(dp::Monitored::Count); ++k) {
                EXPECT_EQ(mon_packets(static_cast<dp::Monitored>(k)), 0u) << dp::kMonitoredNames[k];
            }
            EXPECT_EQ(w_->counters().drops[static_cast<unsigned>(dp::DropReason::Policy)].get(), drops0 + 30);
        }
        // The verdicts are decided the same way in both modes, and counted under their reasons.
        EXPECT_EQ(reason_packets("p/ips/198.19.1.1"), 10u);
        EXPECT_EQ(reason_packets("p/ips/198.19.1.2"), 10u);
        EXPECT_EQ(reason_packets("p/ips/198.19.1.3"), 10u);
        EXPECT_EQ(reason_packets("p/ips/198.19.1.4"), 10u);
        EXPECT_EQ(reason_packets("hosts/auto_block"), 10u);
        // The flow records: the verdict decided, and whether it applied.
        const std::vector<dp::FlowRecord> recs = records();
        ASSERT_EQ(recs.size(), 6u);
        unsigned drops = 0;
        for (const dp::FlowRecord& r : recs) {
            EXPECT_EQ(r.unenforced, monitor ? 1 : 0) << "reason " << r.reason;
            EXPECT_LT(r.reason, dp::kMaxReasons) << "the monitor bit stays out of the reason id";
            drops += r.verdict == dp::cached::kDrop ? 1 : 0;
        }
        EXPECT_EQ(drops, 2u) << "the drop marker and the blocked host";
    }

    rte_ring* ring_ = nullptr;
};

TEST_F(Monitor, EnforcingPolicyAppliesEveryVerdict) {
    auto snap = compile_mode(policy_text(nullptr), false);
    ASSERT_NE(snap, nullptr);
    EXPECT_TRUE(snap->policies[0].enforce);
    every_verdict(snap.get(), false);
}

TEST_F(Monitor, EnforceFalseRecordsEveryVerdictAndForwards) {
    auto snap = compile_mode(policy_text("false"), false);
    ASSERT_NE(snap, nullptr);
    EXPECT_FALSE(snap->policies[0].enforce);
    every_verdict(snap.get(), true);
}

TEST_F(Monitor, ModeMonitorOverridesEnforceTrue) {
    auto snap = compile_mode(policy_text("true"), true);
    ASSERT_NE(snap, nullptr);
    every_verdict(snap.get(), true);
}

// A reload flips the policy between monitor and enforce under traffic: the flow's next packet
// after each publication follows the new mode, and its record tells the mode at its end.
TEST_F(Monitor, ReloadSwitchesBetweenMonitorAndEnforce) {
    auto monitoring = compile_mode(policy_text("false"), false);
    auto enforcing = compile_mode(policy_text("true"), false);
    auto monitoring_again = compile_mode(policy_text("false"), false);
    ASSERT_NE(monitoring, nullptr);
    ASSERT_NE(enforcing, nullptr);
    ASSERT_NE(monitoring_again, nullptr);
    publish(monitoring.get(), 1, false, 0);
    EXPECT_EQ(send(kDropServer, 2001, 5), 5u);
    EXPECT_EQ(send(kRejectServer, 2002, 5), 5u);
    publish(enforcing.get(), 2, false, 0);
    EXPECT_EQ(send(kDropServer, 2001, 5), 0u) << "enforced from the first packet after the reload";
    EXPECT_EQ(send(kRejectServer, 2002, 5), 0u);
    publish(monitoring_again.get(), 3, false, 0);
    EXPECT_EQ(send(kDropServer, 2001, 5), 5u) << "and back to monitor mode";
    EXPECT_EQ(send(kRejectServer, 2002, 5), 5u);
    EXPECT_EQ(mon_packets(dp::Monitored::Drop), 10u);
    EXPECT_EQ(mon_packets(dp::Monitored::Reject), 10u);
    EXPECT_EQ(w_->counters().drops[static_cast<unsigned>(dp::DropReason::Policy)].get(), 10u);
    const std::vector<dp::FlowRecord> recs = records();
    ASSERT_EQ(recs.size(), 2u);
    for (const dp::FlowRecord& r : recs) {
        EXPECT_EQ(r.unenforced, 1) << "monitor mode at the flow's end";
    }
}

// The mode is the leaf policy's: inherited from the nearest policy on the chain that says, and
// per pool, so one snapshot can enforce for some hosts and only monitor others.
TEST_F(Monitor, EnforceIsInheritedAndPerPool) {
    auto snap = compile_mode(R"(version: 1
default_policy: trial
pools:
  - {name: prod, ip: [198.18.1.0/24], policy: prod}
policies:
  base:
    enforce: false
    default: pass
    ips: {198.19.1.1: drop}
  trial:
    parent: base
  prod:
    parent: base
    enforce: true
)",
                             false);
    ASSERT_NE(snap, nullptr);
    publish(snap.get(), 1, false, 0);
    EXPECT_EQ(send(kDropServer, 3001, 3, {198, 18, 2, 10}), 3u) << "trial inherits base's monitor mode";
    EXPECT_EQ(send(kDropServer, 3002, 3, {198, 18, 1, 10}), 0u) << "prod enforces";
    EXPECT_EQ(mon_packets(dp::Monitored::Drop), 3u);
}

// A packet whose new flow finds the table full gets the verdicts that need no flow state
// (worker_flowless.cpp): in monitor mode they are counted and the packet leaves.
TEST_F(Monitor, PacketsWithoutAFlowEntryFollowTheMode) {
    auto enforcing = compile_mode(policy_text("true"), false);
    auto monitoring = compile_mode(policy_text("false"), false);
    ASSERT_NE(enforcing, nullptr);
    ASSERT_NE(monitoring, nullptr);
    for (const bool monitor : {false, true}) {
        SCOPED_TRACE(monitor ? "monitor" : "enforce");
        publish(monitor ? monitoring.get() : enforcing.get(), monitor ? 2 : 1, true, monitor ? 2 : 1);
        for (uint32_t i = 0; i < 64; ++i) {
            send(kPassServer, static_cast<uint16_t>(4000 + i), 1, {198, 18, 2, static_cast<uint8_t>(i)});
        }
        const uint64_t full0 = w_->counters().table_full.get() + w_->counters().bucket_full.get();
        const unsigned dropped = send(kDropServer, 5001, 5);
        const unsigned rejected = send(kRejectServer, 5002, 5);
        const unsigned shaped = send(kShapeServer, 5003, 5);
        const unsigned policed = send(kPoliceServer, 5004, 5);
        const unsigned blocked = send(kPassServer, 5005, 5, kBlockedHost);
        EXPECT_EQ(w_->counters().table_full.get() + w_->counters().bucket_full.get(), full0 + 25)
            << "none of them got an entry";
        if (monitor) {
            EXPECT_EQ(dropped + rejected + shaped + policed + blocked, 25u);
            for (const dp::Monitored k : {dp::Monitored::Drop, dp::Monitored::Reject, dp::Monitored::Shape,
                                          dp::Monitored::Police, dp::Monitored::Block}) {
                EXPECT_EQ(mon_packets(k), 5u) << dp::kMonitoredNames[static_cast<size_t>(k)];
            }
        } else {
            EXPECT_EQ(dropped + rejected + blocked, 0u);
            EXPECT_LT(shaped, 5u);
            EXPECT_LT(policed, 5u);
            EXPECT_EQ(mon_packets(dp::Monitored::Drop) + mon_packets(dp::Monitored::Block), 0u);
        }
        EXPECT_EQ(w_->counters().flowless[static_cast<size_t>(dp::Flowless::Drop)].get(), monitor ? 20u : 10u)
            << "decided the same in both modes (drop: the drop marker and the blocked host)";
        records();  // ends the 64 flows
    }
}

} // namespace
} // namespace l7gate::test
