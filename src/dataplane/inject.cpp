#include "dataplane/inject.hpp"

#include <cstring>

#include <rte_byteorder.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>

namespace l7gate::dp {

namespace {

constexpr unsigned kIcmp6Quote = 512;  // bytes of the packet quoted in an ICMPv6 error

// Copies the L2 header (Ethernet + VLAN tags) of the original, swapping MACs if asked.
// GCC 12 with -fsanitize=address loses track of the mbuf data pointers here and reports the
// 6-byte MAC copies as out of the bounds of a zero-sized object (-Warray-bounds,
// -Wstringop-overread); the copies stay within the l3_offset (>= 14) bytes the parser checked.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
#pragma GCC diagnostic ignored "-Wstringop-overread"
uint8_t* start_frame(rte_mbuf* m, const uint8_t* src, const PacketMeta& pm, bool swap, unsigned l3_len) {
    if (rte_pktmbuf_append(m, static_cast<uint16_t>(pm.l3_offset + l3_len)) == nullptr) {
        return nullptr;
    }
    uint8_t* p = rte_pktmbuf_mtod(m, uint8_t*);
    std::memcpy(p, src, pm.l3_offset);
    if (swap) {
        uint8_t macs[12];
        std::memcpy(macs, src + 6, 6);
        std::memcpy(macs + 6, src, 6);
        std::memcpy(p, macs, sizeof(macs));
    }
    return p + pm.l3_offset;
}
#pragma GCC diagnostic pop

// Writes an IP header (no options / extension headers) for `payload` bytes of `proto`.
void write_ip(uint8_t* ip, const uint8_t* orig_ip, const PacketMeta& pm, bool reverse, uint8_t proto, unsigned payload) {
    if (pm.ip_version == 4) {
        auto* h = reinterpret_cast<rte_ipv4_hdr*>(ip);
        std::memset(h, 0, sizeof(*h));
        h->version_ihl = 0x45;
        h->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(20 + payload));
        h->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
        h->time_to_live = 64;
        h->next_proto_id = proto;
        std::memcpy(&h->src_addr, orig_ip + (reverse ? 16 : 12), 4);
        std::memcpy(&h->dst_addr, orig_ip + (reverse ? 12 : 16), 4);
        h->hdr_checksum = rte_ipv4_cksum(h);
    } else {
        auto* h = reinterpret_cast<rte_ipv6_hdr*>(ip);
        std::memset(h, 0, sizeof(*h));
        h->vtc_flow = rte_cpu_to_be_32(0x60000000u);
        h->payload_len = rte_cpu_to_be_16(static_cast<uint16_t>(payload));
        h->proto = proto;
        h->hop_limits = 64;
        std::memcpy(h->src_addr, orig_ip + (reverse ? 24 : 8), 16);
        std::memcpy(h->dst_addr, orig_ip + (reverse ? 8 : 24), 16);
    }
}

unsigned ip_len(const PacketMeta& pm) { return pm.ip_version == 4 ? 20u : 40u; }

rte_mbuf* tcp_rst(const rte_mbuf* orig, const PacketMeta& pm, bool back, bool& nomem) {
    const auto* src = rte_pktmbuf_mtod(orig, const uint8_t*);
    const uint8_t* oip = src + pm.l3_offset;
    const auto* otcp = reinterpret_cast<const rte_tcp_hdr*>(src + pm.l4_offset);
    rte_mbuf* m = rte_pktmbuf_alloc(orig->pool);
    if (m == nullptr) {
        nomem = true;
        return nullptr;
    }
    uint8_t* ip = start_frame(m, src, pm, back, ip_len(pm) + sizeof(rte_tcp_hdr));
    if (ip == nullptr) {
        rte_pktmbuf_free(m);
        return nullptr;
    }
    write_ip(ip, oip, pm, back, 6, sizeof(rte_tcp_hdr));
    auto* t = reinterpret_cast<rte_tcp_hdr*>(ip + ip_len(pm));
    std::memset(t, 0, sizeof(*t));
    t->data_off = 5 << 4;
    if (back) {
        t->src_port = otcp->dst_port;
        t->dst_port = otcp->src_port;
        if ((pm.tcp_flags & tcp_flag::kAck) != 0) {
            t->sent_seq = otcp->recv_ack;   // what the sender expects from its peer next
            t->tcp_flags = RTE_TCP_RST_FLAG;
        } else {
            // A bare SYN: refuse it the way a closed port would, acknowledging it.
            uint32_t ack = pm.tcp_seq + pm.payload_length;
            ack += (pm.tcp_flags & tcp_flag::kSyn) != 0 ? 1 : 0;
            ack += (pm.tcp_flags & tcp_flag::kFin) != 0 ? 1 : 0;
            t->recv_ack = rte_cpu_to_be_32(ack);
            t->tcp_flags = RTE_TCP_RST_FLAG | RTE_TCP_ACK_FLAG;
        }
    } else {
        t->src_port = otcp->src_port;
        t->dst_port = otcp->dst_port;
        t->sent_seq = otcp->sent_seq;      // the receiver never saw this packet: in window
        t->tcp_flags = RTE_TCP_RST_FLAG;
    }
    if (pm.ip_version == 4) {
        t->cksum = rte_ipv4_udptcp_cksum(reinterpret_cast<const rte_ipv4_hdr*>(ip), t);
    } else {
        t->cksum = rte_ipv6_udptcp_cksum(reinterpret_cast<const rte_ipv6_hdr*>(ip), t);
    }
    return m;
}

rte_mbuf* port_unreachable(const rte_mbuf* orig, const PacketMeta& pm, bool& nomem) {
    const auto* src = rte_pktmbuf_mtod(orig, const uint8_t*);
    const uint8_t* oip = src + pm.l3_offset;
    // ICMP quotes the original IP header and the first 8 bytes of its payload (RFC 792);
    // ICMPv6 as much as fits a small error (RFC 4443 allows up to the minimum MTU).
    const unsigned have = orig->data_len - pm.l3_offset;
    unsigned quote = pm.ip_version == 4 ? (pm.l4_offset - pm.l3_offset) + 8u : kIcmp6Quote;
    if (quote > have) {
        quote = have;
    }
    rte_mbuf* m = rte_pktmbuf_alloc(orig->pool);
    if (m == nullptr) {
        nomem = true;
        return nullptr;
    }
    const unsigned icmp_len = 8 + quote;
    uint8_t* ip = start_frame(m, src, pm, true, ip_len(pm) + icmp_len);
    if (ip == nullptr) {
        rte_pktmbuf_free(m);
        return nullptr;
    }
    write_ip(ip, oip, pm, true, pm.ip_version == 4 ? 1 : 58, icmp_len);
    uint8_t* icmp = ip + ip_len(pm);
    std::memset(icmp, 0, 8);
    icmp[0] = pm.ip_version == 4 ? 3 : 1;  // destination unreachable
    icmp[1] = pm.ip_version == 4 ? 3 : 4;  // port unreachable
    std::memcpy(icmp + 8, oip, quote);
    uint16_t ck;
    if (pm.ip_version == 4) {
        ck = static_cast<uint16_t>(~rte_raw_cksum(icmp, icmp_len));
    } else {
        ck = rte_ipv6_udptcp_cksum(reinterpret_cast<const rte_ipv6_hdr*>(ip), icmp);
    }
    std::memcpy(icmp + 2, &ck, 2);
    return m;
}

} // namespace

bool reject_forbidden(const uint8_t* frame, const PacketMeta& pm) noexcept {
    if (pm.l4_proto == 6 && (pm.tcp_flags & tcp_flag::kRst) != 0) {
        return true;  // RFC 793: a reset is never sent in response to a reset
    }
    if ((frame[0] & 1u) != 0) {
        return true;  // Ethernet group address (broadcast ff:ff:ff:ff:ff:ff or multicast)
    }
    const uint8_t* ip = frame + pm.l3_offset;
    if (pm.ip_version == 4) {
        for (const unsigned off : {16u, 12u}) {  // destination, then source
            const uint8_t* a = ip + off;
            if ((a[0] & 0xf0u) == 0xe0u || (a[0] == 255 && a[1] == 255 && a[2] == 255 && a[3] == 255)) {
                return true;  // 224.0.0.0/4 multicast, limited broadcast
            }
        }
        return false;
    }
    return ip[24] == 0xff || ip[8] == 0xff;  // ff00::/8, destination or source
}

unsigned build_reject(const rte_mbuf* orig, const PacketMeta& pm, RejectPackets& out, bool& nomem) noexcept {
    out = RejectPackets{};
    nomem = false;
    if (pm.l4_offset == 0 || orig->nb_segs != 1) {
        return 0;  // no L4 header here (a later fragment), or a frame we do not quote
    }
    if (pm.l4_proto == 6) {
        out.back = tcp_rst(orig, pm, true, nomem);
        if ((pm.tcp_flags & tcp_flag::kAck) != 0) {
            out.forward = tcp_rst(orig, pm, false, nomem);
        }
    } else if (pm.l4_proto == 17) {
        out.back = port_unreachable(orig, pm, nomem);
    }
    return (out.back != nullptr ? 1u : 0u) + (out.forward != nullptr ? 1u : 0u);
}

} // namespace l7gate::dp
