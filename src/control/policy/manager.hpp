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
// Acknowledgement: every worker records the generation of the snapshot it loaded at the top of
// its loop (WorkerCounters::policy_generation). A reload is reported applied ("generation N
// applied by every worker") only once every worker's acknowledgement reached N; one that some
// worker has not taken within kAckTimeout is reported not applied and counted
// (reloads_unacknowledged). A stalled worker, fail-open or not, does not acknowledge: its
// traffic waits or leaves uninspected, under no policy at all, so the reload is not in force
// for it. When it resumes it loads the newest snapshot at once and the reload is then logged
// applied, late. applied_generation is the lowest generation any worker acknowledged.
//
// Triggers: SIGHUP and the prompt call request_reload(); an inotify watch on the directories
// of the policy file and of every list file it uses notices writes and renames (editors'
// write-then-rename included), debounced so a burst of events loads once.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "control/policy/compiler.hpp"
#include "control/policy/reason_reclaim.hpp"

struct rte_rcu_qsbr;

namespace l7gate::ctl {

struct ReloadStatus {
    uint64_t generation = 0;
    uint64_t reloads_ok = 0;
    uint64_t reloads_failed = 0;
    double last_reload_unix = 0;
    bool last_reload_success = true;
    std::string last_error;   // first error of the last failed reload
    // Acknowledgements (set_acks): the lowest generation every worker runs (0: not yet known;
    // = generation without acknowledgement sources), and reloads that some worker had not
    // taken kAckTimeout after they were published.
    uint64_t applied_generation = 0;
    uint64_t reloads_unacknowledged = 0;
    bool awaiting_ack = false;  // the last reload is published, not yet applied everywhere
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

    // Worker w's acknowledged generation is ack(w), w < workers (the workers' counters; fakes
    // in tests). Without it a published reload counts as applied at once.
    using AckSource = std::function<uint64_t(size_t worker)>;
    void set_acks(size_t workers, AckSource ack);

    // Where reason ids live besides the snapshots (the workers' flows, records, counters):
    // poll() reuses the ids of names none of them holds (reason_reclaim.hpp).
    void set_reason_holders(ReasonHolders h) { reclaimer_.set_holders(std::move(h)); }
    const ReasonReclaimer& reclaimer() const { return reclaimer_; }

    void request_reload(const std::string& why);
    // Control-loop tick: file events, debounced reloads, freeing retired snapshots, one step
    // of reason id reclamation.
    void poll(Clock::time_point now);
    // Reload now, whatever the trigger; true when a new snapshot was published.
    bool reload(const std::string& why);

    const ReloadStatus& status() const { return status_; }
    // Retired snapshots not yet freed: some worker has not passed a quiescent state since
    // (a stalled worker holds them all).
    size_t retired_pending() const { return retired_.size(); }

    static constexpr auto kDebounce = std::chrono::milliseconds(200);
    static constexpr auto kAckTimeout = std::chrono::seconds(2);

private:
    void watch_files();
    void check_acks(Clock::time_point now);

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
    ReasonReclaimer reclaimer_;
    size_t ack_workers_ = 0;
    AckSource ack_;
    Clock::time_point ack_since_{};   // when the oldest reload still not applied was published
    bool ack_reported_ = false;       // ... and reported not applied (timeout)
};

} // namespace l7gate::ctl
