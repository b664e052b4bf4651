#pragma once
// CRC32C over a small fixed-size key: DPDK's SSE4.2 instruction where the CPU has it (picked
// at start-up), a table otherwise. Words are loaded through memcpy, so keys need no 8-byte
// alignment (a plain unaligned load on x86, and no undefined behaviour).

#include <cstddef>
#include <cstdint>
#include <cstring>

#include <rte_hash_crc.h>

namespace l7gate::dp {

template <size_t N>
inline uint32_t crc32c_key(const void* key, uint32_t seed) noexcept {
    const auto* p = static_cast<const uint8_t*>(key);
    uint32_t h = seed;
    size_t i = 0;
    for (; i + 8 <= N; i += 8) {
        uint64_t w;
        std::memcpy(&w, p + i, 8);
        h = rte_hash_crc_8byte(w, h);
    }
    if constexpr (N % 8 >= 4) {
        uint32_t w;
        std::memcpy(&w, p + i, 4);
        h = rte_hash_crc_4byte(w, h);
        i += 4;
    }
    for (; i < N; ++i) {
        h = rte_hash_crc_1byte(p[i], h);
    }
    return h;
}

} // namespace l7gate::dp
