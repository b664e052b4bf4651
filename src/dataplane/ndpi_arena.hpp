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
// of each class. When a worker's region is exhausted the hook falls back to the C heap and
// counts it (heap_fallbacks), which tests and benchmarks assert to be zero.

#include <cstddef>
#include <cstdint>

namespace l7gate::dp {

class NdpiArena {
public:
    static constexpr unsigned kMinShift = 5;   // 32-byte class
    static constexpr unsigned kMaxShift = 20;  // 1 MiB class (libgcrypt asks for 256 KiB); larger go to the heap
    static constexpr unsigned kClasses = kMaxShift - kMinShift + 1;

    NdpiArena() = default;
    NdpiArena(const NdpiArena&) = delete;
    NdpiArena& operator=(const NdpiArena&) = delete;
    ~NdpiArena();

    bool init(size_t bytes, int socket) noexcept;

    // Makes this arena the calling thread's nDPI allocator (nullptr detaches).
    static void attach(NdpiArena* arena) noexcept;

    // Installs the hooks into nDPI; call once before creating any detection module.
    static void install_hooks() noexcept;

    void* alloc(size_t size) noexcept;
    void release(void* block, unsigned cls) noexcept;

    uint64_t heap_fallbacks() const noexcept { return heap_fallbacks_; }
    uint64_t in_use() const noexcept { return in_use_; }
    size_t region_used() const noexcept { return static_cast<size_t>(bump_ - region_); }

    // Process-wide count of heap allocations made through the hooks on worker threads
    // (each arena's fallbacks), for tests.
    static uint64_t heap_allocs_on_workers() noexcept;

private:
    uint8_t* region_ = nullptr;
    uint8_t* bump_ = nullptr;
    uint8_t* end_ = nullptr;
    void* free_[kClasses] = {};
    uint64_t heap_fallbacks_ = 0;
    uint64_t in_use_ = 0;
};

} // namespace l7gate::dp
