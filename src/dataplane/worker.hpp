#pragma once
// Worker: one per worker lcore, owning queue `queue` of every port. Run-to-completion loop:
// rx burst -> parse -> flow lookup/insert -> (classify, verdict: later stages) -> tx burst to
// the peer port of the bridge pair. Nothing in the loop allocates, locks, logs or throws.

#include <atomic>
#include <cstdint>

#include "dataplane/counters.hpp"
#include "dataplane/flow_table.hpp"
#include "dataplane/frag_table.hpp"
#include "dataplane/packet_parser.hpp"

struct rte_mbuf;

namespace l7gate::dp {

inline constexpr unsigned kMaxBurst = 32;
inline constexpr unsigned kHousekeepingEvery = 16;  // loop iterations (power of two)
inline constexpr unsigned kExpireBudget = 256;      // list heads examined per housekeeping

struct WorkerConfig {
    uint16_t queue = 0;
    unsigned lcore = 0;
    int socket = 0;
    uint16_t nb_ports = 0;
    uint16_t port[kMaxPorts] = {};  // ports this worker polls (queue `queue` of each)
    uint16_t peer[kMaxPorts] = {};  // where frames received on port[i] leave
    uint32_t flows = 0;
    uint32_t frags = 0;
    FlowTimeouts timeouts{};
    uint32_t frag_timeout_s = 5;
    bool malformed_drop = true;
    bool table_full_drop = false;
};

// Structure of arrays for one burst (house style: parse everything, then look up everything).
struct Burst {
    rte_mbuf* mbufs[kMaxBurst];
    PacketMeta meta[kMaxBurst];
    const FlowKey* keys[kMaxBurst];
    uint32_t hashes[kMaxBurst];
    FlowEntry* flows[kMaxBurst];
    uint8_t lookup_slot[kMaxBurst];  // index into keys/flows for packets that need a lookup
    rte_mbuf* out[kMaxBurst];
    uint32_t out_len[kMaxBurst];
};

class alignas(64) Worker {
public:
    Worker() = default;
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    bool init(const WorkerConfig& cfg) noexcept;

    // lcore entry point; returns when stop is requested, after the last tx.
    int run() noexcept;

    // cp -> dp: relaxed is enough, the worker only needs to see it eventually.
    void request_stop() noexcept { stop_.store(true, std::memory_order_relaxed); }

    const WorkerCounters& counters() const noexcept { return counters_; }
    const WorkerConfig& config() const noexcept { return cfg_; }
    const FlowTable& flow_table() const noexcept { return flows_; }

    // The whole per-packet path on burst().mbufs[0, n) received on port index `pi` at time
    // now_ns. Frames that must leave are put in burst().out[0, return value); the others are
    // freed and counted. Public for tests and fuzzers.
    unsigned process_burst(unsigned pi, unsigned n, uint64_t now_ns) noexcept;
    Burst& burst() noexcept { return burst_; }

    void housekeeping(uint64_t now_ns) noexcept;

private:
    void drop(rte_mbuf* m, DropReason r) noexcept;
    FlowEntry* flow_for_fragment(const uint8_t* frame, const PacketMeta& m, uint64_t now_ns, uint8_t& slot) noexcept;
    static void update_tcp(FlowTable& ft, FlowEntry& e, uint8_t flags, uint8_t slot, uint64_t now_ns) noexcept;
    uint64_t now_ns() const noexcept;

    WorkerConfig cfg_{};
    WorkerCounters counters_{};
    FlowTable flows_;
    FragTable frags_;
    Burst burst_{};
    uint64_t tsc_hz_ = 0;
    uint64_t tsc_start_ = 0;
    unsigned peer_idx_[kMaxPorts] = {};  // index of peer port in cfg_.port
    std::atomic<bool> stop_{false};  // cp: rw, dp: ro
};

} // namespace l7gate::dp
