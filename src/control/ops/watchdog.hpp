#pragma once
// Worker watchdog and fail-open standby path, on the control thread.
//
// Every control tick the watchdog reads each worker's heartbeat (the loop iteration count it
// publishes at least every 16 iterations, and on every idle poll). A heartbeat that has not
// moved for --watchdog-ms marks the worker stalled: logged, counted. With --fail-open the
// control thread then takes the worker's RX queues over (Worker::standby_acquire: never
// while the worker is inside an RX burst) and forwards what arrives, uninspected, to the
// peer port through a TX queue of its own (index --rxq: the worker keeps its TX queue, which
// it may still use for the burst it held when it stalled). When the heartbeat moves again
// the queues go back to the worker. One owner per RX queue at any time; every packet the
// standby path handles is counted in its own counters, which the stats add to the totals.

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "dataplane/counters.hpp"

namespace l7gate::dp {
class Worker;
}

namespace l7gate::ctl {

struct WatchdogConfig {
    uint32_t stall_ms = 500;   // 0: off
    bool fail_open = false;
    uint16_t standby_txq = 0;  // the TX queue of every port reserved for the standby path
};

class Watchdog {
public:
    using Clock = std::chrono::steady_clock;

    // peer[port id]: where frames received on that port leave.
    Watchdog(std::vector<dp::Worker*> workers, std::vector<uint16_t> ports, std::vector<uint16_t> peer,
             WatchdogConfig cfg);

    // Control loop, every tick. Returns true while the standby path forwards for a worker
    // (the caller should tick again at once rather than sleep).
    bool tick(Clock::time_point now);
    // Hands every queue back (before the workers are stopped and the ports closed).
    void release_all();

    const dp::WorkerCounters& standby() const noexcept { return *standby_; }
    uint64_t stalls() const noexcept { return stalls_; }
    uint64_t takeovers() const noexcept { return takeovers_; }
    uint64_t recoveries() const noexcept { return recoveries_; }
    bool enabled() const noexcept { return cfg_.stall_ms != 0; }

private:
    struct State {
        uint64_t beat = 0;
        Clock::time_point changed{};
        bool stalled = false;
        bool standby = false;
    };
    // One round of forwarding for worker w's queues; returns the packets moved.
    unsigned forward(size_t w);

    std::vector<dp::Worker*> workers_;
    std::vector<uint16_t> ports_;
    std::vector<uint16_t> peer_;
    WatchdogConfig cfg_;
    std::vector<State> state_;
    std::unique_ptr<dp::WorkerCounters> standby_;  // single writer: the control thread
    uint64_t stalls_ = 0, takeovers_ = 0, recoveries_ = 0;
};

} // namespace l7gate::ctl
