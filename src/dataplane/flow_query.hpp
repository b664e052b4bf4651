#pragma once
// A question the control thread asks one worker about its live flows (the prompt's
// "show flows"). One outstanding query per worker, handed over through a mailbox pointer:
//   cp: fills the query, stores its pointer (release); then polls `done` (acquire).
//   dp: picks the pointer up in housekeeping (acquire), scans its flow table a bounded chunk
//       at a time (never a full scan in one go), fills the answer, sets `done` (release) and
//       clears the mailbox. The query memory belongs to the control thread throughout.

#include <atomic>
#include <cstdint>

#include "dataplane/flow_key.hpp"

namespace l7gate::dp {

struct FlowSummary {
    FlowKey key;
    uint8_t client_slot;
    uint8_t category;
    uint8_t action;        // cached verdict byte
    uint8_t pad;
    uint16_t master_proto;
    uint16_t app_proto;
    uint16_t reason;
    uint16_t pad2;
    uint64_t packets;      // both directions
    uint64_t bytes;
    uint64_t risk;
    char host[64];
};

struct TopFlowsQuery {
    static constexpr unsigned kMax = 100;
    uint32_t want = 10;              // cp: rw before publishing
    uint32_t count = 0;              // dp: rw while scanning
    uint32_t cursor = 0;             // dp: next entry index to scan
    std::atomic<bool> done{false};   // dp: release store when the answer is complete
    FlowSummary top[kMax];           // by bytes, descending once done
};

} // namespace l7gate::dp
