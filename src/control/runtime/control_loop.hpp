#pragma once
// The control thread's main loop (main lcore): the control services (service.hpp) ticked
// every kTick by a ServiceRuntime, and the stop conditions.
//
// Services, in the order they run each tick, and their time budgets (kBudget* below):
//   watchdog      logs what the watchdog thread counted (stalls, recoveries) 1 ms
//   flow_records  RecordStream: the workers' rings to the record sinks     2 ms
//   hosts         host score events (<= HostScores::kEventsPerTick), blocks 1 ms
//   queries       replies from the workers' command rings (prompt, telemetry) 0.5 ms
//   prompt        -i commands                                               2 ms
//   policy        reload triggers, reloads, acknowledgements, retired free  5 ms
//   metrics       counters folded and the Prometheus families, once a second 20 ms
//   stats         --stats-interval lines                                    5 ms

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "control/ops/options.hpp"
#include "control/runtime/service.hpp"

namespace l7gate::dp {
class Worker;
}

namespace l7gate::ctl {

class EventSink;
class MetricsExporter;
class NdpiNames;
class PolicyManager;
class RecordStream;
class Prompt;
class HostScores;
class ReasonRegistry;
class Watchdog;
class WorkerQueries;

// What the loop drives besides stop conditions and stats; any pointer may be null.
struct ControlHooks {
    RecordStream* records = nullptr;                // flow records to their sinks, bounded per tick
    PolicyManager* policy = nullptr;
    std::atomic<bool>* reload_requested = nullptr;  // set by the SIGHUP handler
    MetricsExporter* metrics = nullptr;             // updated once a second; needs names, reasons
    const NdpiNames* names = nullptr;
    const ReasonRegistry* reasons = nullptr;
    double tsc_hz = 0;
    Prompt* prompt = nullptr;                       // -i: commands run here, on each tick
    HostScores* hosts = nullptr;                    // score events, auto-block
    EventSink* events = nullptr;                    // block / release events (log, Kafka)
    Watchdog* watchdog = nullptr;                   // stalled workers; fail-open forwarding
    WorkerQueries* queries = nullptr;               // replies from the workers' command rings
    std::vector<ServiceStats>* services_out = nullptr;  // the services' figures when the loop returns
};

inline constexpr std::chrono::milliseconds kTick{5};  // sleep between ticks when nothing is left
inline constexpr std::chrono::microseconds kBudgetWatchdog{1000};
inline constexpr std::chrono::microseconds kBudgetFlowRecords{2000};
inline constexpr std::chrono::microseconds kBudgetHosts{1000};
inline constexpr std::chrono::microseconds kBudgetQueries{500};
inline constexpr std::chrono::microseconds kBudgetPrompt{2000};
inline constexpr std::chrono::microseconds kBudgetPolicy{5000};
inline constexpr std::chrono::microseconds kBudgetMetrics{20000};
inline constexpr std::chrono::microseconds kBudgetStats{5000};

// Runs until `stop` is set (signal), --duration passes, or --idle-exit sees no traffic.
// Returns why it stopped, for the log.
std::string run_control_loop(Options& opt, const std::vector<uint16_t>& ports,
                             const std::vector<const dp::Worker*>& workers,
                             const std::atomic<bool>& stop, const ControlHooks& hooks);

} // namespace l7gate::ctl
