#include "control/policy/reason_reclaim.hpp"

#include <algorithm>
#include <atomic>

#include "dataplane/policy_snapshot.hpp"
#include "dataplane/reason_sweep.hpp"

namespace l7gate::ctl {

void ReasonReclaimer::step(uint64_t oldest_live, Clock::time_point now) {
    if (reasons_ == nullptr || oldest_live == 0) {
        return;
    }
    const size_t workers = holders_.sweep ? holders_.workers : 0;
    if (stage_ == Stage::Idle) {
        candidates_ = reasons_->candidates(oldest_live);
        if (candidates_.empty()) {
            return;
        }
        held_tag_.resize(dp::kMaxReasons, 0);
        const bool only_held = std::all_of(candidates_.begin(), candidates_.end(),
                                           [this](const auto& c) { return held_tag_[c.id] == c.tag; });
        if (only_held && now - last_round_ < kRetryHeld) {
            return;
        }
        last_round_ = now;
        round_ += 1;
        for (size_t w = 0; w < workers; ++w) {
            // release: pairs with the worker's acquire; it starts a sweep only after this.
            holders_.sweep(w).request.store(round_, std::memory_order_release);
        }
        stage_ = Stage::Sweeping;
    }
    if (stage_ == Stage::Sweeping) {
        for (size_t w = 0; w < workers; ++w) {
            // acquire: the sweep's bits, the flows' counters and records queued before it.
            if (holders_.sweep(w).completed.load(std::memory_order_acquire) != round_) {
                return;  // not yet (a stalled worker holds the round)
            }
        }
        std::fill(held_tag_.begin(), held_tag_.end(), 0);
        for (size_t w = 0; w < workers; ++w) {
            const dp::ReasonSweep& s = holders_.sweep(w);
            for (const ReasonRegistry::Candidate& c : candidates_) {
                if (s.seen_bit(c.id)) {
                    held_tag_[c.id] = c.tag;
                }
            }
            candidates_.erase(std::remove_if(candidates_.begin(), candidates_.end(),
                                             [&s](const ReasonRegistry::Candidate& c) { return s.seen_bit(c.id); }),
                              candidates_.end());
        }
        queued_at_.assign(holders_.workers, 0);
        if (holders_.records_queued && holders_.records_taken) {
            for (size_t w = 0; w < holders_.workers; ++w) {
                queued_at_[w] = holders_.records_queued(w);
            }
        }
        stage_ = Stage::Draining;
    }
    if (holders_.records_queued && holders_.records_taken) {
        for (size_t w = 0; w < holders_.workers; ++w) {
            if (holders_.records_taken(w) < queued_at_[w]) {
                return;  // records of flows that ended before the sweep are still in the ring
            }
        }
    }
    for (const ReasonRegistry::Candidate& c : candidates_) {
        uint64_t flows = 0;
        uint64_t packets = 0;
        if (holders_.counters) {
            holders_.counters(c.id, flows, packets);
        }
        reasons_->release(c, flows, packets);
    }
    candidates_.clear();
    stage_ = Stage::Idle;
}

} // namespace l7gate::ctl
