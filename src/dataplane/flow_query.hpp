#pragma once
// What a worker reports about one live flow (the prompt's "show flows", telemetry's
// /l7gate/top_flows). Asked for and answered through the worker's CommandChannel
// (command_channel.hpp), which owns the memory the answer is written into.

#include <cstdint>

#include "dataplane/flow_key.hpp"

namespace l7gate::dp {

inline constexpr unsigned kTopFlowsMax = 100;  // flows one TopFlows command returns at most

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

} // namespace l7gate::dp
