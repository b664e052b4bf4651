#pragma once
// FlowKey: the canonical (direction-independent) identity of a flow.
//
// Both directions of a flow produce the same key: the endpoint (address, port) that sorts
// lower goes into slot 0. PacketMeta::reversed says whether the packet travels from slot 1 to
// slot 0. IPv4 addresses sit in the first 4 bytes of the 16-byte slots, the rest zero, so v4
// and v6 share one layout and one comparison.

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "dataplane/hash.hpp"

namespace l7gate::dp {

struct FlowKey {
    uint8_t addr[2][16];  // slot 0 = lower endpoint
    uint16_t port[2];     // host byte order; 0 for protocols without ports
    uint32_t vlan;        // outer VID << 12 | inner VID (0 when untagged)
    uint8_t proto;        // IP protocol number
    uint8_t ip_version;   // 4 or 6
    uint16_t pad;         // always 0, so memcmp/hash over the whole key is well defined

    bool operator==(const FlowKey& o) const noexcept;
};
static_assert(sizeof(FlowKey) == 44, "FlowKey layout is part of the flow-table entry budget");
static_assert(offsetof(FlowKey, vlan) == offsetof(FlowKey, port) + 4 &&
                  offsetof(FlowKey, pad) == offsetof(FlowKey, proto) + 2 && offsetof(FlowKey, ip_version) == offsetof(FlowKey, proto) + 1,
              "flow_key_hash reads port/vlan and proto/ip_version/pad as words");

// Every lookup compares a key: three overlapping 16-byte compares (bytes 0-15, 16-31 and
// 28-43) instead of memcmp's byte-range loop, about half the instructions.
inline bool FlowKey::operator==(const FlowKey& o) const noexcept {
#if defined(__SSE2__)
    const auto* a = reinterpret_cast<const uint8_t*>(this);
    const auto* b = reinterpret_cast<const uint8_t*>(&o);
    const __m128i e0 = _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a)),
                                      _mm_loadu_si128(reinterpret_cast<const __m128i*>(b)));
    const __m128i e1 = _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + 16)),
                                      _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 16)));
    const __m128i e2 = _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + 28)),
                                      _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 28)));
    return _mm_movemask_epi8(_mm_and_si128(_mm_and_si128(e0, e1), e2)) == 0xffff;
#else
    return std::memcmp(this, &o, sizeof(*this)) == 0;
#endif
}

namespace detail {
inline uint32_t load_be32(const uint8_t* p) noexcept {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return __builtin_bswap32(v);
}
inline uint64_t load_be64(const uint8_t* p) noexcept {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return __builtin_bswap64(v);
}
} // namespace detail

// Builds the canonical key from one packet's endpoints; returns true when the packet travels
// from the higher endpoint to the lower one (i.e. src went into slot 1). Addresses compare as
// big-endian integers (the same order as memcmp over their bytes, without a library call).
inline bool make_flow_key(FlowKey& k, uint8_t ip_version, uint8_t proto, uint32_t vlan,
                          const uint8_t* src, const uint8_t* dst, uint16_t sport,
                          uint16_t dport) noexcept {
    bool reversed;
    std::memset(&k, 0, sizeof(k));
    if (ip_version == 4) {
        const uint32_t s = detail::load_be32(src);
        const uint32_t d = detail::load_be32(dst);
        reversed = s > d || (s == d && sport > dport);
        std::memcpy(k.addr[0], reversed ? dst : src, 4);
        std::memcpy(k.addr[1], reversed ? src : dst, 4);
    } else {
        const uint64_t s0 = detail::load_be64(src);
        const uint64_t d0 = detail::load_be64(dst);
        if (s0 != d0) {
            reversed = s0 > d0;
        } else {
            const uint64_t s1 = detail::load_be64(src + 8);
            const uint64_t d1 = detail::load_be64(dst + 8);
            reversed = s1 > d1 || (s1 == d1 && sport > dport);
        }
        std::memcpy(k.addr[0], reversed ? dst : src, 16);
        std::memcpy(k.addr[1], reversed ? src : dst, 16);
    }
    k.port[0] = reversed ? dport : sport;
    k.port[1] = reversed ? sport : dport;
    k.vlan = vlan;
    k.proto = proto;
    k.ip_version = ip_version;
    return reversed;
}

// The flow table's hash of a key: SipHash-1-3 under the table's secret key (drawn from
// getrandom(2) at start-up, see FlowTable::init), folded to 32 bits. Both buckets of a key
// and its stored signature come from this one value, so without the secret nobody can
// compute 5-tuples that share a flow's buckets (CRC32C, used before, is affine over GF(2):
// such tuples were computed in seconds, whatever the seed). Inline: it runs once per
// packet. An IPv4 key is zero beyond the first 4 bytes of each address, so only the 20 bytes
// that can differ are hashed (two blocks and the final one); an IPv6 key is hashed whole
// (44 bytes). The lengths differ, and ip_version is hashed too, so the two never mix.
inline uint32_t flow_key_hash(const FlowKey& k, const HashKey& secret) noexcept {
    uint64_t h;
    if (k.ip_version == 4) {
        uint32_t a0, a1, tail;
        uint64_t ports_vlan;
        std::memcpy(&a0, k.addr[0], 4);
        std::memcpy(&a1, k.addr[1], 4);
        std::memcpy(&ports_vlan, k.port, 8);  // port[0], port[1], vlan: contiguous
        std::memcpy(&tail, &k.proto, 4);      // proto, ip_version, pad
        SipHash13 s(secret);
        s.block(uint64_t{a0} | uint64_t{a1} << 32);
        s.block(ports_vlan);
        h = s.finish(uint64_t{tail} | uint64_t{20} << 56);
    } else {
        h = siphash_bytes<sizeof(FlowKey)>(&k, secret);
    }
    return static_cast<uint32_t>(h ^ h >> 32);
}

} // namespace l7gate::dp
