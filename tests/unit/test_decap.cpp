// Unit tests for the parser's decapsulation (README "Tunnels"): every encapsulation ndpiReader
// 4.2 looks into and the ones l7gate adds, their optional fields, nesting, and truncated or
// garbled tunnel headers (never a crash: every prefix of every frame is parsed from a block
// of exactly its length; noted in tun_skip or reported as malformed).

#include <gtest/gtest.h>

// Designated initializers rely on default member initializers (see frame_builder.hpp).
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <cstdint>
#include <vector>

#include "dataplane/packet_parser.hpp"
#include "frame_builder.hpp"

namespace {

namespace dp = l7gate::dp;
using namespace l7gate::test;  // NOLINT(google-build-using-namespace): test-local helpers

using dp::Encap;
using dp::PacketKind;
using dp::PacketMeta;
using dp::TunSkip;

const Ip4 kInA = ip4(198, 18, 7, 1);
const Ip4 kInB = ip4(198, 18, 7, 2);

// The inner packet every test carries: TCP 198.18.7.1:40000 -> 198.18.7.2:443 with a payload.
Bytes inner_v4() { return ipv4({.src = kInA, .dst = kInB}, tcp({.sport = 40000, .dport = 443}, pattern(10))); }
Bytes inner_v6() { return ipv6({.src = kV6C, .dst = kV6B}, tcp({.sport = 40000, .dport = 443}, pattern(10))); }

uint32_t vlan_of(Encap e) { return static_cast<uint32_t>(e) << 24; }

// Checks that m is the inner IPv4 TCP flow carried by `e` at `l3`.
void expect_inner_v4(const PacketMeta& m, Encap e, size_t l3) {
    ASSERT_EQ(m.kind, PacketKind::Ip);
    EXPECT_EQ(m.encap, e);
    EXPECT_EQ(m.tun_skip, TunSkip::None);
    EXPECT_EQ(m.l3_offset, l3);
    EXPECT_EQ(m.ip_version, 4);
    EXPECT_EQ(m.l4_proto, 6);
    EXPECT_EQ(m.l4_offset, l3 + kIpv4Hdr);
    EXPECT_EQ(m.payload_length, 10);
    dp::FlowKey k = key_v4(kInA, 40000, kInB, 443, 6);
    k.vlan = vlan_of(e);
    EXPECT_EQ(m.key, k);
}

Bytes gre(uint16_t flags, uint16_t type, const Bytes& payload, uint32_t key = 0) {
    Bytes b;
    put16(b, flags);
    put16(b, type);
    if ((flags & 0x8000) != 0) {
        put32(b, 0);  // checksum + reserved
    }
    if ((flags & 0x2000) != 0) {
        put32(b, key);
    }
    if ((flags & 0x1000) != 0) {
        put32(b, 7);  // sequence
    }
    append(b, payload);
    return b;
}

Bytes vxlan(uint32_t vni, const Bytes& inner_frame, uint8_t flags = 0x08) {
    Bytes b{flags, 0, 0, 0};
    put32(b, vni << 8);
    append(b, inner_frame);
    return b;
}

// GTPv1-U T-PDU; `ext` (when non-empty) is a chain of extension headers, with the E flag.
Bytes gtpu(uint32_t teid, const Bytes& inner, uint8_t type = 0xff, bool seq = false, const Bytes& ext = {},
           uint8_t first_ext = 0) {
    const bool opt = seq || !ext.empty();
    Bytes b{static_cast<uint8_t>(0x30 | (seq ? 0x02 : 0) | (!ext.empty() ? 0x04 : 0)), type};
    put16(b, static_cast<uint16_t>((opt ? 4 : 0) + ext.size() + inner.size()));
    put32(b, teid);
    if (opt) {
        put16(b, 1);  // sequence
        put8(b, 0);   // N-PDU
        put8(b, ext.empty() ? 0 : first_ext);
    }
    append(b, ext);
    append(b, inner);
    return b;
}

// CAPWAP data with an 8-byte header (HLEN 2), an 802.11 data header, LLC/SNAP and the packet.
Bytes capwap(uint16_t ethertype, const Bytes& inner) {
    Bytes b{0x00, 0x10, 0x42, 0x20, 0, 0, 0, 0};  // preamble, HLEN 2 (<<3), RID/WBID 1, T
    append(b, pattern(24, 0x08));                  // 802.11 header
    append(b, Bytes{0xaa, 0xaa, 0x03, 0, 0, 0});  // LLC/SNAP
    put16(b, ethertype);
    append(b, inner);
    return b;
}

Bytes pppoe(uint16_t session, uint16_t ppp, const Bytes& payload) {
    Bytes b{0x11, 0x00};
    put16(b, session);
    put16(b, static_cast<uint16_t>(payload.size() + 2));
    put16(b, ppp);
    append(b, payload);
    return b;
}

Bytes mpls(std::vector<uint32_t> labels, const Bytes& payload) {
    Bytes b;
    for (size_t i = 0; i < labels.size(); ++i) {
        put32(b, labels[i] << 12 | (i + 1 == labels.size() ? 0x100u : 0u) | 64u);
    }
    append(b, payload);
    return b;
}

TEST(Decap, Ipv4InIpv4) {
    const Bytes f = ipv4_frame({.proto = 4}, inner_v4());
    PacketMeta m = parse(f);
    expect_inner_v4(m, Encap::IpInIp, kEthHdr + kIpv4Hdr);
    EXPECT_EQ(m.outer_version, 4);
    EXPECT_EQ(0, std::memcmp(m.outer_src, kV4A.data(), 4));
    EXPECT_EQ(0, std::memcmp(m.outer_dst, kV4B.data(), 4));
    EXPECT_EQ(m.encap_depth, 1);
}

TEST(Decap, Ipv6InIpv4Ipv6InIpv6AndIpv4InIpv6) {
    PacketMeta a = parse(ipv4_frame({.proto = 41}, inner_v6()));
    ASSERT_EQ(a.kind, PacketKind::Ip);
    EXPECT_EQ(a.encap, Encap::IpInIp);
    EXPECT_EQ(a.ip_version, 6);
    EXPECT_EQ(a.l3_offset, kEthHdr + kIpv4Hdr);
    dp::FlowKey k6 = key_v6(kV6B, 443, kV6C, 40000, 6);
    k6.vlan = vlan_of(Encap::IpInIp);
    EXPECT_EQ(a.key, k6);
    EXPECT_EQ(a.outer_version, 4);

    PacketMeta b = parse(ipv6_frame({.next_header = 41}, inner_v6()));
    ASSERT_EQ(b.kind, PacketKind::Ip);
    EXPECT_EQ(b.encap, Encap::IpInIp);
    EXPECT_EQ(b.key, k6);
    EXPECT_EQ(b.outer_version, 6);
    EXPECT_EQ(0, std::memcmp(b.outer_src, kV6A.data(), 16));

    expect_inner_v4(parse(ipv6_frame({.next_header = 4}, inner_v4())), Encap::IpInIp, kEthHdr + kIpv6Hdr);
}

TEST(Decap, GreWithEachOptionalField) {
    for (uint16_t flags : {0x0000, 0x8000, 0x2000, 0x1000, 0xb000}) {
        SCOPED_TRACE(flags);
        const Bytes g = gre(flags, 0x0800, inner_v4(), 0xabcdef01);
        const size_t h = g.size() - inner_v4().size();
        PacketMeta m = parse(ipv4_frame({.proto = 47}, g));
        expect_inner_v4(m, Encap::Gre, kEthHdr + kIpv4Hdr + h);
        EXPECT_EQ(m.tunnel_id, (flags & 0x2000) != 0 ? 0xabcdef01u : 0u);
    }
    PacketMeta v6 = parse(ipv6_frame({.next_header = 47}, gre(0x2000, 0x86dd, inner_v6(), 5)));
    ASSERT_EQ(v6.kind, PacketKind::Ip);
    EXPECT_EQ(v6.encap, Encap::Gre);
    EXPECT_EQ(v6.ip_version, 6);
    EXPECT_EQ(v6.tunnel_id, 5u);
}

TEST(Decap, GreTransparentEthernetBridging) {
    const Bytes g = gre(0x2000, 0x6558, ethernet(0x0800, inner_v4()), 9);
    expect_inner_v4(parse(ipv4_frame({.proto = 47}, g)), Encap::Gre, kEthHdr + kIpv4Hdr + 8 + kEthHdr);
}

TEST(Decap, GreNotLookedIntoIsTheCarriersFlowNoted) {
    struct Case {
        Bytes gre;
        TunSkip why;
    };
    const std::vector<Case> cases = {
        {gre(0x3001, 0x880b, pattern(20)), TunSkip::Unsupported},  // version 1 (PPTP)
        {gre(0x4000, 0x0800, inner_v4()), TunSkip::Unsupported},   // source routing
        {gre(0x0000, 0x880b, pattern(20)), TunSkip::Unsupported},  // PPP payload
        {gre(0x0000, 0x6558, ethernet(0x0806, pattern(28))), TunSkip::Unsupported},  // ARP inside
        {Bytes{0x00, 0x00}, TunSkip::Garbled},                       // truncated
        {Bytes{0x20, 0x00, 0x08, 0x00, 0x01}, TunSkip::Garbled},     // key beyond the packet
        {gre(0x0000, 0x0800, pattern(30, 0x15)), TunSkip::Garbled},  // not IPv4 inside
    };
    for (const Case& c : cases) {
        PacketMeta m = parse(ipv4_frame({.proto = 47}, c.gre));
        ASSERT_EQ(m.kind, PacketKind::Ip);
        EXPECT_EQ(m.encap, Encap::None);
        EXPECT_EQ(m.tun_skip, c.why);
        EXPECT_EQ(m.skip_encap, Encap::Gre);
        EXPECT_EQ(m.key, key_v4(kV4A, 0, kV4B, 0, 47));
    }
}

TEST(Decap, VxlanCarriesInnerEthernet) {
    const Bytes v = vxlan(0x123456, ethernet(0x0800, inner_v4()));
    PacketMeta m = parse(ipv4_frame({.proto = 17}, udp({.sport = 51000, .dport = 4789}, v)));
    expect_inner_v4(m, Encap::Vxlan, kEthHdr + kIpv4Hdr + kUdpHdr + 8 + kEthHdr);
    EXPECT_EQ(m.tunnel_id, 0x123456u);
    // Without the I flag the VNI is not valid: the UDP flow, noted.
    PacketMeta bad = parse(ipv4_frame({.proto = 17}, udp({.sport = 51000, .dport = 4789}, vxlan(1, ethernet(0x0800, inner_v4()), 0))));
    EXPECT_EQ(bad.encap, Encap::None);
    EXPECT_EQ(bad.tun_skip, TunSkip::Garbled);
    EXPECT_EQ(bad.key.proto, 17);
}

TEST(Decap, GtpUPlainWithSequenceAndExtensionHeaders) {
    const size_t base = kEthHdr + kIpv4Hdr + kUdpHdr;
    PacketMeta a = parse(ipv4_frame({.proto = 17}, udp({.sport = 2152, .dport = 2152}, gtpu(0x01020304, inner_v4()))));
    expect_inner_v4(a, Encap::GtpU, base + 8);
    EXPECT_EQ(a.tunnel_id, 0x01020304u);
    PacketMeta b = parse(ipv4_frame({.proto = 17}, udp({.sport = 2152, .dport = 2152}, gtpu(7, inner_v4(), 0xff, true))));
    expect_inner_v4(b, Encap::GtpU, base + 12);
    // Two extension headers: PDU session container (4 bytes), then an 8-byte one.
    const Bytes ext{1, 0x00, 0x05, 0x85, 2, 1, 2, 3, 4, 5, 6, 0};
    PacketMeta c = parse(ipv4_frame({.proto = 17}, udp({.sport = 2152, .dport = 2152}, gtpu(7, inner_v4(), 0xff, false, ext, 0x85))));
    expect_inner_v4(c, Encap::GtpU, base + 12 + ext.size());
    PacketMeta v6 = parse(ipv6_frame({.next_header = 17}, udp({.sport = 2152, .dport = 2152}, gtpu(9, inner_v6()))));
    ASSERT_EQ(v6.kind, PacketKind::Ip);
    EXPECT_EQ(v6.encap, Encap::GtpU);
    EXPECT_EQ(v6.ip_version, 6);
}

TEST(Decap, GtpUSignallingAndGarbledHeaders) {
    // An echo request is the tunnel's own traffic: the UDP flow, nothing noted.
    PacketMeta echo = parse(ipv4_frame({.proto = 17}, udp({.sport = 2152, .dport = 2152}, gtpu(0, pattern(4), 1))));
    ASSERT_EQ(echo.kind, PacketKind::Ip);
    EXPECT_EQ(echo.encap, Encap::None);
    EXPECT_EQ(echo.tun_skip, TunSkip::None);
    for (const Bytes& g : {Bytes{0x30, 0xff, 0, 0}, gtpu(7, inner_v4(), 0xff, false, Bytes{0, 1, 2, 0}, 0x85),
                           gtpu(7, inner_v4(), 0xff, false, Bytes{0xff, 1, 2, 0x85}, 0x85), Bytes{0x50, 0xff, 0, 0, 0, 0, 0, 0}}) {
        PacketMeta m = parse(ipv4_frame({.proto = 17}, udp({.sport = 2152, .dport = 2152}, g)));
        ASSERT_EQ(m.kind, PacketKind::Ip);
        EXPECT_EQ(m.encap, Encap::None);
        EXPECT_EQ(m.tun_skip, TunSkip::Garbled);
        EXPECT_EQ(m.key.proto, 17);
    }
}

TEST(Decap, CapwapDataAsNdpiReaderReadsIt) {
    PacketMeta m = parse(ipv4_frame({.proto = 17}, udp({.sport = 12380, .dport = 5247}, capwap(0x0800, inner_v4()))));
    expect_inner_v4(m, Encap::Capwap, kEthHdr + kIpv4Hdr + kUdpHdr + 8 + 24 + 8);
    // A keep-alive (no 802.11 frame with an IP EtherType): the CAPWAP flow.
    PacketMeta k = parse(ipv4_frame({.proto = 17}, udp({.sport = 12380, .dport = 5247}, capwap(0x888e, pattern(20)))));
    EXPECT_EQ(k.encap, Encap::None);
    EXPECT_EQ(k.key.port[0] == 5247 || k.key.port[1] == 5247, true);
}

TEST(Decap, PppoeSessionIpv4AndIpv6) {
    PacketMeta m = parse(ethernet(0x8864, pppoe(0x1234, 0x0021, inner_v4())));
    expect_inner_v4(m, Encap::Pppoe, kEthHdr + 8);
    EXPECT_EQ(m.tunnel_id, 0x1234u);
    EXPECT_EQ(m.outer_version, 0);
    PacketMeta v6 = parse(pad_to(ethernet(0x8864, pppoe(1, 0x0057, inner_v6()))));
    ASSERT_EQ(v6.kind, PacketKind::Ip);
    EXPECT_EQ(v6.encap, Encap::Pppoe);
    // LCP is PPP's own: non-IP, nothing noted; a bad version/type is garbled.
    PacketMeta lcp = parse(pad_to(ethernet(0x8864, pppoe(1, 0xc021, pattern(10)))));
    EXPECT_EQ(lcp.kind, PacketKind::NonIp);
    EXPECT_EQ(lcp.tun_skip, TunSkip::None);
    Bytes bad = pppoe(1, 0x0021, inner_v4());
    bad[0] = 0x22;
    PacketMeta g = parse(ethernet(0x8864, bad));
    EXPECT_EQ(g.kind, PacketKind::NonIp);
    EXPECT_EQ(g.tun_skip, TunSkip::Garbled);
}

TEST(Decap, MplsLabelStacks) {
    PacketMeta one = parse(ethernet(0x8847, mpls({100}, inner_v4())));
    expect_inner_v4(one, Encap::Mpls, kEthHdr + 4);
    EXPECT_EQ(one.tunnel_id, 100u);
    PacketMeta three = parse(ethernet(0x8848, mpls({16, 17, 300}, inner_v4())));
    expect_inner_v4(three, Encap::Mpls, kEthHdr + 12);
    EXPECT_EQ(three.tunnel_id, 300u);
    PacketMeta v6 = parse(ethernet(0x8847, mpls({5, 6}, inner_v6())));
    EXPECT_EQ(v6.encap, Encap::Mpls);
    EXPECT_EQ(v6.ip_version, 6);
    // More labels than kMaxMplsLabels, or a pseudowire (control word): non-IP, noted.
    PacketMeta deep = parse(ethernet(0x8847, mpls(std::vector<uint32_t>(dp::kMaxMplsLabels + 1, 3), inner_v4())));
    EXPECT_EQ(deep.kind, PacketKind::NonIp);
    EXPECT_EQ(deep.tun_skip, TunSkip::Unsupported);
    EXPECT_EQ(deep.skip_encap, Encap::Mpls);
    PacketMeta pw = parse(ethernet(0x8847, mpls({5}, cat({Bytes{0, 0, 0, 0}, ethernet(0x0800, inner_v4())}))));
    EXPECT_EQ(pw.kind, PacketKind::NonIp);
    EXPECT_EQ(pw.tun_skip, TunSkip::Unsupported);
}

TEST(Decap, NestingBeyondTheBoundIsTooDeep) {
    // GTP-U inside GRE: two layers, looked into.
    const Bytes gtp = ipv4({.src = kV4C, .dst = kV4B, .proto = 17}, udp({.sport = 2152, .dport = 2152}, gtpu(3, inner_v4())));
    PacketMeta two = parse(ipv4_frame({.proto = 47}, gre(0, 0x0800, gtp)));
    ASSERT_EQ(two.kind, PacketKind::Ip);
    EXPECT_EQ(two.encap, Encap::GtpU);
    EXPECT_EQ(two.encap_depth, 2);
    EXPECT_EQ(two.key.vlan, vlan_of(Encap::GtpU));
    EXPECT_EQ(0, std::memcmp(two.outer_src, kV4C.data(), 4));  // the innermost carrier's
    // Three IP-in-IP layers: the second layer's packet (itself a carrier) is the flow, noted.
    const Bytes l2 = ipv4({.src = kV4C, .dst = kV4A, .proto = 4}, inner_v4());
    const Bytes l1 = ipv4({.src = kV4B, .dst = kV4C, .proto = 4}, l2);
    PacketMeta three = parse(ipv4_frame({.proto = 4}, l1));
    ASSERT_EQ(three.kind, PacketKind::Ip);
    EXPECT_EQ(three.encap_depth, dp::kMaxEncapDepth);
    EXPECT_EQ(three.tun_skip, TunSkip::TooDeep);
    EXPECT_EQ(three.key.proto, 4);
    dp::FlowKey k = key_v4(kV4A, 0, kV4C, 0, 4);
    k.vlan = vlan_of(Encap::IpInIp);
    EXPECT_EQ(three.key, k);
}

TEST(Decap, OuterFragmentsAreTheCarriersFlowNoted) {
    PacketMeta m = parse(ipv4_frame({.proto = 4, .mf = true}, inner_v4()));
    ASSERT_EQ(m.kind, PacketKind::Ip);
    EXPECT_EQ(m.encap, Encap::None);
    EXPECT_EQ(m.tun_skip, TunSkip::OuterFragment);
    EXPECT_EQ(m.skip_encap, Encap::IpInIp);
}

TEST(Decap, MalformedInnerPacketIsMalformed) {
    Bytes in = inner_v4();
    in[3] = 200;  // total length beyond the carrier's payload
    PacketMeta m = parse(ipv4_frame({.proto = 4}, in));
    EXPECT_EQ(m.kind, PacketKind::Malformed);
    EXPECT_EQ(m.error, dp::DropReason::Ipv4BadLength);
    EXPECT_EQ(m.encap, Encap::IpInIp);
}

TEST(Decap, DisabledEncapsulationsAreNotLookedInto) {
    const Bytes f = ipv4_frame({.proto = 17}, udp({.sport = 2152, .dport = 2152}, gtpu(1, inner_v4())));
    auto buf = f;
    PacketMeta m{};
    m.no_decap = static_cast<uint8_t>(~dp::kDecapNdpiReader & dp::kDecapAll);
    dp::parse_packet(buf.data(), static_cast<uint32_t>(buf.size()), m);
    ASSERT_EQ(m.kind, PacketKind::Ip);
    EXPECT_EQ(m.encap, Encap::None);
    EXPECT_EQ(m.tun_skip, TunSkip::Unsupported);
    EXPECT_EQ(m.key.proto, 17);
    m.no_decap = dp::kDecapAll;
    const Bytes p = ethernet(0x8864, pppoe(1, 0x0021, inner_v4()));
    dp::parse_packet(p.data(), static_cast<uint32_t>(p.size()), m);
    EXPECT_EQ(m.kind, PacketKind::NonIp);
    EXPECT_EQ(m.tun_skip, TunSkip::Unsupported);
}

TEST(Decap, EveryPrefixOfEveryEncapsulationIsSafe) {
    const std::vector<Bytes> frames = {
        ipv4_frame({.proto = 4}, inner_v4()),
        ipv6_frame({.next_header = 41}, inner_v6()),
        ipv4_frame({.proto = 47}, gre(0xb000, 0x0800, inner_v4(), 1)),
        ipv4_frame({.proto = 47}, gre(0x2000, 0x6558, ethernet(0x0800, inner_v4()), 1)),
        ipv4_frame({.proto = 17}, udp({.sport = 1, .dport = 4789}, vxlan(1, ethernet(0x0800, inner_v4())))),
        ipv4_frame({.proto = 17}, udp({.sport = 2152, .dport = 2152}, gtpu(7, inner_v4(), 0xff, false, Bytes{1, 0, 5, 0}, 0x85))),
        ipv4_frame({.proto = 17}, udp({.sport = 1, .dport = 5247}, capwap(0x0800, inner_v4()))),
        ethernet(0x8864, pppoe(1, 0x0021, inner_v4())),
        ethernet(0x8847, mpls({1, 2}, inner_v4())),
    };
    for (const Bytes& f : frames) {
        for (size_t n = 0; n <= f.size(); ++n) {
            PacketMeta m = parse_prefix(f, n);
            // A whole frame is looked into; any shorter one is malformed or non-IP (the
            // carrier's lengths no longer fit) or the carrier noted garbled: never the inner
            // flow with lengths beyond the bytes.
            if (m.kind == PacketKind::Ip) {
                EXPECT_LE(m.payload_offset + m.payload_length, n) << n;
            }
        }
        const PacketMeta whole = parse(f);
        EXPECT_EQ(whole.kind, PacketKind::Ip);
        EXPECT_NE(whole.encap, Encap::None);
        EXPECT_EQ(whole.tun_skip, TunSkip::None);
    }
}

}  // namespace
