#pragma once
// DPDK telemetry commands for l7gate (dpdk-telemetry.py shows them):
//   /l7gate/stats   packets and drops per port and reason, flows, classification
//   /l7gate/flows   flow-table state per worker and the top protocols
//   /l7gate/policy  policy source, generation, reload counters
// Callbacks run on DPDK's telemetry threads (one per client connection): they read
// single-writer counters and a status copy that the control thread refreshes; never a policy
// snapshot. One mutex, on the control side only (telemetry threads and the main lcore, never a
// worker), covers the context pointer and the status: a callback holds it from start to end.
// DPDK 22.11 cannot unregister a command and its telemetry threads outlive rte_eal_cleanup(),
// so l7gate detaches the context before freeing what it names: from then on the commands
// fail (the client gets {"/l7gate/stats": null}).

#include <cstdint>
#include <string>
#include <vector>

#include "control/policy/manager.hpp"

namespace l7gate::dp {
class Worker;
}

namespace l7gate::ctl {

class NdpiNames;
class ReasonRegistry;

struct TelemetryContext {
    std::vector<uint16_t> ports;
    std::vector<const dp::Worker*> workers;
    const NdpiNames* names = nullptr;
    const ReasonRegistry* reasons = nullptr;
    std::string policy_file;
};

// Registers the commands on `ctx`, which must stay valid until telemetry_detach(). Returns ""
// or an error.
std::string telemetry_register(const TelemetryContext& ctx);
// Main lcore, before the workers, ports, names or `ctx` go (at exit and on a start-up
// failure): waits for a running callback to return, then makes every later one fail without
// touching any of them. Idempotent; harmless when nothing was registered.
void telemetry_detach();
// Control thread: publish the latest reload status for /l7gate/policy.
void telemetry_set_policy_status(const ReloadStatus& s);

} // namespace l7gate::ctl
