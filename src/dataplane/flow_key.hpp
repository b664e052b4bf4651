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
#include <wmmintrin.h>  // _mm_aesenc_si128, used in a target("aes") function only

#include "dataplane/hash.hpp"

namespace l7gate::dp {

struct FlowKey {
    uint8_t addr[2][16];  // slot 0 = lower endpoint
    uint16_t port[2];     // host byte order; 0 for protocols without ports
    uint32_t vlan;        // outer VID << 12 | inner VID (0 when untagged); bits 24-31: Encap of a tunnelled flow
    uint8_t proto;        // IP protocol number
    uint8_t ip_version;   // 4 or 6
    uint16_t tunnel;      // tunnel discriminator (0: not tunnelled; Worker::tunnel_tag), keeps inner flows of different tunnels apart

    bool operator==(const FlowKey& o) const noexcept;
};
static_assert(sizeof(FlowKey) == 44, "FlowKey layout is part of the flow-table entry budget");
static_assert(offsetof(FlowKey, vlan) == offsetof(FlowKey, port) + 4 &&
                  offsetof(FlowKey, tunnel) == offsetof(FlowKey, proto) + 2 && offsetof(FlowKey, ip_version) == offsetof(FlowKey, proto) + 1,
              "the flow hashes read port/vlan and proto/ip_version/pad as words");

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

// The flow table's hash of a key is keyed (a secret drawn from getrandom(2) at start-up, see
// FlowTable::init) and folded to 32 bits. Both buckets of a key and its stored signature come
// from this one value, so without the secret nobody can compute 5-tuples that share a flow's
// buckets (CRC32C, used before, is affine over GF(2): such tuples were computed in seconds,
// whatever the seed). Two constructions, one picked per table at init (FlowHasher):
// AES rounds where the CPU has AES-NI (about a fifth of SipHash's instructions), SipHash-1-3
// otherwise. Computed once per packet.

// SipHash-1-3 of a key. An IPv4 key is zero beyond the first 4 bytes of each address, so only
// the 20 bytes that can differ are hashed (two blocks and the final one); an IPv6 key is
// hashed whole (44 bytes). The lengths differ, and ip_version is hashed too, so the two never
// mix.
inline uint32_t flow_key_siphash(const FlowKey& k, const HashKey& secret) noexcept {
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

// Round keys of the AES-round hash: four 128-bit keys derived from the table's secret with
// SipHash-2-4 (a PRF: they are as secret as the secret, and independent of each other).
struct alignas(16) AesHashKey {
    uint64_t rk[4][2];
};
inline AesHashKey aes_hash_key(const HashKey& secret) noexcept {
    AesHashKey a{};
    for (uint64_t i = 0; i < 8; ++i) {
        const uint64_t label = 0x6165736b65790000ull | i;  // "aeskey" and the word's index
        a.rk[i / 2][i % 2] = siphash_bytes<8, 2, 4>(&label, secret);
    }
    return a;
}

// The AES-round hash of a key (AES-NI; call only where the CPU has it: FlowHasher checks).
// Not AES encryption but its round function used as a keyed mixer: the state starts as the
// first 16-byte block XORed with the secret round key 0 and goes through AES rounds (SubBytes,
// ShiftRows, MixColumns, AddRoundKey) under secret round keys; SubBytes is the only
// non-linear step, and after two rounds every output byte depends on every input byte
// through it. An IPv4 key packs into one block (addresses, ports, and vlan, which holds 24
// bits, with proto in its top byte): three rounds. An IPv6 key is three blocks (addresses,
// then ports/vlan/proto/version/pad): each is XORed into the state followed by two rounds, and
// the last by three, so a difference an attacker puts in any block goes through at least
// three rounds of unknown keys before the output, and one in an earlier block must be
// cancelled by a later block's difference that has to predict a two-round AES differential
// (probability far below a random 32-bit collision's). The 128-bit state is folded to 32
// bits by XOR. The difference from SipHash: a few instructions instead of about a hundred.
__attribute__((target("aes"))) inline uint32_t flow_key_aes_hash(const FlowKey& k, const AesHashKey& key) noexcept {
    const __m128i k0 = _mm_load_si128(reinterpret_cast<const __m128i*>(key.rk[0]));
    const __m128i k1 = _mm_load_si128(reinterpret_cast<const __m128i*>(key.rk[1]));
    const __m128i k2 = _mm_load_si128(reinterpret_cast<const __m128i*>(key.rk[2]));
    const __m128i k3 = _mm_load_si128(reinterpret_cast<const __m128i*>(key.rk[3]));
    __m128i s;
    // One block packs an untunnelled IPv4 key (vlan's top byte, the encapsulation, then 0, and
    // tunnel 0); a tunnelled one is hashed whole, like IPv6.
    if (k.ip_version == 4 && k.vlan < (1u << 24)) {
        uint32_t a0, a1, ports, vlan;
        std::memcpy(&a0, k.addr[0], 4);
        std::memcpy(&a1, k.addr[1], 4);
        std::memcpy(&ports, k.port, 4);
        std::memcpy(&vlan, &k.vlan, 4);
        const uint64_t pvp = uint64_t{ports} | uint64_t{vlan ^ uint32_t{k.proto} << 24} << 32;
        s = _mm_xor_si128(_mm_set_epi64x(static_cast<long long>(pvp),
                                         static_cast<long long>(uint64_t{a0} | uint64_t{a1} << 32)), k0);
    } else {
        uint64_t ports_vlan;
        uint32_t tail;
        std::memcpy(&ports_vlan, k.port, 8);  // port[0], port[1], vlan
        std::memcpy(&tail, &k.proto, 4);      // proto, ip_version, pad
        s = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k.addr[0])), k0);
        s = _mm_aesenc_si128(_mm_aesenc_si128(s, k1), k2);
        s = _mm_xor_si128(s, _mm_loadu_si128(reinterpret_cast<const __m128i*>(k.addr[1])));
        s = _mm_aesenc_si128(_mm_aesenc_si128(s, k1), k2);
        s = _mm_xor_si128(s, _mm_set_epi64x(static_cast<long long>(ports_vlan), static_cast<long long>(tail)));
    }
    s = _mm_aesenc_si128(_mm_aesenc_si128(_mm_aesenc_si128(s, k1), k2), k3);
    s = _mm_xor_si128(s, _mm_unpackhi_epi64(s, s));
    const auto h = static_cast<uint64_t>(_mm_cvtsi128_si64(s));
    return static_cast<uint32_t>(h ^ h >> 32);
}

// The AES-round hash of n keys (out[i] = flow_key_aes_hash(*keys[i], key)). One function
// compiled for AES-NI with the hash inlined: the round keys are loaded once and the rounds of
// successive keys overlap, where a call per key (the target attribute forbids inlining the
// hash into code built without AES-NI) serialises each key's chain of aesenc.
__attribute__((target("aes"))) inline void flow_key_aes_hash_burst(const FlowKey* const* keys, uint32_t* out,
                                                                   unsigned n, const AesHashKey& key) noexcept {
    for (unsigned i = 0; i < n; ++i) {
        out[i] = flow_key_aes_hash(*keys[i], key);
    }
}

// The flow table's keyed hash: the secret's SipHash key and AES round keys, and which
// construction this table uses (AES rounds where the CPU has AES-NI, checked once here).
class FlowHasher {
public:
    enum class Kind : uint8_t { SipHash13, AesRounds };

    // Whether this CPU runs the AES-round hash (the build targets -march=corei7, no AES-NI).
    static bool cpu_has_aes() noexcept {
        __builtin_cpu_init();
        return __builtin_cpu_supports("aes") != 0;
    }
    static Kind best_kind() noexcept { return cpu_has_aes() ? Kind::AesRounds : Kind::SipHash13; }
    static const char* name(Kind k) noexcept { return k == Kind::AesRounds ? "aes-rounds" : "siphash-1-3"; }

    FlowHasher() noexcept = default;
    explicit FlowHasher(const HashKey& secret) noexcept : FlowHasher(secret, best_kind()) {}
    // `kind` AesRounds on a CPU without AES-NI falls back to SipHash13.
    FlowHasher(const HashKey& secret, Kind kind) noexcept
        : aes_(aes_hash_key(secret)), sip_(secret),
          kind_(kind == Kind::AesRounds && cpu_has_aes() ? Kind::AesRounds : Kind::SipHash13) {}

    uint32_t operator()(const FlowKey& k) const noexcept {
        return kind_ == Kind::AesRounds ? flow_key_aes_hash(k, aes_) : flow_key_siphash(k, sip_);
    }
    // The hashes of n keys (a burst's), the same values as operator() gives one by one.
    void burst(const FlowKey* const* keys, uint32_t* out, unsigned n) const noexcept {
        if (kind_ == Kind::AesRounds) {
            flow_key_aes_hash_burst(keys, out, n, aes_);
        } else {
            for (unsigned i = 0; i < n; ++i) {
                out[i] = flow_key_siphash(*keys[i], sip_);
            }
        }
    }
    Kind kind() const noexcept { return kind_; }
    const HashKey& secret() const noexcept { return sip_; }

private:
    AesHashKey aes_{};
    HashKey sip_{};
    Kind kind_ = Kind::SipHash13;
};

// The hash a FlowTable whose secret is `secret` gives a key, with the construction this CPU
// gets (tests, benchmarks: derives the round keys on every call; the table keeps them).
inline uint32_t flow_key_hash(const FlowKey& k, const HashKey& secret) noexcept {
    return FlowHasher(secret)(k);
}

} // namespace l7gate::dp
