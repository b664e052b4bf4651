#pragma once
// Packet parser: Ethernet, 802.1Q / QinQ (0x8100, 0x88a8, 0x9100), IPv4 (options,
// fragments), IPv6 with extension headers (hop-by-hop, routing, fragment, destination
// options, AH), TCP, UDP, ICMP, ICMPv6; any other IP protocol is keyed by its number.
// Encapsulations (README "Tunnels"): PPPoE session, MPLS label stacks, IPv4/IPv6 in IPv4/IPv6
// (protocols 4 and 41), GRE version 0, VXLAN (UDP 4789), GTP-U (UDP 2152), CAPWAP data
// (UDP 5247): the key, offsets and lengths are then the inner packet's, and `encap`/`outer`
// say what carried it. At most kMaxEncapDepth layers; what is not looked into is noted in
// `tun_skip`. The decapsulation code sits behind branches plain traffic does not take.
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
inline constexpr unsigned kMaxEncapDepth = 2;   // encapsulation layers looked into
inline constexpr unsigned kMaxMplsLabels = 8;   // labels walked before giving up

// What carried the inner packet (the innermost layer). The values are part of the flow key
// (FlowKey::vlan's top byte) and of the flow log; append only.
enum class Encap : uint8_t { None, Pppoe, Mpls, IpInIp, Gre, Vxlan, GtpU, Capwap, Count };
inline constexpr const char* kEncapNames[] = {"none", "pppoe", "mpls", "ip_in_ip", "gre", "vxlan", "gtp_u", "capwap"};
static_assert(sizeof(kEncapNames) / sizeof(kEncapNames[0]) == static_cast<size_t>(Encap::Count));
// Sets of encapsulations (a bit per Encap; PacketMeta::no_decap holds the complement).
inline constexpr uint8_t kDecapAll = 0xfe;
// ndpiReader 4.2's default set (no -t): PPPoE, MPLS and IP-in-IP; GTP-U and CAPWAP only
// with -t, GRE and VXLAN never.
inline constexpr uint8_t kDecapNdpiReader = 1u << 1 | 1u << 2 | 1u << 3;

// Why a tunnel's inside was not looked into (the packet is the outer flow's; counted as
// uninspected when forwarded).
enum class TunSkip : uint8_t {
    None,
    TooDeep,      // more than kMaxEncapDepth layers
    Unsupported,  // GRE version or payload type not looked into, MPLS stack too deep
    OuterFragment,// a fragment of a tunnel packet (the inner header is not reassembled)
    Garbled,      // tunnel header truncated or inconsistent
    Count,
};
inline constexpr const char* kTunSkipNames[] = {"none", "too_deep", "unsupported", "outer_fragment", "garbled"};

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
    // Encapsulation (README "Tunnels"). encap != None: the fields above are the inner packet's.
    Encap encap;             // innermost layer that carried it
    uint8_t encap_depth;     // layers looked into
    TunSkip tun_skip;        // why a tunnel was not looked into (None: it was, or none)
    Encap skip_encap;        // the encapsulation tun_skip is about
    uint8_t no_decap;        // input: the Encap bits NOT to look into (0: every one; not reset by the parser)
    uint8_t outer_version;   // the carrier's IP version (0 for PPPoE/MPLS)
    uint32_t tunnel_id;      // VNI, TEID, GRE key, PPPoE session, MPLS bottom label (0: none)
    uint8_t outer_src[16];   // the carrier's addresses (innermost IP header outside the inner one)
    uint8_t outer_dst[16];
};

// Parses one frame of `len` bytes. Always fills meta.kind; never reads beyond data[len).
void parse_packet(const uint8_t* data, uint32_t len, PacketMeta& meta) noexcept;

} // namespace l7gate::dp
