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

// Frames and mbufs (--mtu). The longest frame l7gate takes is --mtu + kL2Overhead bytes
// (Ethernet header and two VLAN tags; ports strip the FCS); a longer one, or an IP packet
// longer than --mtu, is dropped as over_mtu. A pool keeps DPDK's default data room
// (kDefaultDataRoom, 2 KiB) when that holds such a frame, or when every port of the pool
// scatters a longer frame over several mbufs; else each mbuf holds a whole frame (its FCS
// too, for PMDs that write it before stripping it), rounded up to 1 KiB: 9 KiB at --mtu 9000,
// four times the memory of a default mbuf. Without --mtu the ports keep their driver's MTU
// (1500) and l7gate takes what one default mbuf holds, as it always did: kMtuDefault.
inline constexpr uint32_t kMtuMin = 68;     // RFC 791's minimum
inline constexpr uint32_t kMtuMax = 9000;
inline constexpr uint32_t kL2Overhead = 22;  // 14 + 2 x 4
inline constexpr uint32_t kDefaultDataRoom = 2048;  // RTE_MBUF_DEFAULT_DATAROOM
inline constexpr uint32_t kMtuDefault = kDefaultDataRoom - kL2Overhead - 4;  // 2022
constexpr uint32_t max_frame_len(uint32_t mtu) noexcept { return mtu + kL2Overhead; }
constexpr uint32_t mbuf_data_room(uint32_t mtu, bool scatter) noexcept {
    const uint32_t whole = (max_frame_len(mtu) + 4 + 1023) & ~1023u;
    return scatter || whole <= kDefaultDataRoom ? kDefaultDataRoom : whole;
}
// Bytes of one pool element: the rte_mbuf header (128), headroom (128), data room, and the
// mempool's own header and padding (64).
constexpr uint64_t mbuf_element_bytes(uint32_t data_room) noexcept { return 128 + 128 + uint64_t{data_room} + 64; }

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
