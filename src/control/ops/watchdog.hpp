#pragma once
// Worker watchdog and fail-open standby path, on a thread of their own.
//
// The watchdog thread (started by start(), a plain thread beside the control thread, on the
// main lcore's CPUs) reads each worker's heartbeat (the loop iteration count it publishes at
// least every 16 iterations, and on every idle poll) once a millisecond, sleeping in between:
// nothing on it can take milliseconds (no formatting, no logging, no policy work, no lock the
// control thread holds), so a slow control thread never delays a takeover. A heartbeat that
// has not moved for --watchdog-ms marks the worker stalled (counted). With --fail-open the
// thread then takes the worker's RX queues over (Worker::standby_acquire: never while the
// worker is inside an RX burst) and forwards what arrives, uninspected, to the peer port
// through a TX queue of its own (index --rxq: the worker keeps its TX queue, which it may
// still use for the burst it held when it stalled), polling without sleeping while it
// forwards. When the heartbeat moves again the queues go back to the worker (between two
// standby bursts: acquire, forward and release all run on the watchdog thread). One owner
// per RX queue at any time; every packet the standby path handles is counted in its own
// counters, which the stats add to the totals. The control thread only logs (report()) what
// the watchdog thread counted.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
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
    // How often the watchdog thread reads the heartbeats while no worker is taken over.
    static constexpr std::chrono::milliseconds kPoll{1};

    // peer[port id]: where frames received on that port leave.
    Watchdog(std::vector<dp::Worker*> workers, std::vector<uint16_t> ports, std::vector<uint16_t> peer,
             WatchdogConfig cfg);
    ~Watchdog();  // release_all()
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;

    // Starts the watchdog thread (nothing when the watchdog is off). Returns false when the
    // thread could not be created.
    bool start();
    // Control thread, every tick: logs the stalls and recoveries the watchdog thread counted
    // since the last call.
    void report();
    // Stops the watchdog thread and hands every queue back (before the workers are stopped
    // and the ports closed).
    void release_all();

    // One round of the watchdog thread (tests drive it without the thread). Returns true while
    // the standby path forwards for a worker (the caller polls again at once).
    bool tick(Clock::time_point now);

    // Any thread: the counters are single-writer (the watchdog thread) atomics.
    const dp::WorkerCounters& standby() const noexcept { return *standby_; }
    uint64_t stalls() const noexcept { return stalls_.load(std::memory_order_relaxed); }
    uint64_t takeovers() const noexcept { return takeovers_.load(std::memory_order_relaxed); }
    uint64_t recoveries() const noexcept { return recoveries_.load(std::memory_order_relaxed); }
    bool enabled() const noexcept { return cfg_.stall_ms != 0; }

private:
    struct State {  // watchdog thread only
        uint64_t beat = 0;
        Clock::time_point changed{};
        bool stalled = false;
        bool standby = false;
    };
    struct Events {  // watchdog thread: writes; control thread (report): reads
        std::atomic<uint64_t> stalls{0};
        std::atomic<uint64_t> recoveries{0};
    };
    struct Reported {  // control thread only
        uint64_t stalls = 0, recoveries = 0;
    };
    void run();
    // One round of forwarding for worker w's queues; returns the packets moved.
    unsigned forward(size_t w);

    std::vector<dp::Worker*> workers_;
    std::vector<uint16_t> ports_;
    std::vector<uint16_t> peer_;
    WatchdogConfig cfg_;
    std::vector<State> state_;
    std::unique_ptr<Events[]> events_;
    std::vector<Reported> reported_;
    std::unique_ptr<dp::WorkerCounters> standby_;  // single writer: the watchdog thread
    std::atomic<uint64_t> stalls_{0}, takeovers_{0}, recoveries_{0};  // single writer: the watchdog thread

    std::thread thread_;
    std::mutex mutex_;             // only for the idle wait and its wake-up at stop
    std::condition_variable wake_;
    bool stop_ = false;            // under mutex_
    std::atomic<bool> stopping_{false};  // read by the thread's forwarding loop without the lock
};

} // namespace l7gate::ctl
