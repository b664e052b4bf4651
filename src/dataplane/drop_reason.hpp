#pragma once
// The closed set of reasons a packet can be dropped, and of the anomalies the parser
// recognises. One table is the single source of truth: the enum, the counter arrays, the
// JSON keys and (later) the Prometheus label values all come from it.

#include <array>
#include <cstdint>
#include <string_view>

namespace l7gate::dp {

// X(enum value, wire name, malformed?, help text)
#define L7G_DROP_REASONS(X)                                                                    \
    X(L2Truncated, "l2_truncated", true, "frame shorter than its Ethernet/VLAN headers")       \
    X(VlanTooDeep, "vlan_too_deep", true, "more than two stacked VLAN tags")                   \
    X(Ipv4Truncated, "ipv4_truncated", true, "frame shorter than the IPv4 header")             \
    X(Ipv4BadVersion, "ipv4_bad_version", true, "EtherType IPv4 but version field is not 4")   \
    X(Ipv4BadIhl, "ipv4_bad_ihl", true, "IPv4 IHL below 5 or beyond the frame")                \
    X(Ipv4BadLength, "ipv4_bad_length", true, "IPv4 total length below IHL or beyond frame")   \
    X(Ipv4BadFragment, "ipv4_bad_fragment", true, "IPv4 fragment offset/length inconsistent")  \
    X(Ipv6Truncated, "ipv6_truncated", true, "frame shorter than the IPv6 header")             \
    X(Ipv6BadVersion, "ipv6_bad_version", true, "EtherType IPv6 but version field is not 6")   \
    X(Ipv6BadLength, "ipv6_bad_length", true, "IPv6 payload length beyond the frame")          \
    X(Ipv6ExtTruncated, "ipv6_ext_truncated", true, "IPv6 extension header beyond the packet") \
    X(Ipv6ExtTooLong, "ipv6_ext_too_long", true, "IPv6 extension chain over the parse limit")  \
    X(TcpTruncated, "tcp_truncated", true, "TCP header beyond the IP payload")                 \
    X(TcpBadOffset, "tcp_bad_offset", true, "TCP data offset below 5 or beyond the segment")   \
    X(UdpTruncated, "udp_truncated", true, "UDP header beyond the IP payload")                 \
    X(UdpBadLength, "udp_bad_length", true, "UDP length below 8 or beyond the IP payload")     \
    X(IcmpTruncated, "icmp_truncated", true, "ICMP/ICMPv6 header beyond the IP payload")       \
    X(FragNoFirst, "frag_no_first", true, "non-first fragment with no known first fragment")   \
    X(Policy, "policy", false, "the policy's verdict for the flow was drop")                   \
    X(ShaperOverflow, "shaper_overflow", false, "a shaper queue was full")                     \
    X(ShaperDelay, "shaper_delay", false, "waited in a shaper queue longer than max_delay")    \
    X(Police, "police", false, "out of profile for a police: marker's bucket")                 \
    X(ShaperFlush, "shaper_flush", false, "still queued in a shaper when l7gate stopped")       \
    X(ShaperBacklog, "shaper_backlog", false, "the worker's shaper queues held their cap of packets") \
    X(ShaperHosts, "shaper_hosts", false, "no free per-host shaper queue near the host's slot") \
    X(TableFull, "table_full", false, "flow table full and --on-flow-table-full drop")         \
    X(BucketFull, "bucket_full", false, "both buckets of a new flow full and --on-flow-table-full drop") \
    X(TxFull, "tx_full", false, "the peer port's TX queue did not accept the packet")          \
    X(NoMbuf, "no_mbuf", false, "no mbuf available for a packet l7gate had to build")         \
    X(FfOutOfOrder, "first_flight_out_of_order", false, "a client segment of a first flight in reassembly that is not its next bytes (the client resends it)") \
    X(FfDuplicate, "first_flight_duplicate", false, "a client segment that only resends bytes of a first flight already held") \
    X(FfConflict, "first_flight_conflict", false, "a client segment whose bytes differ from the first-flight bytes already held (first wins)") \
    X(FfNoSlot, "first_flight_no_slot", false, "no free first-flight slot and --on-unnamed-first-flight drop") \
    X(FfAbandoned, "first_flight_abandoned", false, "held in a first flight when its flow ended or l7gate stopped") \
    X(OverMtu, "over_mtu", false, "IP length above --mtu, or frame longer than --mtu + 22 (Ethernet header, two VLAN tags)")

enum class DropReason : uint8_t {
#define L7G_X(e, name, malformed, help) e,
    L7G_DROP_REASONS(L7G_X)
#undef L7G_X
        Count,
    None = 0xff,
};

inline constexpr size_t kDropReasonCount = static_cast<size_t>(DropReason::Count);

struct DropReasonInfo {
    std::string_view name;
    bool malformed;
    std::string_view help;
};

inline constexpr std::array<DropReasonInfo, kDropReasonCount> kDropReasons{{
#define L7G_X(e, name, malformed, help) {name, malformed, help},
    L7G_DROP_REASONS(L7G_X)
#undef L7G_X
}};

constexpr std::string_view drop_reason_name(DropReason r) noexcept {
    return r < DropReason::Count ? kDropReasons[static_cast<size_t>(r)].name : "none";
}

constexpr bool is_malformed(DropReason r) noexcept {
    return r < DropReason::Count && kDropReasons[static_cast<size_t>(r)].malformed;
}

} // namespace l7gate::dp
