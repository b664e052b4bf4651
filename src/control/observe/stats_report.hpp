#pragma once
// Folds the per-worker counters into one consistent-enough picture for printing and JSON.
// Runs on the control thread only.

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "control/runtime/service.hpp"
#include "dataplane/counters.hpp"
#include "dataplane/drop_reason.hpp"

namespace l7gate::dp {
class Worker;
}

namespace l7gate::ctl {

struct QueueStats {
    uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0;
};

struct PortStats {
    uint16_t port = 0;
    std::string driver;
    QueueStats total;
    std::vector<QueueStats> queues;  // indexed by queue (= worker)
    uint64_t imissed = 0, ierrors = 0, rx_nombuf = 0, oerrors = 0;  // from the PMD
    uint64_t pmd_rx_packets = 0, pmd_tx_packets = 0;                // the PMD's own count
};

struct WorkerStats {
    unsigned lcore = 0;
    unsigned queue = 0;
    uint64_t rx_packets = 0, tx_packets = 0, dropped = 0;
    uint64_t bursts = 0, idle_polls = 0, busy_cycles = 0;
    uint64_t flows_active = 0;
    uint64_t policy_generation = 0;  // the generation it acknowledged (loaded last)
};

struct ProtoStats {
    unsigned id = 0;
    uint64_t packets = 0, bytes = 0, flows = 0;
};

struct StatsSnapshot {
    std::vector<PortStats> ports;
    std::vector<WorkerStats> workers;
    uint64_t drops[dp::kDropReasonCount] = {};
    uint64_t malformed[dp::kDropReasonCount] = {};
    uint64_t non_ip = 0;
    uint64_t uninspected_packets[dp::kUninspectedCauses] = {};  // forwarded unclassified, by cause
    uint64_t uninspected_bytes[dp::kUninspectedCauses] = {};
    uint64_t encap_packets[dp::kEncapKinds] = {};                // looked into, by encapsulation
    uint64_t encap_skipped[dp::kEncapKinds][dp::kTunSkips] = {}; // not looked into, by encapsulation and why
    uint64_t reject_tunnelled = 0;
    uint64_t flows_created = 0, flows_expired = 0, flows_active = 0, table_full = 0, bucket_full = 0;
    uint64_t flowless[static_cast<size_t>(dp::Flowless::Count)] = {};  // table_full + bucket_full packets by outcome
    uint64_t frag_tracked = 0, frag_matched = 0, frag_table_full = 0;
    uint64_t rx_packets = 0, tx_packets = 0, dropped = 0;
    uint64_t rx_bytes = 0, tx_bytes = 0;
    uint64_t flows_flushed = 0;
    uint64_t flows_reused = 0;
    uint64_t flows_asymmetric = 0;
    uint64_t stage_cycles[static_cast<size_t>(dp::Stage::Count)] = {};  // -Dprofiling builds only
    std::vector<ProtoStats> protocols;  // ids with any traffic, by bytes descending
    uint64_t risk_flows[64] = {};
    uint64_t category_bytes[256] = {};  // by the flow's nDPI category id (dp::kMaxCategories)
    uint64_t classified = 0, dpi_pool_full = 0, meta_pool_full = 0, meta_in_use = 0, giveups = 0, dpi_reclaimed = 0,
             dpi_deferred = 0, dpi_deferred_no_payload = 0;
    uint64_t ndpi_packets = 0, ndpi_cycles = 0, ndpi_arena_full = 0, ndpi_arena_refused = 0;
    uint64_t flow_log_records = 0, flow_log_lost = 0;
    // The flow-record stream (fill_record_stats, record_stream.hpp): per sink, records written
    // and lost by cause (ring_full is flow_log_lost, the same for every sink), and the backlog.
    struct RecordSinkStats {
        std::string name;
        bool records = true;  // false: an output of events only (--event-log)
        uint64_t written = 0, sink_full = 0, write_error = 0, shutdown = 0, queued = 0;
        uint64_t reopens = 0, open_failures = 0, events_written = 0, events_lost = 0;
        uint64_t skipped = 0;  // interim records (--ipfix-active-timeout) it does not take
    };
    std::vector<RecordSinkStats> record_sinks;
    uint64_t record_backlog = 0;  // records waiting in the workers' rings
    uint64_t policy_evaluations = 0;
    uint64_t injected = 0, inject_limited = 0, inject_failed = 0, reject_suppressed = 0;
    // Monitor mode: packets and bytes forwarded although their verdict said otherwise, by verdict.
    uint64_t monitor_forwarded_packets[static_cast<size_t>(dp::Monitored::Count)] = {};
    uint64_t monitor_forwarded_bytes[static_cast<size_t>(dp::Monitored::Count)] = {};
    // Every mbuf pool (with_pmd only): mbufs in the pool and how many are out of it (in RX
    // rings, in flight, queued in shapers, or leaked: zero once traffic has stopped).
    struct MempoolStats {
        std::string name;
        uint64_t size = 0, available = 0, in_use = 0;
    };
    std::vector<MempoolStats> mempools;
    struct ShaperStats {
        uint64_t sent = 0, delayed = 0, dropped = 0, bytes = 0, queued = 0;
    };
    ShaperStats shapers[dp::kShaperCounters];  // by shaper index in the policy in force
    uint64_t shaper_backlog = 0;                // packets waiting in shaper queues (in flight)
    uint64_t shaper_backlog_cap = 0;            // the most they may hold, all workers
    uint64_t shaper_host_buckets_full = 0;      // per-host refills that found no bucket free
    uint64_t first_flight[dp::kFirstFlightOutcomes] = {};  // first flights by outcome
    uint64_t first_flight_held = 0;             // client segments held in first flights now
    std::vector<std::string> shaper_names;      // filled by the caller from the policy in force
    struct ReasonStats {
        uint16_t id;
        uint64_t flows, packets;
    };
    std::vector<ReasonStats> reasons;   // reasons with any flow, by packets descending
    // Hosts (filled by fill_host_stats from HostScores).
    struct HostScore {
        std::string host;
        uint64_t score;
        bool blocked;
    };
    std::vector<HostScore> top_hosts;
    uint64_t blocked_hosts = 0, host_blocks_total = 0;
    uint64_t host_score_events = 0, host_score_events_lost = 0;  // queued by workers / ring full
    uint64_t host_score_backlog = 0;            // events waiting in the rings (fill_host_stats)
    uint64_t blocked_sets_retired_pending = 0;  // replaced blocked sets not yet freed (fill_host_stats)
    // The control services (filled by the control loop from its ServiceRuntime).
    std::vector<ServiceStats> services;
    bool has_policy = false;            // filled by the caller from PolicyManager::status()
    uint64_t policy_generation = 0, reloads_ok = 0, reloads_failed = 0;
    bool last_reload_success = true;
    // Watchdog (collect_stats with a watchdog).
    uint64_t stalls = 0, takeovers = 0, recoveries = 0;
    uint64_t standby_rx_packets = 0, standby_tx_packets = 0, standby_dropped = 0;
};

class NdpiNames;
class ReasonRegistry;
class Watchdog;

// ports: every bridged port; workers: in queue order. Reads PMD stats when with_pmd. With a
// watchdog, what its fail-open path forwarded is in the port totals and the drops.
StatsSnapshot collect_stats(const std::vector<uint16_t>& ports,
                            const std::vector<const dp::Worker*>& workers, bool with_pmd,
                            const Watchdog* watchdog = nullptr);

class HostScores;
// Copies the top `top` hosts by score (--top-hosts, default kTopHosts) and the block counters
// into s.
inline constexpr size_t kTopHosts = 20;
void fill_host_stats(StatsSnapshot& s, const HostScores* hosts, size_t top = kTopHosts);

// s.reasons with each id's counters counted from the moment its name took it (an id reused
// for another name starts from the baseline ReasonRegistry::release captured), zeros left
// out, by packets descending.
std::vector<StatsSnapshot::ReasonStats> reason_totals(const StatsSnapshot& s, const ReasonRegistry& reasons);
std::string stats_json(const StatsSnapshot& s, double elapsed_s, uint64_t tsc_hz, const NdpiNames& names,
                       const ReasonRegistry& reasons);
void print_summary(FILE* out, const StatsSnapshot& s, double elapsed_s, uint64_t tsc_hz, const NdpiNames& names,
                   const ReasonRegistry& reasons);
std::string stats_line(const StatsSnapshot& now, const StatsSnapshot& prev, double dt_s);

} // namespace l7gate::ctl
