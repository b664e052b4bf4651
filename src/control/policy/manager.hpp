#pragma once
// PolicyManager: owns the published policy snapshot and replaces it without stopping traffic.
//
// Reload = parse + compile the whole file on the control thread; any error keeps the running
// snapshot (never a half-applied policy), logs every error as FILE:LINE:COLUMN and counts a
// failure. A good snapshot is published with one release store of the pointer that workers
// load (acquire) at the top of each loop iteration. The old snapshot is freed here, on the
// control thread, once every worker has reported a quiescent state after the store (DPDK's
// rte_rcu_qsbr: workers mark one per loop iteration, where they hold no snapshot reference),
// so no worker can still be reading it. Workers re-evaluate each flow lazily on its next
// packet: a worker moves its verdict epoch when it sees another snapshot, and a flow whose
// cached epoch differs is decided again.
//
// Triggers: SIGHUP and the prompt call request_reload(); an inotify watch on the directories
// of the policy file and of every list file it uses notices writes and renames (editors'
// write-then-rename included), debounced so a burst of events loads once.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "control/policy/compiler.hpp"

struct rte_rcu_qsbr;

namespace l7gate::ctl {

struct ReloadStatus {
    uint64_t generation = 0;
    uint64_t reloads_ok = 0;
    uint64_t reloads_failed = 0;
    double last_reload_unix = 0;
    bool last_reload_success = true;
    std::string last_error;   // first error of the last failed reload
};

class PolicyManager {
public:
    using Clock = std::chrono::steady_clock;

    PolicyManager(std::string path, std::string format, CompileContext ctx, rte_rcu_qsbr* qsbr);
    PolicyManager(const PolicyManager&) = delete;
    PolicyManager& operator=(const PolicyManager&) = delete;
    ~PolicyManager();

    // First load at start-up; false with the errors when the policy is invalid.
    bool load_initial(std::vector<PolicyError>& errors);

    const std::atomic<const dp::PolicySnapshot*>& slot() const { return slot_; }
    const dp::PolicySnapshot* current() const { return current_.get(); }

    void request_reload(const std::string& why);
    // Control-loop tick: file events, debounced reloads, freeing retired snapshots.
    void poll(Clock::time_point now);
    // Reload now, whatever the trigger; true when a new snapshot was published.
    bool reload(const std::string& why);

    const ReloadStatus& status() const { return status_; }
    size_t retired_pending() const { return retired_.size(); }

    static constexpr auto kDebounce = std::chrono::milliseconds(200);

private:
    void watch_files();

    std::string path_;
    std::string format_;
    CompileContext ctx_;
    rte_rcu_qsbr* qsbr_;
    std::atomic<const dp::PolicySnapshot*> slot_{nullptr};  // cp: rw, dp: ro
    std::unique_ptr<dp::PolicySnapshot> current_;
    struct Retired {
        uint64_t token;
        std::unique_ptr<dp::PolicySnapshot> snapshot;
    };
    std::deque<Retired> retired_;
    ReloadStatus status_;
    int inotify_fd_ = -1;
    std::vector<int> watches_;
    std::set<std::string> files_;       // absolute paths whose change triggers a reload
    bool pending_ = false;
    bool pending_explicit_ = false;  // SIGHUP / prompt: load at the next tick, no debounce
    Clock::time_point due_{};
    std::string pending_why_;
};

} // namespace l7gate::ctl
