#pragma once
// CRC32C over a small fixed-size key: DPDK's SSE4.2 instruction where the CPU has it (picked
// at start-up), a table otherwise. Words are loaded through memcpy, so keys need no 8-byte
// alignment (a plain unaligned load on x86, and no undefined behaviour).

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__SSE4_2__) && defined(__x86_64__)
#include <nmmintrin.h>
#endif

#include <rte_hash_crc.h>

namespace l7gate::dp {

// One CRC32C step. Built for SSE4.2 (DPDK's baseline here, -march=corei7) it is the bare
// instruction: rte_hash_crc_*byte() would test which implementation was picked at start-up
// on every call, three times per packet. The values are the same either way.
inline uint32_t crc32c_u64(uint64_t w, uint32_t h) noexcept {
#if defined(__SSE4_2__) && defined(__x86_64__)
    return static_cast<uint32_t>(_mm_crc32_u64(h, w));
#else
    return rte_hash_crc_8byte(w, h);
#endif
}
inline uint32_t crc32c_u32(uint32_t w, uint32_t h) noexcept {
#if defined(__SSE4_2__) && defined(__x86_64__)
    return _mm_crc32_u32(h, w);
#else
    return rte_hash_crc_4byte(w, h);
#endif
}

template <size_t N>
inline uint32_t crc32c_key(const void* key, uint32_t seed) noexcept {
    const auto* p = static_cast<const uint8_t*>(key);
    uint32_t h = seed;
    size_t i = 0;
    for (; i + 8 <= N; i += 8) {
        uint64_t w;
        std::memcpy(&w, p + i, 8);
        h = crc32c_u64(w, h);
    }
    if constexpr (N % 8 >= 4) {
        uint32_t w;
        std::memcpy(&w, p + i, 4);
        h = crc32c_u32(w, h);
        i += 4;
    }
    for (; i < N; ++i) {
        h = rte_hash_crc_1byte(p[i], h);
    }
    return h;
}

} // namespace l7gate::dp
