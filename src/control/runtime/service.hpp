#pragma once
// The control side as services (main lcore), ticked by one ServiceRuntime.
//
// A Service does a bounded amount of work per call: run() takes the tick's deadline (now +
// the service's time budget) and a service whose work can be cut (records, score events)
// stops there and leaves the rest queued, reported by backlog(). Work that cannot be cut
// (a policy compile, a metrics update) finishes and counts a budget overrun. The runtime
// measures every call, so a service that keeps the thread is visible in /metrics
// (l7gate_control_service_seconds_total, l7gate_control_tick_overruns_total) rather than
// silently starving the others: every service runs on every tick whatever the others'
// backlogs.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace l7gate::ctl {

class Service {
public:
    using Clock = std::chrono::steady_clock;
    virtual ~Service() = default;
    virtual const char* name() const = 0;
    // One tick's share of work, to end by `deadline` where it can be cut. True when work is
    // left that should run at once (the runtime then skips the tick's sleep).
    virtual bool run(Clock::time_point now, Clock::time_point deadline) = 0;
    // Work queued for later ticks (records, events, ...); 0 for services without a queue.
    virtual uint64_t backlog() const { return 0; }
};

struct ServiceStats {
    std::string name;
    double budget_s = 0;
    double seconds_total = 0;  // time spent in run(), since start
    uint64_t runs = 0;
    uint64_t overruns = 0;     // runs that took longer than the budget
    double max_s = 0;          // longest run
    uint64_t backlog = 0;      // after the last run
};

class ServiceRuntime {
public:
    using Clock = Service::Clock;

    // Services run in the order added. The runtime does not own them.
    void add(Service& s, Clock::duration budget);
    // One tick: every service once, each measured against its budget. True when one has
    // work left that should run at once.
    bool tick();
    const std::vector<ServiceStats>& stats() const { return stats_; }

private:
    struct Entry {
        Service* service;
        Clock::duration budget;
    };
    std::vector<Entry> services_;
    std::vector<ServiceStats> stats_;  // same order
};

} // namespace l7gate::ctl
