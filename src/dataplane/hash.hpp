#pragma once
// SipHash-1-3 over small fixed-size keys, for the flow table's buckets (keyed: see below).
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

// A 128-bit secret for keyed hashing (SipHash's k0, k1).
struct HashKey {
    uint64_t k0 = 0;
    uint64_t k1 = 0;
};

// 128 bits from getrandom(2) (the kernel's CSPRNG; blocks only until its pool is initialised
// at boot). False when no random bytes came. Every table whose keys traffic chooses (flows,
// fragments, flow metadata, per-host shapers) draws its own at init.
bool random_hash_key(HashKey& out) noexcept;

// SipHash-C-D (Aumasson and Bernstein's SipHash: C compression rounds per 8-byte block, D
// finalisation rounds), written from the paper's description; the flow table uses
// SipHash-1-3 (SipHash13), the unit test checks SipHash-2-4 against the paper's vector. A keyed PRF:
// without the key, inputs whose outputs collide cannot be computed, unlike CRC, which is
// affine over GF(2) whatever its seed. The caller hands over the message as little-endian
// 64-bit words; `last` is the final block: the 0-7 trailing bytes in its low bytes and the
// message length (mod 256) in its top byte, as the specification pads it.
template <unsigned C, unsigned D>
class SipHash {
public:
    explicit SipHash(const HashKey& k) noexcept
        : v0_(k.k0 ^ 0x736f6d6570736575ull), v1_(k.k1 ^ 0x646f72616e646f6dull),
          v2_(k.k0 ^ 0x6c7967656e657261ull), v3_(k.k1 ^ 0x7465646279746573ull) {}

    void block(uint64_t m) noexcept {
        v3_ ^= m;
        for (unsigned r = 0; r < C; ++r) {
            round();
        }
        v0_ ^= m;
    }
    uint64_t finish(uint64_t last) noexcept {
        block(last);
        v2_ ^= 0xff;
        for (unsigned r = 0; r < D; ++r) {
            round();
        }
        return v0_ ^ v1_ ^ v2_ ^ v3_;
    }

private:
    static uint64_t rotl(uint64_t x, unsigned b) noexcept { return x << b | x >> (64 - b); }
    void round() noexcept {
        v0_ += v1_;
        v2_ += v3_;
        v1_ = rotl(v1_, 13);
        v3_ = rotl(v3_, 16);
        v1_ ^= v0_;
        v3_ ^= v2_;
        v0_ = rotl(v0_, 32);
        v2_ += v1_;
        v0_ += v3_;
        v1_ = rotl(v1_, 17);
        v3_ = rotl(v3_, 21);
        v1_ ^= v2_;
        v3_ ^= v0_;
        v2_ = rotl(v2_, 32);
    }
    uint64_t v0_, v1_, v2_, v3_;
};
using SipHash13 = SipHash<1, 3>;

// SipHash-C-D of N bytes (little-endian x86: a word loaded through memcpy is the
// specification's little-endian block).
template <size_t N, unsigned C = 1, unsigned D = 3>
inline uint64_t siphash_bytes(const void* data, const HashKey& key) noexcept {
    const auto* p = static_cast<const uint8_t*>(data);
    SipHash<C, D> s(key);
    size_t i = 0;
    for (; i + 8 <= N; i += 8) {
        uint64_t w;
        std::memcpy(&w, p + i, 8);
        s.block(w);
    }
    uint64_t last = uint64_t{N & 0xff} << 56;
    for (size_t j = 0; i + j < N; ++j) {
        last |= uint64_t{p[i + j]} << (8 * j);
    }
    return s.finish(last);
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
