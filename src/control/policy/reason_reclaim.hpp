#pragma once
// ReasonReclaimer: gives the ids of reason names that nothing uses any more back to the
// ReasonRegistry, so a process that reloads policies with new rule names for ever never runs
// out of ids (after kReasonOther - 1 names at a time, a new name would be "other").
//
// An id may be held by (1) a policy snapshot, current or retired but not yet freed; (2) a
// worker's live flow (FlowEntry::reason, kept across reloads while the flow's verdict is);
// (3) a flow record in a worker's ring, formatted later by the record sinks; (4) the
// per-reason counters, which are cumulative. A round, driven by PolicyManager::poll (bounded
// work per tick: a scan of at most kMaxReasons ids, no waiting):
//   1. candidates: ids whose last generation is below the oldest live snapshot's. From then
//      on no worker can give a flow that id: every snapshot naming it is freed, which the RCU
//      only allows once every worker passed a quiescent state after its retirement.
//   2. it asks every worker for a sweep (reason_sweep.hpp) and waits until each completed
//      one that started after the request; an id some live flow holds is dropped.
//   3. it notes how many records each worker had queued then and waits until the record
//      stream took that many from the worker's ring: a record of a flow that ended before
//      the sweep reached it has been formatted.
//   4. release: the registry frees each candidate whose tag did not move meanwhile (a reload
//      that used the name again keeps it), with its counters' current totals as the baseline
//      the next name's counters start from.
// A stalled worker never completes its sweep: nothing is reclaimed until it resumes. Ids that
// the last round found held (long-lived flows of a removed rule) are swept for again at most
// every kRetryHeld, so such flows do not keep the workers sweeping; a new candidate starts a
// round at once.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "control/policy/compiler.hpp"

namespace l7gate::dp {
struct ReasonSweep;
}

namespace l7gate::ctl {

// Where reason ids live outside the snapshots. Null functions: no such holder (tests,
// no --flow-log).
struct ReasonHolders {
    size_t workers = 0;
    std::function<dp::ReasonSweep&(size_t worker)> sweep;
    std::function<uint64_t(size_t worker)> records_queued;  // its flow_log_records
    std::function<uint64_t(size_t worker)> records_taken;   // taken from its ring by the stream
    // The id's cumulative counters, summed over the workers.
    std::function<void(uint16_t id, uint64_t& flows, uint64_t& packets)> counters;
};

class ReasonReclaimer {
public:
    using Clock = std::chrono::steady_clock;
    static constexpr auto kRetryHeld = std::chrono::seconds(1);

    explicit ReasonReclaimer(ReasonRegistry* reasons) : reasons_(reasons) {}

    void set_holders(ReasonHolders h) { holders_ = std::move(h); }
    // One step of a round; oldest_live: the generation of the oldest snapshot not yet freed
    // (0: none).
    void step(uint64_t oldest_live, Clock::time_point now);
    // Rounds started (a round starts only when there are candidates).
    uint64_t rounds() const { return round_; }
    bool idle() const { return stage_ == Stage::Idle; }

private:
    enum class Stage { Idle, Sweeping, Draining };

    ReasonRegistry* reasons_;
    ReasonHolders holders_;
    Stage stage_ = Stage::Idle;
    uint64_t round_ = 0;
    std::vector<ReasonRegistry::Candidate> candidates_;
    std::vector<uint64_t> held_tag_;  // by id: its tag when the last round found it held, else 0
    Clock::time_point last_round_{};
    std::vector<uint64_t> queued_at_;  // by worker: records queued when the sweeps were done
};

} // namespace l7gate::ctl
