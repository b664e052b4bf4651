#pragma once
// The control thread's main loop (main lcore): stop conditions and periodic stats.

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "control/options.hpp"

namespace l7gate::dp {
class Worker;
}

namespace l7gate::ctl {

class FlowLog;
class MetricsExporter;
class NdpiNames;
class PolicyManager;
class Prompt;
class HostScores;
class ReasonRegistry;
class Watchdog;
class WorkerQueries;

// What the loop drives besides stop conditions and stats; any pointer may be null.
struct ControlHooks {
    FlowLog* flow_log = nullptr;
    PolicyManager* policy = nullptr;
    std::atomic<bool>* reload_requested = nullptr;  // set by the SIGHUP handler
    MetricsExporter* metrics = nullptr;             // updated once a second; needs names, reasons
    const NdpiNames* names = nullptr;
    const ReasonRegistry* reasons = nullptr;
    double tsc_hz = 0;
    Prompt* prompt = nullptr;                       // -i: commands run here, on each tick
    HostScores* hosts = nullptr;                    // score events, auto-block
    FlowLog* events = nullptr;                      // block / release events (may be the flow log)
    Watchdog* watchdog = nullptr;                   // stalled workers; fail-open forwarding
    WorkerQueries* queries = nullptr;               // replies from the workers' command rings
};

// Runs until `stop` is set (signal), --duration passes, or --idle-exit sees no traffic.
// Returns why it stopped, for the log.
std::string run_control_loop(Options& opt, const std::vector<uint16_t>& ports,
                             const std::vector<const dp::Worker*>& workers,
                             const std::atomic<bool>& stop, const ControlHooks& hooks);

} // namespace l7gate::ctl
