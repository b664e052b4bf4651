#pragma once
// FlowRecord: what a worker hands to the control thread when a flow ends (flow log), or, with
// --ipfix-active-timeout, while a long flow lives (an interim record, FlowEnd::Active).
// Copied by value into a per-worker single-producer/single-consumer rte_ring.

#include <cstdint>
#include <type_traits>

#include "dataplane/flow_key.hpp"

namespace l7gate::dp {

enum class FlowEnd : uint8_t {
    Idle,      // idle timeout of its class (including TCP closed)
    Shutdown,  // l7gate stopping: every active flow is flushed
    Reused,    // it had ended; a new connection's SYN then opened its 5-tuple again
    Active,    // not an end: an interim record of a flow older than the active timeout (the
               // flow goes on; only sinks whose wants_interim() is true get it)
};

struct FlowRecord {
    FlowKey key;
    uint8_t client_slot;
    uint8_t category;
    uint8_t verdict;
    uint8_t end;          // FlowEnd
    uint64_t first_ns;    // epoch ns
    uint64_t last_ns;
    uint64_t packets[2];  // by key slot of the sender
    uint64_t bytes[2];
    uint64_t risk;
    uint16_t master_proto;
    uint16_t app_proto;
    uint16_t tls_version;
    uint16_t worker;
    uint16_t reason;      // verdict reason id
    uint8_t unenforced;   // 1: monitor mode, the verdict was recorded only (flow log "enforced": false)
    uint8_t outer_version;  // a tunnelled flow's carrier: 4 or 6 (0: none, or no IP carrier)
    uint16_t pad[2];
    uint64_t risk_excepted;  // risks a policy exception told the verdict to ignore
    char host[80];
    uint8_t ja3c[16];
    uint8_t ja3s[16];
    // The flow's totals at its previous interim record (0 when it had none): what this record
    // adds is packets - reported_packets (IPFIX sends deltas; the flow log, totals).
    uint64_t reported_packets[2];
    uint64_t reported_bytes[2];
    // A tunnelled flow's carrier addresses (the IP header that carried the inner packet) as
    // the flow's first packet had them: its source, its destination (outer_version's length).
    uint8_t outer_src[16];
    uint8_t outer_dst[16];
};
// No implicit padding: Worker::fill_record writes every field and so every byte.
static_assert(std::has_unique_object_representations_v<FlowKey> &&
                  sizeof(FlowRecord) == sizeof(FlowKey) + 4 + 7 * 8 + 5 * 2 + 2 + 2 * 2 + 8 + 80 + 16 + 16 + 4 * 8 + 32,
              "FlowRecord has implicit padding (fill_record leaves no byte unwritten)");
static_assert(sizeof(FlowRecord) % 16 == 0, "rte_ring element sizes must be multiples of 4; kept a multiple of 16");

} // namespace l7gate::dp
