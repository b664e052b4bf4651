#pragma once
// DPDK telemetry commands for l7gate (dpdk-telemetry.py shows them):
//   /l7gate/stats   packets and drops per port and reason, flows, classification
//   /l7gate/flows   flow-table state per worker and the top protocols
//   /l7gate/policy  policy source, generation, reload counters
// Callbacks run on DPDK's telemetry thread: they read single-writer counters and a status
// copy that the control thread refreshes under a mutex; never a policy snapshot.

#include <cstdint>
#include <string>
#include <vector>

#include "control/policy_manager.hpp"

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

// Registers the commands; the context must outlive EAL. Returns "" or an error.
std::string telemetry_register(const TelemetryContext& ctx);
// Control thread: publish the latest reload status for /l7gate/policy.
void telemetry_set_policy_status(const ReloadStatus& s);

} // namespace l7gate::ctl
