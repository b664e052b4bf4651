#pragma once
// Packet parser: Ethernet, 802.1Q / QinQ (0x8100, 0x88a8, 0x9100), IPv4 (options,
// fragments), IPv6 with extension headers (hop-by-hop, routing, fragment, destination
// options, AH), TCP, UDP, ICMP, ICMPv6; any other IP protocol is keyed by its number.
//
// Pure function over a byte range: no DPDK, no allocation, no side effects, so it is unit
// tested without EAL and fuzzed directly. Every inconsistency is reported as a DropReason;
// the worker decides (by --malformed) whether the packet is dropped or forwarded.

#include <cstdint>

#include "dataplane/drop_reason.hpp"
#include "dataplane/flow_key.hpp"

namespace l7gate::dp {

enum class PacketKind : uint8_t {
    NonIp,      // ARP, LLDP, ...: forwarded untouched
    Ip,         // parsed: key is valid (for non-first fragments see frag fields)
    Malformed,  // error says why
};

// IPv6 extension headers the parser walks before giving up with Ipv6ExtTooLong.
inline constexpr unsigned kMaxIpv6ExtHeaders = 8;
inline constexpr unsigned kMaxVlanTags = 2;

namespace tcp_flag {
inline constexpr uint8_t kFin = 0x01;
inline constexpr uint8_t kSyn = 0x02;
inline constexpr uint8_t kRst = 0x04;
inline constexpr uint8_t kPsh = 0x08;
inline constexpr uint8_t kAck = 0x10;
} // namespace tcp_flag

struct PacketMeta {
    FlowKey key;             // valid when kind == Ip (for non-first fragments: ports are 0)
    PacketKind kind;
    DropReason error;        // DropReason::None unless kind == Malformed
    uint8_t reversed;        // 1: packet goes from key slot 1 to slot 0
    uint8_t ip_version;      // 4 or 6 (0 for non-IP)
    uint8_t l4_proto;        // final upper-layer protocol number
    uint8_t tcp_flags;       // TCP only
    uint8_t is_fragment;     // part of a fragmented datagram
    uint8_t first_fragment;  // offset 0 (carries the L4 header)
    uint8_t vlan_count;      // 0..2
    uint16_t l3_offset;      // from frame start
    uint16_t l4_offset;      // 0 when there is no L4 header in this packet
    uint16_t payload_offset; // L4 payload start (0 when none)
    uint16_t l3_length;      // IP datagram length per its header (<= frame length - l3_offset)
    uint16_t payload_length; // L4 payload bytes in this packet
    uint16_t ethertype;      // innermost EtherType
    uint32_t frag_id;        // IPv4 id or IPv6 fragment identification
    uint32_t tcp_seq;        // host order, TCP only
    uint32_t tcp_ack;        // host order, TCP only
    uint32_t hash;           // flow_key_hash(key), filled by the caller's stage
};

// Parses one frame of `len` bytes. Always fills meta.kind; never reads beyond data[len).
void parse_packet(const uint8_t* data, uint32_t len, PacketMeta& meta) noexcept;

} // namespace l7gate::dp
