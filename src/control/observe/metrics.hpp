#pragma once
// Prometheus metrics: an HTTP endpoint (prometheus-cpp's Exposer, civetweb underneath)
// serving the folded counters as the Prometheus text format.
//
// Threads: the workers never see any of this. The control thread calls update() once a second
// (and at exit) with a StatsSnapshot it has already folded; update() resolves every name
// (protocols, categories, risks, reasons) and builds the complete list of metric families.
// The Exposer's HTTP threads only call Collect() on our Collectable, which copies the list
// built by the last update() under a mutex. Nothing is computed on an HTTP thread, so a scrape
// always sees one consistent update, and a slow or hostile scraper can only delay the next
// update() by the time of one vector copy.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "control/observe/stats_report.hpp"

namespace prometheus {
class Exposer;
struct MetricFamily;
}

namespace l7gate::dp {
class PolicySnapshot;
}

namespace l7gate::ctl {

class NdpiNames;
class PolicyManager;
class ReasonRegistry;

// What the control thread knows about the policy in force and its reloads.
struct PolicyStatus {
    uint64_t generation = 0;                  // 0: no policy
    uint64_t reloads_ok = 0, reloads_failed = 0;
    double last_reload_unix = 0;              // Unix time of the last load attempt (0: none)
    bool last_reload_success = true;
    std::vector<std::string> shaper_names;    // shapers by slot (stable per name since start)
    std::vector<uint64_t> shaper_rate_bps;    // their configured rates, same order
    std::vector<uint8_t> shaper_defined;      // 0: a slot whose shaper this policy no longer has
    uint64_t applied_generation = 0;          // lowest generation every worker acknowledged
    uint64_t reloads_unacknowledged = 0;      // reloads some worker had not taken in time
    uint64_t retired_pending = 0;             // replaced snapshots not yet freed
};

// The status of `pm` (null: no policy): its reload counters and the shapers of the snapshot
// in force. Control thread.
PolicyStatus policy_status(const PolicyManager* pm);

class MetricsExporter {
public:
    static constexpr const char* kDefaultAddress = "127.0.0.1:9777";
    static constexpr size_t kMaxVerdictReasons = 50;  // reasons with their own series

    MetricsExporter();
    ~MetricsExporter();
    MetricsExporter(const MetricsExporter&) = delete;
    MetricsExporter& operator=(const MetricsExporter&) = delete;

    // addr "HOST:PORT": an IPv4 address or "localhost" (Debian's civetweb has no IPv6); port 0
    // takes a free port.
    // Starts the HTTP threads (they inherit the caller's CPU affinity: call it from the main
    // lcore). Returns "" or one error line (bad address, address not local, port in use).
    std::string start(const std::string& addr);

    // Control thread, once a second and at exit: rebuilds every metric family from `s`.
    // `current`, when given, is the policy snapshot in force: l7gate_verdicts_total then
    // labels each reason with the action of its marker in that snapshot (else action="").
    void update(const StatsSnapshot& s, const NdpiNames& names, const ReasonRegistry& reasons,
                const PolicyStatus& policy, double tsc_hz, const dp::PolicySnapshot* current = nullptr);
    // The same with the caller's monotonic clock in seconds (tests drive the busy ratio).
    void update_at(double monotonic_s, const StatsSnapshot& s, const NdpiNames& names,
                   const ReasonRegistry& reasons, const PolicyStatus& policy, double tsc_hz,
                   const dp::PolicySnapshot* current = nullptr);

    // Stops the HTTP server (the destructor does it too); update() may still be called.
    void stop();

    // "HOST:PORT" actually listened on (port 0 resolved); "" before a successful start().
    std::string bound_address() const;

    // The exposition text of the families built by the last update() (without the
    // Exposer's own exposer_* families), as a scrape would return it.
    std::string text() const;

    class Store;  // the Collectable (metrics.cpp)

private:
    std::shared_ptr<Store> store_;
    std::unique_ptr<prometheus::Exposer> exposer_;  // destroyed first: no Collect() after
    std::string host_;                              // IPv4 address listened on
    // Previous update, for the busy ratio over the last interval.
    bool have_prev_ = false;
    double prev_t_ = 0;
    std::vector<uint64_t> prev_busy_;

    // Per-worker cost and busy ratio over the interval since the previous update.
    void add_worker_metrics(std::vector<prometheus::MetricFamily>& out, const StatsSnapshot& s, double now,
                            double tsc_hz);
};

} // namespace l7gate::ctl
