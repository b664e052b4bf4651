#pragma once
// DPDK telemetry commands for l7gate (dpdk-telemetry.py shows them):
//   /l7gate/stats   packets and drops per port and reason, flows, classification
//   /l7gate/flows   flow-table state per worker and the top protocols
//   /l7gate/policy  policy source, generation, reload counters
//   /l7gate/top_flows,N  the N (default 10) largest active flows, asked of the workers
// Callbacks run on DPDK's telemetry threads (one per client connection): they read
// single-writer counters and a status copy that the control thread refreshes; never a policy
// snapshot, never a worker's flow table. One mutex, on the control side only (telemetry
// threads and the main lcore, never a worker), covers the context pointer and the status: a
// callback holds it while it reads them. DPDK 22.11 cannot unregister a command and its
// telemetry threads outlive rte_eal_cleanup(), so l7gate detaches the context before freeing
// what it names (the workers, whose counters the callbacks read, included): detaching waits
// for a callback that holds the mutex, and from then on the commands fail (the client gets
// {"/l7gate/stats": null}).
// /l7gate/top_flows does not hold the mutex while it waits: it takes the QueryInbox (a
// shared_ptr, alive while it waits), lets go of the mutex, queues the question for the control
// thread (which asks the workers through their command rings) and blocks this telemetry
// thread until the answer; then it takes the mutex again to name protocols, and fails if the
// context was detached meanwhile. WorkerQueries::close() at shutdown answers it "stopping".

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "control/policy/manager.hpp"

namespace l7gate::dp {
class Worker;
}

namespace l7gate::ctl {

class NdpiNames;
class ReasonRegistry;
class QueryInbox;

struct TelemetryContext {
    std::vector<uint16_t> ports;
    std::vector<const dp::Worker*> workers;
    const NdpiNames* names = nullptr;
    const ReasonRegistry* reasons = nullptr;
    std::string policy_file;
    std::shared_ptr<QueryInbox> queries;  // /l7gate/top_flows (null: it answers null)
    std::chrono::milliseconds query_wait{3000};  // how long a telemetry thread waits for it
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
