#pragma once
// Reject packets: what a `reject` verdict sends in place of the dropped packet.
//
// TCP: a RST towards each endpoint with sequence numbers taken from the dropped packet, so
// real stacks accept it: towards its receiver (only when the packet carried an ACK, i.e. the
// receiver knows the connection) with the packet's own sequence number; back to its sender
// with the sender's acknowledgement number, or, for a bare SYN, RST|ACK acknowledging it.
// UDP: an ICMP (IPv4) or ICMPv6 port unreachable back to the sender, quoting the packet.
// Other protocols (and fragments without their L4 header): nothing; the verdict acts as drop.
// Never (reject_forbidden): a RST in answer to a RST (RFC 793), nor anything in answer to a
// packet sent to (or from) a broadcast or multicast address, IP or Ethernet (RFC 1122
// 3.2.2, 4.2.2.12); such packets are dropped in silence and counted (reject_suppressed).
//
// Frames keep the original Ethernet and VLAN headers (MACs swapped for the packet sent back)
// and are built in mbufs from the dropped packet's own pool. No allocation besides the mbuf.

#include <cstdint>

#include "dataplane/packet_parser.hpp"

struct rte_mbuf;

namespace l7gate::dp {

struct RejectPackets {
    rte_mbuf* back = nullptr;     // to the sender: leaves on the port the packet came in on
    rte_mbuf* forward = nullptr;  // to the receiver: leaves on the peer port
};

// True when nothing may be sent in answer to this packet (`frame`, parsed into pm): a TCP RST;
// an Ethernet group (broadcast or multicast) destination; an IPv4 destination or source
// 255.255.255.255 or in 224.0.0.0/4; an IPv6 destination or source in ff00::/8.
// (Directed broadcasts of a subnet are not known here and are not covered.)
bool reject_forbidden(const uint8_t* frame, const PacketMeta& pm) noexcept;

// Builds the reject packets for `orig` (parsed into pm). Returns how many were built; 0 when
// the protocol has none or no mbuf could be had (nomem set).
unsigned build_reject(const rte_mbuf* orig, const PacketMeta& pm, RejectPackets& out, bool& nomem) noexcept;

} // namespace l7gate::dp
