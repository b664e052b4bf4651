#pragma once
// Frames for the microbenchmarks: a few common shapes, built by hand (no scapy, no EAL).
// Addresses only from 198.18.0.0/15 and 2001:db8::/32. Checksums are left zero: the parser
// does not look at them.

#include <cstdint>
#include <cstring>
#include <vector>

namespace l7gate::perf {

enum class FrameKind {
    Ipv4TcpSyn,     // 60 bytes: Ethernet + IPv4 + TCP SYN, padded
    Ipv4UdpDns,     // Ethernet + IPv4 + UDP + 48-byte DNS-sized payload
    Ipv4TcpData,    // Ethernet + IPv4 + TCP (options) + 1448 bytes: a full-size segment
    Ipv6Tcp,        // Ethernet + IPv6 + TCP + 512 bytes
    QinQIpv4Udp,    // Ethernet + 802.1ad + 802.1Q + IPv4 + UDP + 64 bytes
    Ipv6ExtUdp,     // Ethernet + IPv6 + hop-by-hop + destination options + UDP + 64 bytes
    Ipv4FragFirst,  // Ethernet + IPv4 (MF, offset 0) + UDP + 1472 bytes
};

inline constexpr FrameKind kAllKinds[] = {
    FrameKind::Ipv4TcpSyn, FrameKind::Ipv4UdpDns, FrameKind::Ipv4TcpData, FrameKind::Ipv6Tcp,
    FrameKind::QinQIpv4Udp, FrameKind::Ipv6ExtUdp, FrameKind::Ipv4FragFirst,
};

inline const char* kind_name(FrameKind k) {
    switch (k) {
    case FrameKind::Ipv4TcpSyn:
        return "ipv4_tcp_syn";
    case FrameKind::Ipv4UdpDns:
        return "ipv4_udp_dns";
    case FrameKind::Ipv4TcpData:
        return "ipv4_tcp_1514";
    case FrameKind::Ipv6Tcp:
        return "ipv6_tcp";
    case FrameKind::QinQIpv4Udp:
        return "qinq_ipv4_udp";
    case FrameKind::Ipv6ExtUdp:
        return "ipv6_ext_udp";
    case FrameKind::Ipv4FragFirst:
        return "ipv4_frag_first";
    }
    return "?";
}

namespace detail {

inline void put16(std::vector<uint8_t>& f, uint16_t v) {
    f.push_back(static_cast<uint8_t>(v >> 8));
    f.push_back(static_cast<uint8_t>(v));
}

inline void put32(std::vector<uint8_t>& f, uint32_t v) {
    put16(f, static_cast<uint16_t>(v >> 16));
    put16(f, static_cast<uint16_t>(v));
}

inline void set16(std::vector<uint8_t>& f, size_t off, uint16_t v) {
    f[off] = static_cast<uint8_t>(v >> 8);
    f[off + 1] = static_cast<uint8_t>(v);
}

inline void ether(std::vector<uint8_t>& f, uint16_t type) {
    const uint8_t macs[12] = {0x02, 0, 0, 0, 0xff, 0x01, 0x02, 0, 0, 0, 0, 0x01};
    f.insert(f.end(), macs, macs + 12);
    put16(f, type);
}

// IPv4 header; returns the offset of the total-length field.
inline size_t ipv4(std::vector<uint8_t>& f, uint8_t proto, uint32_t src, uint32_t dst,
                   uint16_t frag = 0) {
    f.push_back(0x45);
    f.push_back(0);
    const size_t len_off = f.size();
    put16(f, 0);  // total length, fixed up at the end
    put16(f, 0x1234);
    put16(f, frag);
    f.push_back(64);
    f.push_back(proto);
    put16(f, 0);
    put32(f, src);
    put32(f, dst);
    return len_off;
}

inline size_t ipv6(std::vector<uint8_t>& f, uint8_t next, uint16_t host_lo, uint16_t host_hi) {
    put32(f, 0x60000000u);
    const size_t len_off = f.size();
    put16(f, 0);  // payload length, fixed up at the end
    f.push_back(next);
    f.push_back(64);
    const uint8_t pfx[14] = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0};
    f.insert(f.end(), pfx, pfx + 14);
    put16(f, host_lo);
    f.insert(f.end(), pfx, pfx + 14);
    put16(f, host_hi);
    return len_off;
}

inline void tcp(std::vector<uint8_t>& f, uint16_t sport, uint16_t dport, uint8_t flags,
                bool options) {
    put16(f, sport);
    put16(f, dport);
    put32(f, 0x10000000u);
    put32(f, flags & 0x10 ? 0x20000000u : 0);
    f.push_back(static_cast<uint8_t>((options ? 8 : 5) << 4));
    f.push_back(flags);
    put16(f, 64240);
    put16(f, 0);
    put16(f, 0);
    if (options) {  // NOP NOP timestamps (12 bytes)
        const uint8_t o[12] = {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2};
        f.insert(f.end(), o, o + 12);
    }
}

inline void udp(std::vector<uint8_t>& f, uint16_t sport, uint16_t dport, uint16_t payload) {
    put16(f, sport);
    put16(f, dport);
    put16(f, static_cast<uint16_t>(8 + payload));
    put16(f, 0);
}

} // namespace detail

// One frame of kind k; `i` varies addresses and ports so that frames of one kind differ.
inline std::vector<uint8_t> make_frame(FrameKind k, uint32_t i) {
    using namespace detail;
    std::vector<uint8_t> f;
    f.reserve(1600);
    const uint32_t cli = (198u << 24) | (18u << 16) | (i & 0xffffu);
    const uint32_t srv = (198u << 24) | (19u << 16) | (1 + (i % 250));
    const auto sport = static_cast<uint16_t>(32768 + (i % 28000));
    size_t l3 = 0;
    size_t len_off = 0;
    bool v6 = false;
    switch (k) {
    case FrameKind::Ipv4TcpSyn:
        ether(f, 0x0800);
        l3 = f.size();
        len_off = ipv4(f, 6, cli, srv);
        tcp(f, sport, 443, 0x02, false);
        break;
    case FrameKind::Ipv4UdpDns:
        ether(f, 0x0800);
        l3 = f.size();
        len_off = ipv4(f, 17, cli, srv);
        udp(f, sport, 53, 48);
        f.resize(f.size() + 48, 0x61);
        break;
    case FrameKind::Ipv4TcpData:
        ether(f, 0x0800);
        l3 = f.size();
        len_off = ipv4(f, 6, srv, cli);
        tcp(f, 443, sport, 0x18, true);
        f.resize(f.size() + 1448, 0x17);
        break;
    case FrameKind::Ipv6Tcp:
        ether(f, 0x86dd);
        l3 = f.size();
        len_off = ipv6(f, 6, static_cast<uint16_t>(i), 0x443);
        tcp(f, sport, 443, 0x18, true);
        f.resize(f.size() + 512, 0x17);
        v6 = true;
        break;
    case FrameKind::QinQIpv4Udp:
        ether(f, 0x88a8);
        put16(f, 300);
        put16(f, 0x8100);
        put16(f, 42);
        put16(f, 0x0800);
        l3 = f.size();
        len_off = ipv4(f, 17, cli, srv);
        udp(f, sport, 5000, 64);
        f.resize(f.size() + 64, 0x55);
        break;
    case FrameKind::Ipv6ExtUdp: {
        ether(f, 0x86dd);
        l3 = f.size();
        len_off = ipv6(f, 0, static_cast<uint16_t>(i), 0x53);
        const uint8_t hbh[8] = {60, 0, 5, 2, 0, 0, 1, 0};  // router alert, then dest opts
        f.insert(f.end(), hbh, hbh + 8);
        const uint8_t dst[8] = {17, 0, 1, 4, 0, 0, 0, 0};  // PadN, then UDP
        f.insert(f.end(), dst, dst + 8);
        udp(f, sport, 6000, 64);
        f.resize(f.size() + 64, 0x66);
        v6 = true;
        break;
    }
    case FrameKind::Ipv4FragFirst:
        ether(f, 0x0800);
        l3 = f.size();
        len_off = ipv4(f, 17, cli, srv, 0x2000);  // MF, offset 0
        udp(f, sport, 6020, 3000);                // the datagram goes on in later fragments
        f.resize(f.size() + 1472, 0x46);
        break;
    }
    if (v6) {
        set16(f, len_off, static_cast<uint16_t>(f.size() - l3 - 40));
    } else {
        set16(f, len_off, static_cast<uint16_t>(f.size() - l3));
    }
    if (f.size() < 60) {
        f.resize(60, 0);  // Ethernet minimum (padding after the datagram is normal)
    }
    return f;
}

} // namespace l7gate::perf
