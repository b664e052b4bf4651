#pragma once
// ReasonSweep: which reason ids the live flows of one worker hold, so the control thread can
// reuse the ids of names that nothing uses any more (ctl::ReasonReclaimer).
//
// The control thread asks for a sweep by raising `request` (release); the worker notices it
// in its housekeeping (never per packet), clears `seen`, walks its flow table a bounded
// slice per housekeeping (kSliceEntries), setting the bit of every live flow's reason, and
// when the walk is over publishes it with a release store of completed = the request it
// served. The control thread reads `seen` only once completed (acquire) reached its request,
// and raises the next request only after it is done reading, so the worker never writes
// `seen` while the control thread reads it. No locks, no allocation; the worker owns the
// memory.

#include <atomic>
#include <cstdint>

#include "dataplane/policy_snapshot.hpp"

namespace l7gate::dp {

struct ReasonSweep {
    static constexpr unsigned kWords = kMaxReasons / 64;
    static constexpr uint32_t kSliceEntries = 4096;  // flow entries per housekeeping

    bool seen_bit(uint16_t id) const noexcept {
        return (seen[(id & (kMaxReasons - 1)) / 64] >> (id % 64) & 1u) != 0;
    }

    alignas(64) std::atomic<uint64_t> request{0};   // cp: rw, dp: ro
    alignas(64) std::atomic<uint64_t> completed{0}; // dp: rw, cp: ro
    uint64_t serving = 0;                             // dp only: the request being served
    uint32_t cursor = 0;                              // dp only: next flow entry
    bool active = false;                              // dp only: a sweep is under way
    uint64_t seen[kWords] = {};  // dp writes during a sweep; cp reads once completed == request
};

} // namespace l7gate::dp
