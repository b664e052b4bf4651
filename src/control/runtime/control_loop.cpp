#include "control/runtime/control_loop.hpp"

#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>


#include "control/records/flow_log.hpp"
#include "control/records/record_stream.hpp"
#include "control/observe/metrics.hpp"
#include "control/policy/manager.hpp"
#include "control/hosts/host_scores.hpp"
#include "control/observe/prompt.hpp"
#include "control/observe/worker_queries.hpp"
#include "control/runtime/service.hpp"
#include "control/observe/telemetry.hpp"
#include "control/ops/watchdog.hpp"
#include "control/observe/stats_report.hpp"
#include "dataplane/worker.hpp"

namespace l7gate::ctl {

namespace {

using Clock = Service::Clock;

class WatchdogService : public Service {
public:
    explicit WatchdogService(Watchdog& w) : w_(w) {}
    const char* name() const override { return "watchdog"; }
    // Detection and fail-open forwarding run on the watchdog's own thread: this only logs
    // the stalls and recoveries it counted.
    bool run(Clock::time_point, Clock::time_point) override {
        w_.report();
        return false;
    }

private:
    Watchdog& w_;
};

// Flow records: the record stream drains the workers' rings into its sinks, at most
// RecordStream::kMaxRecordsPerPoll records and the service's time budget per tick.
class FlowRecordService : public Service {
public:
    explicit FlowRecordService(RecordStream& r) : r_(r) {}
    const char* name() const override { return "flow_records"; }
    bool run(Clock::time_point now, Clock::time_point deadline) override {
        RecordStream::Budget b;
        b.time = std::chrono::duration_cast<std::chrono::microseconds>(deadline - now);
        r_.poll(b);
        return backlog() != 0;
    }
    uint64_t backlog() const override { return r_.backlog(); }

private:
    RecordStream& r_;
};

class HostService : public Service {
public:
    HostService(HostScores& h, const PolicyManager* p, EventSink* events) : h_(h), p_(p), events_(events) {}
    const char* name() const override { return "hosts"; }
    bool run(Clock::time_point, Clock::time_point deadline) override {
        h_.poll(p_ != nullptr ? p_->current() : nullptr, events_, HostScores::kEventsPerTick, deadline);
        return h_.backlog() != 0;
    }
    uint64_t backlog() const override { return h_.backlog(); }

private:
    HostScores& h_;
    const PolicyManager* p_;
    EventSink* events_;
};

// Replies from the workers' command rings, for the prompt and telemetry (never waits).
class QueriesService : public Service {
public:
    explicit QueriesService(WorkerQueries& q) : q_(q) {}
    const char* name() const override { return "queries"; }
    bool run(Clock::time_point, Clock::time_point) override {
        q_.poll();
        return false;
    }

private:
    WorkerQueries& q_;
};

class PromptService : public Service {
public:
    explicit PromptService(Prompt& p) : p_(p) {}
    const char* name() const override { return "prompt"; }
    bool run(Clock::time_point, Clock::time_point) override {
        quit_ = quit_ || !p_.poll();
        return false;
    }
    bool quit() const { return quit_; }

private:
    Prompt& p_;
    bool quit_ = false;
};

class PolicyService : public Service {
public:
    PolicyService(PolicyManager& p, std::atomic<bool>* reload) : p_(p), reload_(reload) {}
    const char* name() const override { return "policy"; }
    bool run(Clock::time_point now, Clock::time_point) override {
        if (reload_ != nullptr && reload_->exchange(false)) {
            p_.request_reload("SIGHUP");
        }
        p_.poll(now);
        const ReloadStatus& rs = p_.status();
        const uint64_t seen = rs.reloads_ok + rs.reloads_failed + rs.reloads_unacknowledged;
        if (seen != seen_ || rs.applied_generation != applied_) {
            seen_ = seen;
            applied_ = rs.applied_generation;
            telemetry_set_policy_status(rs);
        }
        return false;
    }
    uint64_t backlog() const override { return p_.retired_pending(); }

private:
    PolicyManager& p_;
    std::atomic<bool>* reload_;
    uint64_t seen_ = UINT64_MAX;
    uint64_t applied_ = UINT64_MAX;
};

class MetricsService : public Service {
public:
    MetricsService(const std::vector<uint16_t>& ports, const std::vector<const dp::Worker*>& workers,
                   const ControlHooks& hooks, size_t top_hosts, const ServiceRuntime& rt)
        : ports_(ports), workers_(workers), hooks_(hooks), top_hosts_(top_hosts), rt_(rt),
          last_(Clock::now() - std::chrono::seconds(1)) {}  // the first tick updates
    const char* name() const override { return "metrics"; }
    bool run(Clock::time_point now, Clock::time_point) override {
        if (now - last_ < std::chrono::seconds(1)) {
            return false;
        }
        last_ = now;
        // with_pmd: the port families need the PMD's counters (rte_eth_stats_get).
        StatsSnapshot ms = collect_stats(ports_, workers_, true, hooks_.watchdog);
        fill_host_stats(ms, hooks_.hosts, top_hosts_);
        fill_record_stats(ms, hooks_.records);
        ms.services = rt_.stats();
        hooks_.metrics->update(ms, *hooks_.names, *hooks_.reasons, policy_status(hooks_.policy), hooks_.tsc_hz,
                               hooks_.policy != nullptr ? hooks_.policy->current() : nullptr);
        return false;
    }

private:
    const std::vector<uint16_t>& ports_;
    const std::vector<const dp::Worker*>& workers_;
    const ControlHooks& hooks_;
    size_t top_hosts_;
    const ServiceRuntime& rt_;
    Clock::time_point last_;
};

class StatsService : public Service {
public:
    StatsService(const std::vector<uint16_t>& ports, const std::vector<const dp::Worker*>& workers,
                 const Watchdog* watchdog, double interval_s, Clock::time_point start)
        : ports_(ports), workers_(workers), watchdog_(watchdog), interval_s_(interval_s), start_(start),
          last_(start), prev_(collect_stats(ports, workers, false, watchdog)) {}
    const char* name() const override { return "stats"; }
    bool run(Clock::time_point now, Clock::time_point) override {
        const double dt = std::chrono::duration<double>(now - last_).count();
        if (dt < interval_s_) {
            return false;
        }
        StatsSnapshot cur = collect_stats(ports_, workers_, false, watchdog_);
        const double elapsed = std::chrono::duration<double>(now - start_).count();
        std::printf("[%8.1f s] %s\n", elapsed, stats_line(cur, prev_, dt).c_str());
        std::fflush(stdout);
        prev_ = std::move(cur);
        last_ = now;
        return false;
    }

private:
    const std::vector<uint16_t>& ports_;
    const std::vector<const dp::Worker*>& workers_;
    const Watchdog* watchdog_;
    double interval_s_;
    Clock::time_point start_;
    Clock::time_point last_;
    StatsSnapshot prev_;
};

} // namespace

namespace {

std::string run_services(Options& opt, const std::vector<uint16_t>& ports, const std::vector<const dp::Worker*>& workers,
                         const std::atomic<bool>& stop, const ControlHooks& hooks, ServiceRuntime& rt) {
    const auto start = Clock::now();
    auto last_tick = start;
    Clock::duration idle_for{0};
    uint64_t last_rx = 0;
    std::vector<uint64_t> last_beat(workers.size(), 0);

    std::unique_ptr<WatchdogService> watchdog;
    std::unique_ptr<FlowRecordService> records;
    std::unique_ptr<HostService> hosts;
    std::unique_ptr<QueriesService> queries;
    std::unique_ptr<PromptService> prompt;
    std::unique_ptr<PolicyService> policy;
    std::unique_ptr<MetricsService> metrics;
    std::unique_ptr<StatsService> stats;
    if (hooks.watchdog != nullptr) {
        watchdog = std::make_unique<WatchdogService>(*hooks.watchdog);
        rt.add(*watchdog, kBudgetWatchdog);
    }
    if (hooks.records != nullptr) {
        records = std::make_unique<FlowRecordService>(*hooks.records);
        rt.add(*records, kBudgetFlowRecords);
    }
    if (hooks.hosts != nullptr) {
        hosts = std::make_unique<HostService>(*hooks.hosts, hooks.policy, hooks.events);
        rt.add(*hosts, kBudgetHosts);
    }
    if (hooks.queries != nullptr) {
        queries = std::make_unique<QueriesService>(*hooks.queries);
        rt.add(*queries, kBudgetQueries);
    }
    if (hooks.prompt != nullptr) {
        prompt = std::make_unique<PromptService>(*hooks.prompt);
        rt.add(*prompt, kBudgetPrompt);
    }
    if (hooks.policy != nullptr) {
        policy = std::make_unique<PolicyService>(*hooks.policy, hooks.reload_requested);
        rt.add(*policy, kBudgetPolicy);
    }
    if (hooks.metrics != nullptr) {
        metrics = std::make_unique<MetricsService>(ports, workers, hooks, opt.top_hosts, rt);
        rt.add(*metrics, kBudgetMetrics);
    }
    if (opt.stats_interval_s > 0) {
        stats = std::make_unique<StatsService>(ports, workers, hooks.watchdog, opt.stats_interval_s, start);
        rt.add(*stats, kBudgetStats);
    }

    bool again = false;
    while (!stop.load(std::memory_order_relaxed)) {
        // A service with work left (a record or score-event backlog) runs again at once;
        // each still stops at its budget, so the others and the stop conditions keep their turn.
        if (!again) {
            std::this_thread::sleep_for(kTick);
        }
        if (opt.test_slow_control_ms != 0) {  // tests: a control thread held up on every tick
            std::this_thread::sleep_for(std::chrono::milliseconds(opt.test_slow_control_ms));
        }
        again = rt.tick();
        if (prompt != nullptr && prompt->quit()) {
            return "quit";
        }
        const auto now = Clock::now();
        const double elapsed = std::chrono::duration<double>(now - start).count();
        if (opt.duration_s > 0 && elapsed >= opt.duration_s) {
            return "duration reached";
        }
        // Idle time only accrues while every worker is polling (its heartbeat moves): a
        // worker held up inside a call (a slow disk under a pcap vdev, a busy host) has not
        // seen the end of its input.
        uint64_t rx = 0;
        bool all_polling = true;
        for (size_t i = 0; i < workers.size(); ++i) {
            rx += workers[i]->counters().rx_packets.get();
            const uint64_t beat = workers[i]->counters().heartbeat.get();
            all_polling = all_polling && beat != last_beat[i];
            last_beat[i] = beat;
        }
        if (hooks.watchdog != nullptr) {
            rx += hooks.watchdog->standby().rx_packets.get();  // the fail-open path's too
        }
        if (rx != last_rx) {
            last_rx = rx;
            idle_for = {};
        } else if (all_polling) {
            idle_for += now - last_tick;
        }
        last_tick = now;
        if (opt.bench_stop_at_end) {
            bool all_finished = true;
            for (const dp::Worker* w : workers) {
                all_finished = all_finished && w->finished();
            }
            if (all_finished) {
                return "end of the capture (--bench-stop-at-end)";
            }
        }
        if (opt.idle_exit_ms > 0 && rx > 0 && idle_for >= std::chrono::milliseconds(opt.idle_exit_ms)) {
            return "idle for " + std::to_string(opt.idle_exit_ms) + " ms";
        }
    }
    return "signal";
}

} // namespace

std::string run_control_loop(Options& opt, const std::vector<uint16_t>& ports,
                             const std::vector<const dp::Worker*>& workers,
                             const std::atomic<bool>& stop, const ControlHooks& hooks) {
    ServiceRuntime rt;
    std::string why = run_services(opt, ports, workers, stop, hooks, rt);
    if (hooks.services_out != nullptr) {
        *hooks.services_out = rt.stats();
    }
    return why;
}

} // namespace l7gate::ctl
