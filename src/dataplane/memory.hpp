#pragma once
// Start-up allocation for data-plane tables. With EAL running, memory comes from DPDK's
// heap on the requested NUMA socket (hugepages when available); without EAL (unit tests,
// fuzzers) it comes from the C heap. Never called from the per-packet path.

#include <cstddef>
#include <cstdint>

namespace l7gate::dp {

// Called once by main() after rte_eal_init() succeeded.
void memory_use_eal(bool on) noexcept;

// Zeroed, cache-line aligned memory; nullptr when out of memory.
void* table_alloc(size_t size, int socket) noexcept;
void table_free(void* p) noexcept;

// Sizing of an mbuf pool, shared by main() (the pool), the pre-flight (its memory) and the
// workers (their shaper backlog cap). A pool must always keep, for every worker, the mbufs
// its queues hold whatever the traffic: every RX descriptor of its queue on each port is
// filled, every TX descriptor may hold a sent frame until the PMD frees it, its lcore's
// mempool cache can keep up to 1.5x the cache size, and a burst in flight holds up to
// kInFlightBursts bursts (RX, its output, the drop batch, injected packets, the shaper's
// release batch); plus kPoolSpare for the watchdog thread (fail-open standby path) and tests.
// What is left, split evenly, is each worker's shaper backlog cap: the packets its shaper
// queues may hold together. The default pool size gives every worker kShaperBacklogDefault.
struct PoolSizing {
    static constexpr uint64_t kCache = 256;           // per-lcore mempool cache (main.cpp)
    static constexpr uint64_t kInFlightBursts = 8;    // bursts of kMaxBurst (32) held in flight
    static constexpr uint64_t kPoolSpare = 1024;
    static constexpr uint64_t kShaperBacklogDefault = 4096;

    unsigned workers = 1;
    unsigned ports = 2;
    unsigned rx_desc = 1024;
    unsigned tx_desc = 1024;
    uint64_t first_flight_segments = 0;  // client segments a worker may hold in first flights

    // Mbufs one worker holds outside its shaper: ports x (rxd + txd) + 1.5 x cache + 8 x 32
    // + the first-flight segments it may hold (4 x --first-flight-flows, 0 without reassembly).
    uint64_t reserved_per_worker() const noexcept {
        return uint64_t{ports} * (uint64_t{rx_desc} + tx_desc) + kCache * 3 / 2 + kInFlightBursts * 32 +
               first_flight_segments;
    }
    // The default --mbufs: workers x (reserved + kShaperBacklogDefault) + kPoolSpare.
    uint64_t default_mbufs() const noexcept {
        return uint64_t{workers} * (reserved_per_worker() + kShaperBacklogDefault) + kPoolSpare;
    }
    // Per-worker shaper backlog cap of a pool of `mbufs`:
    // (mbufs - kPoolSpare - workers x reserved) / workers, 0 when that is negative.
    uint32_t shaper_backlog_cap(uint64_t mbufs) const noexcept {
        const uint64_t held = uint64_t{workers} * reserved_per_worker() + kPoolSpare;
        if (workers == 0 || mbufs <= held) {
            return 0;
        }
        const uint64_t cap = (mbufs - held) / workers;
        return cap > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(cap);
    }
    // The same from what a pool still had once its ports started (their RX descriptors are
    // then filled, so they no longer count): lower than the above when something else holds
    // mbufs of the pool (a net_pcap vdev with infinite_rx keeps its whole capture in them).
    uint32_t shaper_backlog_cap_after_start(uint64_t free_mbufs) const noexcept {
        const uint64_t held =
            uint64_t{workers} * (reserved_per_worker() - uint64_t{ports} * rx_desc) + kPoolSpare;
        if (workers == 0 || free_mbufs <= held) {
            return 0;
        }
        const uint64_t cap = (free_mbufs - held) / workers;
        return cap > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(cap);
    }
};

} // namespace l7gate::dp
