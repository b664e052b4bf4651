#pragma once
// Per-worker counters: single writer (the worker), any number of readers (control thread).
//
// A relaxed load + relaxed store compiles to a plain load/add/store (no lock prefix); it is
// enough because each counter has exactly one writer and readers only need a value that was
// true at some recent moment, never a consistent snapshot across counters.

#include <atomic>
#include <cstdint>

#include "dataplane/drop_reason.hpp"
#include "dataplane/first_flight.hpp"
#include "dataplane/packet_parser.hpp"

namespace l7gate::dp {

inline constexpr unsigned kMaxPorts = 16;

class Counter {
public:
    void add(uint64_t n) noexcept { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
    void sub(uint64_t n) noexcept { v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed); }
    void inc() noexcept { add(1); }
    void set(uint64_t n) noexcept { v_.store(n, std::memory_order_relaxed); }
    uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<uint64_t> v_{0};
};
static_assert(std::atomic<uint64_t>::is_always_lock_free);

struct QueueCounters {
    Counter rx_packets;
    Counter rx_bytes;
    Counter tx_packets;
    Counter tx_bytes;
};

// Per shaper (index in the policy in force).
struct ShaperCounters {
    Counter sent;      // packets that left at once (credit available)
    Counter delayed;   // packets that left after waiting in the queue
    Counter dropped;   // queue overflow, max_delay exceeded, or out of profile (police)
    Counter bytes;     // bytes that left, either way
    Counter queued;    // gauge: packets waiting in this worker's queues of the shaper
};
inline constexpr unsigned kShaperCounters = 63;  // == kMaxShapers (checked in shaper.hpp)

// Per-stage TSC cycles (meson -Dprofiling=true only; zero otherwise). Classify and policy are
// timed around their calls inside the per-packet stage; action is the rest of that stage
// (flow create/touch, verdict application, drop, shaper admit, fragments).
enum class Stage : uint8_t { Rx, Parse, Lookup, Classify, Policy, Action, Tx, Count };
inline constexpr const char* kStageNames[] = {"rx", "parse", "lookup", "classify", "policy", "action", "tx"};
static_assert(sizeof(kStageNames) / sizeof(kStageNames[0]) == static_cast<size_t>(Stage::Count));

// What became of a packet whose new flow got no entry (flow table or both buckets full):
// the verdict that needs no flow state when it is certain (blocked host, ips / pool /
// countries / continents markers, the default, or every verdict L7 markers could still give
// being at least as strict as drop), else --on-flow-table-full (undecided_*; an undecided
// pass still takes a shape or police verdict that every outcome shares).
enum class Flowless : uint8_t { Pass, Drop, Reject, Shape, Police, UndecidedPass, UndecidedDrop, Count };
inline constexpr const char* kFlowlessNames[] = {"pass",  "drop",           "reject",        "shape",
                                                 "police", "undecided_pass", "undecided_drop"};
static_assert(sizeof(kFlowlessNames) / sizeof(kFlowlessNames[0]) == static_cast<size_t>(Flowless::Count));

// Monitor mode (README "Monitor mode"): packets forwarded although their flow's verdict,
// decided but not enforced, said otherwise: by that verdict (block: a host in the
// auto-block set).
enum class Monitored : uint8_t { Drop, Reject, Block, Shape, Police, Count };
inline constexpr const char* kMonitoredNames[] = {"drop", "reject", "block", "shape", "police"};
static_assert(sizeof(kMonitoredNames) / sizeof(kMonitoredNames[0]) == static_cast<size_t>(Monitored::Count));
// Why a packet was forwarded without its content being classified (README "What is not
// inspected"). Every such packet is counted under exactly one cause. Monitor: monitor mode
// forwarded a packet its decided verdict drops, rejects or blocks.
enum class Uninspected : uint8_t { NonIp, Encapsulation, NoFlow, Malformed, FailOpen, Monitor, NoDpiState, Count };
inline constexpr const char* kUninspectedNames[] = {"non_ip",    "encapsulation", "no_flow",     "malformed",
                                                    "fail_open", "monitor",       "no_dpi_state"};
static_assert(sizeof(kUninspectedNames) / sizeof(kUninspectedNames[0]) == static_cast<size_t>(Uninspected::Count));
inline constexpr size_t kUninspectedCauses = static_cast<size_t>(Uninspected::Count);
inline constexpr size_t kEncapKinds = static_cast<size_t>(Encap::Count);
inline constexpr size_t kTunSkips = static_cast<size_t>(TunSkip::Count);

// dp: rw (owning worker only), cp: ro. Cache-line aligned so two workers' blocks never share
// a line.
struct alignas(64) WorkerCounters {
    QueueCounters port[kMaxPorts];  // this worker's queue on each port
    Counter drops[kDropReasonCount];
    Counter malformed[kDropReasonCount];  // malformed packets seen, dropped or passed
    Counter non_ip;
    Counter flows_created;
    Counter flows_expired;  // idle expiry
    Counter flows_flushed;  // ended by l7gate stopping
    Counter flows_reused;   // closed TCP flows ended by a new connection's SYN on their 5-tuple
    Counter flows_asymmetric;  // TCP flows opened here by the server's SYN-ACK: the SYN went elsewhere
    Counter flows_active;  // gauge
    Counter table_full;
    Counter bucket_full;   // new flows whose two buckets were full while entries were free
    Counter flowless[static_cast<size_t>(Flowless::Count)];  // packets of table_full + bucket_full, by outcome
    Counter frag_tracked;
    Counter frag_matched;
    Counter frag_table_full;
    Counter rx_packets;    // all ports
    Counter bursts;
    Counter idle_polls;
    Counter busy_cycles;   // TSC cycles spent on non-empty bursts (rx to tx)
    Counter heartbeat;     // loop iterations; the control thread watches it move
    Counter flow_log_records;  // records handed to the control thread
    Counter flow_log_lost;     // records lost because the ring was full
    Counter policy_evaluations;
    Counter score_events;      // host score events handed to the control thread
    Counter score_events_lost; // ... lost because the ring was full
    Counter injected;          // RST / ICMP packets sent for reject verdicts
    Counter inject_limited;    // not sent: over --reject-rate
    Counter reject_suppressed; // not sent: a RST, or to/from a broadcast or multicast address
    Counter inject_failed;     // not sent: no mbuf, or the TX queue was full
    Counter monitor_forwarded_packets[static_cast<size_t>(Monitored::Count)];  // monitor mode, by verdict
    Counter monitor_forwarded_bytes[static_cast<size_t>(Monitored::Count)];
    Counter policy_generation; // generation of the snapshot this worker last used (ack)
    Counter shaper_backlog;    // gauge: packets waiting in this worker's shaper queues
    Counter shaper_backlog_cap;  // the most they may hold (WorkerConfig::shaper_backlog)
    Counter shaper_host_buckets_full;  // per-host refills that found no shared bucket for the host
    Counter first_flight[kFirstFlightOutcomes];  // first flights by outcome (first_flight.hpp)
    Counter first_flight_held;  // gauge: client segments held in first flights right now
    ShaperCounters shaper[kShaperCounters];
    Counter stage_cycles[static_cast<size_t>(Stage::Count)];  // -Dprofiling only
    Counter uninspected_packets[kUninspectedCauses];  // forwarded without classification, by cause
    Counter uninspected_bytes[kUninspectedCauses];
    Counter encap_packets[kEncapKinds];  // packets whose inner packet was looked into, by encapsulation
    Counter encap_skipped[kEncapKinds][kTunSkips];  // tunnels not looked into, by encapsulation and why
    Counter reject_tunnelled;  // reject verdicts on tunnelled flows: dropped, nothing injected
    Counter reason_flows[4096];    // flows given a verdict, by reason id (dp::kMaxReasons)
    Counter reason_packets[4096];  // packets that took a verdict other than pass-by-default
};

} // namespace l7gate::dp
