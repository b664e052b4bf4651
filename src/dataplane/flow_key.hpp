#pragma once
// FlowKey: the canonical (direction-independent) identity of a flow.
//
// Both directions of a flow produce the same key: the endpoint (address, port) that sorts
// lower goes into slot 0. PacketMeta::reversed says whether the packet travels from slot 1 to
// slot 0. IPv4 addresses sit in the first 4 bytes of the 16-byte slots, the rest zero, so v4
// and v6 share one layout and one comparison.

#include <cstdint>
#include <cstring>

namespace l7gate::dp {

struct FlowKey {
    uint8_t addr[2][16];  // slot 0 = lower endpoint
    uint16_t port[2];     // host byte order; 0 for protocols without ports
    uint32_t vlan;        // outer VID << 12 | inner VID (0 when untagged)
    uint8_t proto;        // IP protocol number
    uint8_t ip_version;   // 4 or 6
    uint16_t pad;         // always 0, so memcmp/hash over the whole key is well defined

    bool operator==(const FlowKey& o) const noexcept { return std::memcmp(this, &o, sizeof(*this)) == 0; }
};
static_assert(sizeof(FlowKey) == 44, "FlowKey layout is part of the flow-table entry budget");

// Builds the canonical key from one packet's endpoints; returns true when the packet travels
// from the higher endpoint to the lower one (i.e. src went into slot 1).
inline bool make_flow_key(FlowKey& k, uint8_t ip_version, uint8_t proto, uint32_t vlan,
                          const uint8_t* src, const uint8_t* dst, uint16_t sport,
                          uint16_t dport) noexcept {
    const size_t alen = ip_version == 4 ? 4 : 16;
    int c = std::memcmp(src, dst, alen);
    bool reversed = c > 0 || (c == 0 && sport > dport);
    std::memset(&k, 0, sizeof(k));
    const uint8_t* lo = reversed ? dst : src;
    const uint8_t* hi = reversed ? src : dst;
    std::memcpy(k.addr[0], lo, alen);
    std::memcpy(k.addr[1], hi, alen);
    k.port[0] = reversed ? dport : sport;
    k.port[1] = reversed ? sport : dport;
    k.vlan = vlan;
    k.proto = proto;
    k.ip_version = ip_version;
    return reversed;
}

// A fast 32-bit hash of the key (CRC32C where the CPU has it, see flow_key.cpp).
uint32_t flow_key_hash(const FlowKey& k) noexcept;

} // namespace l7gate::dp
