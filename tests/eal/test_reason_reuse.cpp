// Reason ids reused (issue 19, point 5) with a real worker: an id a live flow holds (a flow
// whose verdict was kept across a reload) is seen by the worker's housekeeping sweep and
// keeps its name; once the flow ended, its record in the flow-record ring still keeps it;
// the record is formatted with its original name, and only then is the id released, with
// the id's counters as the baseline its next name starts from.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "control/observe/stats_report.hpp"
#include "control/policy/reason_reclaim.hpp"
#include "control/records/flow_log.hpp"
#include "dataplane/flow_record.hpp"
#include "policy_worker.hpp"

namespace l7gate::test {
namespace {

const char* const kWithRule = R"(version: 1
default_policy: p
policies:
  p:
    default: pass
    ips:
      198.18.0.2/32: drop
)";
const char* const kWithout = R"(version: 1
default_policy: p
policies:
  p:
    default: pass
)";

class ReasonReuse : public PolicyWorker {
protected:
    void configure(dp::WorkerConfig& cfg) override {
        ring_ = rte_ring_create_elem("reasons_log", sizeof(dp::FlowRecord), 64, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
        ASSERT_NE(ring_, nullptr);
        cfg.flow_log = ring_;
    }
    void TearDown() override {
        PolicyWorker::TearDown();
        rte_ring_free(ring_);
    }
    std::unique_ptr<dp::PolicySnapshot> compile_at(const char* text, uint64_t generation) {
        ctl::PolicyConfig cfg;
        std::vector<ctl::PolicyError> errors;
        EXPECT_TRUE(ctl::load_policy_text(text, "policy.yaml", ctl::PolicyFormat::Auto, cfg, errors));
        ctl::CompileContext ctx{names_, nullptr, &reasons_, 1, generation};
        ctx.shaper_slots = &slots_;
        auto snap = ctl::compile_policy(cfg, ctx, errors);
        EXPECT_TRUE(errors.empty());
        return snap;
    }
    // Reclaimer steps, each followed by a worker housekeeping, until it is idle again after
    // `rounds` rounds in all or `limit` steps.
    void run(ctl::ReasonReclaimer& rc, uint64_t oldest_live, uint64_t rounds, int limit = 100) {
        for (int i = 0; i < limit && !(rc.rounds() >= rounds && rc.idle()); ++i) {
            clock_ += std::chrono::seconds(2);  // past kRetryHeld: a held id is swept for again
            rc.step(oldest_live, clock_);
            w_->housekeeping(now_);
        }
    }
    rte_ring* ring_ = nullptr;
    ctl::ReasonReclaimer::Clock::time_point clock_{};
};

TEST_F(ReasonReuse, AnIdIsReusedOnlyOnceNoFlowAndNoRecordHoldsIt) {
    std::unique_ptr<dp::PolicySnapshot> with = compile_at(kWithRule, 1);
    ASSERT_NE(with, nullptr);
    uint16_t rule = 0;
    for (const dp::Marker& m : with->markers) {
        if (reasons_.name(m.reason).find("198.18.0.2") != std::string::npos) {
            rule = m.reason;
        }
    }
    ASSERT_NE(rule, 0);
    const std::string rule_name = reasons_.name(rule);
    publish(with.get(), 1, false, 0);
    ASSERT_FALSE(forwarded(syn(1)));  // to 198.18.0.2: dropped by the rule, a flow holds its reason
    ASSERT_EQ(w_->counters().reason_flows[rule].get(), 1u);

    // The rule goes; the flow sends nothing more, so it keeps its verdict and reason.
    std::unique_ptr<dp::PolicySnapshot> without = compile_at(kWithout, 2);
    ASSERT_NE(without, nullptr);
    publish(without.get(), 2, false, 0);

    uint64_t taken = 0;
    ctl::ReasonReclaimer rc(&reasons_);
    ctl::ReasonHolders h;
    h.workers = 1;
    h.sweep = [this](size_t) -> dp::ReasonSweep& { return w_->reason_sweep(); };
    h.records_queued = [this](size_t) { return w_->counters().flow_log_records.get(); };
    h.records_taken = [&taken](size_t) { return taken; };
    h.counters = [this](uint16_t id, uint64_t& flows, uint64_t& packets) {
        flows += w_->counters().reason_flows[id].get();
        packets += w_->counters().reason_packets[id].get();
    };
    rc.set_holders(std::move(h));

    // Only generation 2 is live: the rule's id is a candidate, but the live flow holds it.
    run(rc, 2, 1);
    ASSERT_EQ(rc.rounds(), 1u);
    ASSERT_TRUE(rc.idle()) << "the sweep of 4,096 entries takes one housekeeping";
    EXPECT_EQ(reasons_.name(rule), rule_name) << "reused under a live flow";
    EXPECT_EQ(reasons_.reclaimed(), 0u);
    // Swept for again only kRetryHeld after the last round started, not at every tick.
    const auto t = clock_ + std::chrono::seconds(10);
    for (int i = 0; i < 10 && (rc.rounds() < 2 || !rc.idle()); ++i) {
        rc.step(2, t);
        w_->housekeeping(now_);
    }
    ASSERT_EQ(rc.rounds(), 2u);
    ASSERT_TRUE(rc.idle());
    rc.step(2, t + std::chrono::milliseconds(500));
    EXPECT_EQ(rc.rounds(), 2u) << "an id found held was swept for again before kRetryHeld";
    EXPECT_EQ(reasons_.name(rule), rule_name);
    rc.step(2, t + std::chrono::milliseconds(1500));
    EXPECT_EQ(rc.rounds(), 3u);
    clock_ = t + std::chrono::seconds(2);

    // The flow ends: its record waits in the ring, and holds the id.
    w_->flush_flows();
    ASSERT_EQ(rte_ring_count(ring_), 1u);
    run(rc, 2, 5, 20);
    EXPECT_FALSE(rc.idle()) << "waiting for the record";
    EXPECT_EQ(reasons_.name(rule), rule_name) << "reused under a record in flight";

    dp::FlowRecord r{};
    ASSERT_EQ(rte_ring_sc_dequeue_elem(ring_, &r, sizeof(r)), 0);
    const std::string line = ctl::format_flow_record(r, names_->module(), &reasons_, without.get());
    EXPECT_NE(line.find("\"verdict_reason\":\"" + rule_name + "\""), std::string::npos) << line;
    taken = 1;
    run(rc, 2, 2);
    EXPECT_TRUE(rc.idle());
    EXPECT_EQ(reasons_.reclaimed(), 1u);
    EXPECT_EQ(reasons_.name(rule), "other");

    // Its next name starts from 0.
    EXPECT_EQ(reasons_.id("p/ips/198.18.0.3/32", 3), rule);
    ctl::StatsSnapshot s;
    s.reasons.push_back({rule, w_->counters().reason_flows[rule].get(), w_->counters().reason_packets[rule].get()});
    EXPECT_TRUE(ctl::reason_totals(s, reasons_).empty());
}

} // namespace
} // namespace l7gate::test
