#pragma once
// Memory for nDPI inside the per-packet path.
//
// nDPI allocates while it dissects (TLS certificate names, HTTP URL and user agent, ...)
// through ndpi_malloc()/ndpi_free(), whose targets are process-wide hooks. l7gate points the
// hooks at this allocator: on a worker thread (one that called NdpiArena::attach()) blocks
// come from that worker's arena, a bump region carved into power-of-two size classes with
// one free list per class, so the per-packet path never calls malloc; on any other thread
// (start-up: building detection modules) they come from the C heap. Every block carries a
// 16-byte header saying where it came from, so a block is always returned to its origin.
//
// An arena never takes memory back from a class, so its footprint is bounded by the peak
// of each class. Its size follows --dpi-flows (bytes_for()): kPerFlowBytes for each flow in
// classification plus kBaseBytes. When a worker's arena cannot serve a request the hook
// returns NULL (nDPI and libgcrypt check for it) and counts it (refused): a worker never
// falls back to the C heap. The classifier gives a flow up before feeding it a packet when
// the arena's headroom is below kReserveBytes, and after a packet whose dissection was
// refused memory (ClassifierCounters::arena_full).

#include <cstddef>
#include <cstdint>

#include "dataplane/counters.hpp"

namespace l7gate::dp {

class NdpiArena {
public:
    static constexpr unsigned kMinShift = 5;   // 32-byte class
    static constexpr unsigned kMaxShift = 20;  // 1 MiB class (libgcrypt asks for 256 KiB); larger: refused on workers
    static constexpr unsigned kClasses = kMaxShift - kMinShift + 1;

    NdpiArena() = default;
    NdpiArena(const NdpiArena&) = delete;
    NdpiArena& operator=(const NdpiArena&) = delete;
    ~NdpiArena();

    // Arena bytes per nDPI flow state (--dpi-flows), on top of kBaseBytes. nDPI 4.2 keeps
    // what it allocates for a flow until ndpi_free_flow_data() (classification ends): its
    // HTTP and TLS strings (URL, user agent, server names, certificate DNs, ALPN) and TLS
    // reassembly buffers; libgcrypt's QUIC decryption 256 KiB more while it runs. Measured
    // (README, "Classification with nDPI"): about 4 KiB per state in use for the l7 set
    // (mostly TLS and HTTP); flows nDPI allocates nothing for (DNS, unknown UDP, TCP before
    // its payload) take none, so 512 bytes is an average, not a bound.
    static constexpr size_t kPerFlowBytes = 512;
    static constexpr size_t kBaseBytes = size_t{4} << 20;
    // Headroom below which a flow in classification is given up rather than fed: more than
    // a packet's dissection asks for (a TLS record reassembly buffer, strings). The one
    // larger request, libgcrypt's 256 KiB (a 512 KiB block) at a worker's first QUIC
    // decryption, is kept by libgcrypt for good and comes out of kBaseBytes; should it come
    // when the arena is low, it is refused and that flow given up.
    static constexpr size_t kReserveBytes = size_t{64} << 10;
    static constexpr size_t bytes_for(uint32_t dpi_flows) noexcept {
        return size_t{dpi_flows} * kPerFlowBytes + kBaseBytes;
    }

    // `refused` (optional, the worker's counter) counts requests the arena could not serve.
    bool init(size_t bytes, int socket, Counter* refused = nullptr) noexcept;

    // Makes this arena the calling thread's nDPI allocator (nullptr detaches).
    static void attach(NdpiArena* arena) noexcept;

    // Installs the hooks into nDPI; call once before creating any detection module.
    static void install_hooks() noexcept;

    void* alloc(size_t size) noexcept;
    void release(void* block, unsigned cls) noexcept;

    uint64_t refused() const noexcept { return refused_local_; }
    uint64_t in_use() const noexcept { return in_use_; }
    uint64_t in_use_bytes() const noexcept { return in_use_bytes_; }
    uint64_t peak_bytes() const noexcept { return peak_bytes_; }
    size_t region_used() const noexcept { return static_cast<size_t>(bump_ - region_); }
    size_t size() const noexcept { return static_cast<size_t>(end_ - region_); }
    // Bytes the arena could still hand out: never carved, or in a free list.
    size_t headroom() const noexcept { return static_cast<size_t>(end_ - bump_) + free_bytes_; }

private:
    uint8_t* region_ = nullptr;
    uint8_t* bump_ = nullptr;
    uint8_t* end_ = nullptr;
    void* free_[kClasses] = {};
    size_t free_bytes_ = 0;
    uint64_t refused_local_ = 0;
    Counter* refused_ = nullptr;
    uint64_t in_use_ = 0;
    uint64_t in_use_bytes_ = 0;
    uint64_t peak_bytes_ = 0;
};

} // namespace l7gate::dp
