// The control side as services (issue 19): the runtime's budgets and gauges, HostScores
// bounded per tick, reload acknowledgements, retired snapshots and blocked sets exported.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "control/hosts/host_scores.hpp"
#include "control/observe/metrics.hpp"
#include "control/base/ndpi_names.hpp"
#include "control/policy/compiler.hpp"
#include "control/policy/manager.hpp"
#include "control/runtime/service.hpp"
#include "control/observe/stats_report.hpp"
#include "control_fixtures.hpp"
#include "dataplane/reason_sweep.hpp"
#include "dataplane/policy_snapshot.hpp"

namespace l7gate::test {
namespace {

using Clock = std::chrono::steady_clock;

ctl::NdpiNames& names() { return shared_names(); }

// A ring as the workers' (single producer, single consumer), without EAL memzones.
struct ScoreRing : HeapRing {
    explicit ScoreRing(unsigned count) : HeapRing(sizeof(dp::ScoreEvent), count, "test_scores") {}
    unsigned fill(unsigned n, uint8_t net) {
        unsigned done = 0;
        for (unsigned i = 0; i < n; ++i) {
            dp::ScoreEvent e{};
            e.ip_version = 4;
            const uint8_t a[4] = {10, net, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
            std::memcpy(e.addr, a, 4);
            e.score = 1;
            e.time_ns = 1000000000ull + i;
            done += rte_ring_sp_enqueue_elem(r, &e, sizeof(e)) == 0 ? 1 : 0;
        }
        return done;
    }
};

// A quiescent-state variable with one registered, online thread that never reports a
// quiescent state until told: a stalled worker.
struct StalledQsbr {
    rte_rcu_qsbr* q = nullptr;
    StalledQsbr() {
        const size_t sz = rte_rcu_qsbr_get_memsize(1);
        q = static_cast<rte_rcu_qsbr*>(std::aligned_alloc(64, (sz + 63) / 64 * 64));
        EXPECT_EQ(rte_rcu_qsbr_init(q, 1), 0);
        EXPECT_EQ(rte_rcu_qsbr_thread_register(q, 0), 0);
        rte_rcu_qsbr_thread_online(q, 0);
    }
    void resume() { rte_rcu_qsbr_quiescent(q, 0); }
    ~StalledQsbr() {
        rte_rcu_qsbr_thread_offline(q, 0);
        std::free(q);
    }
};

std::string metrics_text(const ctl::StatsSnapshot& s, const ctl::PolicyStatus& p) {
    ctl::ReasonRegistry reasons;
    ctl::MetricsExporter m;
    m.update_at(1.0, s, names(), reasons, p, 2e9);
    return m.text();
}

bool has_line(const std::string& text, const std::string& line) {
    return text.find("\n" + line + "\n") != std::string::npos;
}

class SlowService : public ctl::Service {
public:
    const char* name() const override { return "slow"; }
    bool run(Clock::time_point, Clock::time_point) override {
        std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
        return backlog_ != 0;
    }
    uint64_t backlog() const override { return backlog_; }
    int sleep_ms = 0;
    uint64_t backlog_ = 0;
};

TEST(ControlServices, RuntimeMeasuresEachServiceAndCountsOverruns) {
    SlowService fast, slow;
    slow.sleep_ms = 3;
    slow.backlog_ = 42;
    ctl::ServiceRuntime rt;
    rt.add(fast, std::chrono::seconds(1));  // never overrun, even on a loaded machine
    rt.add(slow, std::chrono::milliseconds(1));
    EXPECT_TRUE(rt.tick()) << "a service with work left asks for the next tick at once";
    EXPECT_TRUE(rt.tick());
    const auto& st = rt.stats();
    ASSERT_EQ(st.size(), 2u);
    EXPECT_EQ(st[0].runs, 2u);
    EXPECT_EQ(st[0].overruns, 0u);
    EXPECT_EQ(st[1].runs, 2u);
    EXPECT_EQ(st[1].overruns, 2u) << "3 ms against a 1 ms budget";
    EXPECT_GE(st[1].seconds_total, 0.006);
    EXPECT_GE(st[1].max_s, 0.003);
    EXPECT_EQ(st[1].backlog, 42u);
    slow.backlog_ = 0;
    slow.sleep_ms = 0;
    EXPECT_FALSE(rt.tick());

    ctl::StatsSnapshot s;
    s.services = rt.stats();
    const std::string text = metrics_text(s, {});
    EXPECT_TRUE(has_line(text, "l7gate_control_tick_overruns_total{service=\"slow\"} 2")) << text;
    EXPECT_TRUE(has_line(text, "l7gate_control_tick_overruns_total{service=\"slow\"} 2"));
    EXPECT_TRUE(has_line(text, "l7gate_control_service_backlog{service=\"slow\"} 0"));
    EXPECT_NE(text.find("l7gate_control_service_seconds_total{service=\"slow\"} 0.00"), std::string::npos);
}

TEST(ControlServices, HostScoresTakesABoundedShareOfEveryRingPerTick) {
    ctl::ReasonRegistry reasons;
    ctl::HostScores hosts(nullptr, reasons, true);
    ScoreRing a(16384), b(16384);
    ASSERT_EQ(a.fill(10000, 1), 10000u);
    ASSERT_EQ(b.fill(100, 2), 100u);
    hosts.add_ring(a.r);
    hosts.add_ring(b.r);
    EXPECT_EQ(hosts.backlog(), 10100u);
    const size_t took = hosts.poll(nullptr, nullptr, ctl::HostScores::kEventsPerTick);
    EXPECT_EQ(took, ctl::HostScores::kEventsPerTick);
    EXPECT_EQ(hosts.backlog(), 10100u - ctl::HostScores::kEventsPerTick) << "the rest waits for the next ticks";
    EXPECT_EQ(rte_ring_count(b.r), 0u) << "round robin: the busy ring does not starve the other";
    // A deadline already passed: one batch, not the whole share.
    const size_t late = hosts.poll(nullptr, nullptr, ctl::HostScores::kEventsPerTick, Clock::now());
    EXPECT_GT(late, 0u);
    EXPECT_LE(late, 64u);
    while (hosts.poll(nullptr, nullptr, ctl::HostScores::kEventsPerTick) != 0) {
    }
    EXPECT_EQ(hosts.backlog(), 0u);
}

TEST(ControlServices, HostDecisionsCostWhatChangedNotTheTable) {
    constexpr uint64_t kSec = 1000000000ull;
    ctl::ReasonRegistry reasons;
    ctl::HostScores hosts(nullptr, reasons, true);
    dp::PolicySnapshot pol;
    pol.auto_block = true;
    pol.auto_block_score = 100;
    pol.auto_block_window_ns = 60 * kSec;
    pol.auto_block_for_ns = 600 * kSec;
    auto ev = [](uint32_t i, uint16_t score, uint64_t t) {
        dp::ScoreEvent e{};
        e.ip_version = 4;
        const uint8_t a[4] = {10, 7, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
        std::memcpy(e.addr, a, 4);
        e.score = score;
        e.time_ns = t;
        return e;
    };
    const uint32_t n = ctl::HostScores::kMaxHosts;
    for (uint32_t i = 0; i < n; ++i) {
        hosts.add(ev(i, 1, kSec));
    }
    hosts.decide(&pol, kSec, nullptr);
    EXPECT_EQ(hosts.visited_last_decide(), n) << "the first decision (a new policy) checks every host";
    hosts.add(ev(5, 99, 2 * kSec));  // 1 + 99: at the threshold
    hosts.add(ev(6, 1, 2 * kSec));
    hosts.decide(&pol, 2 * kSec, nullptr);
    EXPECT_LE(hosts.visited_last_decide(), 2 + ctl::HostScores::kSweepPerCall) << "the hosts heard from and a slice";
    EXPECT_EQ(hosts.blocked_count(), 1u) << "a host heard from is blocked at once";
    // Past the window every idle host is forgotten, a slice per call.
    size_t calls = 0;
    while (hosts.host_count() > 1 && calls < 100) {
        hosts.decide(&pol, 100 * kSec, nullptr);
        EXPECT_LE(hosts.visited_last_decide(), ctl::HostScores::kSweepPerCall);
        ++calls;
    }
    EXPECT_EQ(hosts.host_count(), 1u) << "only the blocked host stays";
    EXPECT_LE(calls, n / ctl::HostScores::kSweepPerCall + 2);
    // A reload (another threshold) checks every host again.
    pol.auto_block_score = 50;
    hosts.decide(&pol, 100 * kSec, nullptr);
    EXPECT_EQ(hosts.visited_last_decide(), 1u);
}

TEST(ControlServices, RetiredBlockedSetsAreCountedAndExported) {
    constexpr uint64_t kSec = 1000000000ull;
    StalledQsbr q;
    ctl::ReasonRegistry reasons;
    ctl::HostScores hosts(q.q, reasons, true);
    dp::PolicySnapshot pol;
    pol.auto_block = true;
    pol.auto_block_score = 10;
    pol.auto_block_window_ns = 60 * kSec;
    pol.auto_block_for_ns = 600 * kSec;
    for (uint8_t h = 1; h <= 3; ++h) {
        dp::ScoreEvent e{};
        e.ip_version = 4;
        const uint8_t a[4] = {198, 18, 0, h};
        std::memcpy(e.addr, a, 4);
        e.score = 10;
        e.time_ns = h * kSec;
        hosts.add(e);
        hosts.poll(&pol, nullptr);  // blocks h: a new set, the previous one retired
    }
    EXPECT_EQ(hosts.blocked_count(), 3u);
    EXPECT_EQ(hosts.retired_pending(), 3u) << "the stalled worker may still read every replaced set";
    ctl::StatsSnapshot s;
    ctl::fill_host_stats(s, &hosts);
    EXPECT_TRUE(has_line(metrics_text(s, {}), "l7gate_blocked_sets_retired_pending 3"));
    q.resume();
    hosts.poll(&pol, nullptr);
    EXPECT_EQ(hosts.retired_pending(), 0u);
}

TEST(ControlServices, ReasonNamesInUseAreExported) {
    ctl::ReasonRegistry reasons;  // "none" is registered at construction
    for (int i = 0; i < 5000; ++i) {
        reasons.id("p/ips/rule" + std::to_string(i));
    }
    ctl::MetricsExporter m;
    m.update_at(1.0, {}, names(), reasons, {}, 2e9);
    EXPECT_TRUE(has_line(m.text(), "l7gate_reason_names 4095")) << "saturated: the rest are \"other\"";
}

TEST(ControlServices, ScoreEventsLostAreExported) {
    ctl::StatsSnapshot s;
    s.host_score_events = 11;
    s.host_score_events_lost = 7;
    s.host_score_backlog = 5;
    const std::string text = metrics_text(s, {});
    EXPECT_TRUE(has_line(text, "l7gate_host_score_events_total 11"));
    EXPECT_TRUE(has_line(text, "l7gate_host_score_events_lost_total 7"));
    EXPECT_TRUE(has_line(text, "l7gate_host_score_backlog 5"));
}

// Reloads of a small policy file with fake worker acknowledgements.
class Reloads : public testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/l7gate-services-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        path_ = dir_ + "/policy.yaml";
        write(0);
        ctx_.names = &names();
        ctx_.reasons = &reasons_;
    }
    void TearDown() override {
        std::remove(path_.c_str());
        rmdir(dir_.c_str());
    }
    void write(int n) {
        std::ofstream(path_, std::ios::trunc) << "version: 1\ndefault_policy: p\npolicies:\n  p: {default: pass, ips: {198.19."
                                              << n << ".0/24: drop}}\n";
    }
    // Rewrites the file and reloads it as SIGHUP does: file events queued by the write are
    // ignored while an explicit request is pending, so nothing loads it again later.
    void reload(ctl::PolicyManager& pm, int n) {
        write(n);
        pm.request_reload("test");
        const uint64_t ok = pm.status().reloads_ok;
        pm.poll(Clock::now());
        ASSERT_EQ(pm.status().reloads_ok, ok + 1);
    }
    std::string dir_, path_;
    ctl::ReasonRegistry reasons_;
    ctl::CompileContext ctx_;
};

TEST_F(Reloads, AppliedOnlyWhenEveryWorkerAcknowledgedElseUnacknowledgedAfterTheTimeout) {
    ctl::PolicyManager pm(path_, "yaml", ctx_, nullptr);
    std::vector<ctl::PolicyError> errors;
    ASSERT_TRUE(pm.load_initial(errors));
    std::vector<uint64_t> acks{0, 0};
    pm.set_acks(acks.size(), [&acks](size_t w) { return acks[w]; });
    acks = {1, 1};
    pm.poll(Clock::now());
    EXPECT_EQ(pm.status().applied_generation, 1u);

    // Both workers take generation 2.
    reload(pm, 1);
    EXPECT_EQ(pm.status().generation, 2u);
    EXPECT_TRUE(pm.status().awaiting_ack) << "published is not applied";
    EXPECT_EQ(pm.status().applied_generation, 1u);
    acks = {2, 1};
    pm.poll(Clock::now());
    EXPECT_TRUE(pm.status().awaiting_ack);
    EXPECT_EQ(pm.status().applied_generation, 1u);
    acks = {2, 2};
    pm.poll(Clock::now());
    EXPECT_FALSE(pm.status().awaiting_ack);
    EXPECT_EQ(pm.status().applied_generation, 2u);
    EXPECT_EQ(pm.status().reloads_unacknowledged, 0u);

    // Worker 1 stalls: generation 3 is reported not applied after the timeout, once.
    reload(pm, 2);
    acks = {3, 2};
    pm.poll(Clock::now());
    EXPECT_EQ(pm.status().reloads_unacknowledged, 0u) << "not before the timeout";
    pm.poll(Clock::now() + ctl::PolicyManager::kAckTimeout + std::chrono::milliseconds(10));
    EXPECT_EQ(pm.status().reloads_unacknowledged, 1u);
    EXPECT_TRUE(pm.status().awaiting_ack);
    pm.poll(Clock::now() + 2 * ctl::PolicyManager::kAckTimeout);
    EXPECT_EQ(pm.status().reloads_unacknowledged, 1u) << "counted once per reload";
    const ctl::PolicyStatus ps = ctl::policy_status(&pm);
    EXPECT_EQ(ps.generation, 3u);
    EXPECT_EQ(ps.applied_generation, 2u);
    const std::string text = metrics_text({}, ps);
    EXPECT_TRUE(has_line(text, "l7gate_policy_reloads_total{result=\"unacknowledged\"} 1")) << text;
    EXPECT_TRUE(has_line(text, "l7gate_policy_applied_generation 2"));
    EXPECT_TRUE(has_line(text, "l7gate_policy_generation 3"));
    // It resumes: applied, late.
    acks = {3, 3};
    pm.poll(Clock::now());
    EXPECT_FALSE(pm.status().awaiting_ack);
    EXPECT_EQ(pm.status().applied_generation, 3u);
    EXPECT_EQ(pm.status().reloads_unacknowledged, 1u);
}

TEST_F(Reloads, RetiredSnapshotsPileUpBehindAStalledWorkerAndAreExported) {
    StalledQsbr q;
    ctl::PolicyManager pm(path_, "yaml", ctx_, q.q);
    std::vector<ctl::PolicyError> errors;
    ASSERT_TRUE(pm.load_initial(errors));
    for (int i = 1; i <= 3; ++i) {
        reload(pm, i);
    }
    EXPECT_EQ(pm.retired_pending(), 3u);
    EXPECT_TRUE(has_line(metrics_text({}, ctl::policy_status(&pm)), "l7gate_policy_retired_pending 3"));
    q.resume();
    pm.poll(Clock::now());
    EXPECT_EQ(pm.retired_pending(), 0u);
    EXPECT_TRUE(has_line(metrics_text({}, ctl::policy_status(&pm)), "l7gate_policy_retired_pending 0"));
}

} // namespace
} // namespace l7gate::test

namespace l7gate::test {
namespace {

// A worker's side of a reason sweep (dp::Worker::sweep_reasons), done at once: the ids its
// live flows hold.
void fake_sweep(dp::ReasonSweep& s, const std::vector<uint16_t>& held) {
    const uint64_t want = s.request.load(std::memory_order_acquire);
    if (want == s.serving) {
        return;
    }
    s.serving = want;
    std::memset(s.seen, 0, sizeof(s.seen));
    for (const uint16_t id : held) {
        s.seen[id / 64] |= uint64_t{1} << (id % 64);
    }
    s.completed.store(want, std::memory_order_release);
}

// Issue 19 point 5: the registry saturated at 4,095 names for the life of the process, and
// every later new rule's reason was "other". 100 reloads of 100 new rule names each (10,000
// names) through PolicyManager with two fake workers: every rule of the policy in force keeps
// its own name; an id a live flow holds, or a flow record not yet taken from its ring, keeps
// its name until they are gone; a reused id's counters start from 0 for its new name.
TEST_F(Reloads, NamesNothingUsesAreReusedSoReloadsNeverRunOutOfReasonIds) {
    auto write_rules = [this](int r) {
        std::ofstream f(path_, std::ios::trunc);
        f << "version: 1\ndefault_policy: p\npolicies:\n  p:\n    default: pass\n    ips:\n";
        for (int i = 0; i < 100; ++i) {
            f << "      10." << r << "." << i << ".0/24: drop\n";
        }
    };
    write_rules(0);
    ctl::PolicyManager pm(path_, "yaml", ctx_, nullptr);
    std::vector<ctl::PolicyError> errors;
    ASSERT_TRUE(pm.load_initial(errors));
    dp::ReasonSweep sweeps[2];
    std::vector<uint16_t> held;         // worker 1's live flows
    uint64_t queued = 0, taken = 0;     // worker 0's flow-record ring
    ctl::ReasonHolders h;
    h.workers = 2;
    h.sweep = [&sweeps](size_t w) -> dp::ReasonSweep& { return sweeps[w]; };
    h.records_queued = [&queued](size_t w) { return w == 0 ? queued : 0; };
    h.records_taken = [&taken](size_t w) { return w == 0 ? taken : 0; };
    h.counters = [](uint16_t, uint64_t& flows, uint64_t& packets) {
        flows += 7;
        packets += 70;
    };
    pm.set_reason_holders(std::move(h));
    const Clock::time_point t0 = Clock::now();
    int ticks = 0;
    auto tick = [&] {
        for (int k = 0; k < 3; ++k) {
            fake_sweep(sweeps[0], {});
            fake_sweep(sweeps[1], held);
            // 2 s a tick: past kRetryHeld, so ids found held are swept for again.
            pm.poll(t0 + std::chrono::seconds(2 * ++ticks));
        }
    };

    uint16_t flow_id = 0, record_id = 0;
    std::string flow_name, record_name;
    for (int r = 1; r <= 100; ++r) {
        write_rules(r);
        pm.request_reload("test");
        tick();
        ASSERT_EQ(pm.status().generation, static_cast<uint64_t>(r + 1));
        const dp::PolicySnapshot* cur = pm.current();
        std::set<std::string> seen;
        uint16_t first = 0;
        for (const dp::Marker& m : cur->markers) {
            ASSERT_NE(m.reason, dp::kReasonOther) << "reload " << r << ": the registry ran out of ids";
            const std::string n = reasons_.name(m.reason);
            ASSERT_NE(n, "other") << "reload " << r;
            if (n.find("/ips/") != std::string::npos) {
                ASSERT_NE(n.find("10." + std::to_string(r) + "."), std::string::npos) << "reload " << r << ": " << n;
                first = seen.empty() ? m.reason : first;
                seen.insert(n);
            }
        }
        ASSERT_EQ(seen.size(), 100u) << "reload " << r;
        if (r == 1) {
            // A flow decided by this reload's first rule keeps its verdict (and reason) for good.
            flow_id = first;
            flow_name = reasons_.name(flow_id);
            held.push_back(flow_id);
        }
        if (r == 10) {
            // A flow of this reload's first rule ended: its record waits in the ring.
            record_id = first;
            record_name = reasons_.name(record_id);
            queued = 1;
        }
        if (r > 1) {
            EXPECT_EQ(reasons_.name(flow_id), flow_name) << "reload " << r << ": reused under a live flow";
        }
        if (r > 10 && r < 15) {
            EXPECT_EQ(reasons_.name(record_id), record_name) << "reload " << r << ": reused under a record in flight";
        }
        if (r == 15) {
            EXPECT_EQ(reasons_.name(record_id), record_name);  // the stream takes and formats it now
            taken = 1;
        }
        EXPECT_LT(reasons_.size(), 900u) << "reload " << r;
    }
    EXPECT_NE(reasons_.name(record_id), record_name) << "released once its record was taken";
    EXPECT_GT(reasons_.reclaimed(), 9000u);
    EXPECT_EQ(reasons_.name(flow_id), flow_name);
    held.clear();  // the flow ended
    tick();
    EXPECT_NE(reasons_.name(flow_id), flow_name);

    // A reused id's counters start from 0 for its new name: the counters of every id are 7
    // flows and 70 packets (the fake's), all of them the previous names'.
    const uint16_t reused = reasons_.id("p/ips/a new name", 1000);
    uint64_t bf = 0, bp = 0;
    reasons_.baseline(reused, bf, bp);
    EXPECT_EQ(bf, 7u);
    EXPECT_EQ(bp, 70u);
    ctl::StatsSnapshot s;
    s.reasons.push_back({reused, 7, 70});
    s.reasons.push_back({reused == 1 ? uint16_t{2} : uint16_t{1}, 9, 90});
    const auto totals = ctl::reason_totals(s, reasons_);
    ASSERT_EQ(totals.size(), 1u);
    EXPECT_NE(totals[0].id, reused);
    ctl::MetricsExporter m;
    m.update_at(1.0, {}, names(), reasons_, {}, 2e9);
    EXPECT_TRUE(has_line(m.text(), "l7gate_reason_names " + std::to_string(reasons_.size()))) << m.text();
    EXPECT_TRUE(has_line(m.text(), "l7gate_reason_names_reclaimed_total " + std::to_string(reasons_.reclaimed())));
}

} // namespace
} // namespace l7gate::test
