// Unit tests for dp::parse_packet over hand-built frames (see frame_builder.hpp).
//
// Every frame is parsed from a heap block of exactly its length, so a build with
// AddressSanitizer turns any read past `len` into a failure.

#include <gtest/gtest.h>

// Designated initializers rely on default member initializers (see frame_builder.hpp).
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/drop_reason.hpp"
#include "dataplane/flow_key.hpp"
#include "dataplane/packet_parser.hpp"
#include "frame_builder.hpp"

namespace {

namespace dp = l7gate::dp;
using namespace l7gate::test; // NOLINT(google-build-using-namespace): test-local helpers

using dp::DropReason;
using dp::PacketKind;
using dp::PacketMeta;

constexpr uint16_t kEthV4L3 = kEthHdr;                   // untagged l3_offset
constexpr uint16_t kEthV4L4 = kEthHdr + kIpv4Hdr;        // untagged IPv4 l4_offset
constexpr uint16_t kEthV6L4 = kEthHdr + kIpv6Hdr;        // untagged IPv6 l4_offset

const char* kind_name(PacketKind k) {
    switch (k) {
    case PacketKind::NonIp:
        return "NonIp";
    case PacketKind::Ip:
        return "Ip";
    case PacketKind::Malformed:
        return "Malformed";
    }
    return "invalid PacketKind";
}

std::string describe(const PacketMeta& m) {
    return std::string("kind ") + kind_name(m.kind) + ", error " +
           std::string(dp::drop_reason_name(m.error));
}

::testing::AssertionResult IsMalformed(const PacketMeta& m, DropReason why) {
    if (m.kind == PacketKind::Malformed && m.error == why) {
        return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "got " << describe(m) << ", expected kind Malformed, "
                                         << "error " << dp::drop_reason_name(why);
}

::testing::AssertionResult IsIp(const PacketMeta& m) {
    if (m.kind == PacketKind::Ip && m.error == DropReason::None) {
        return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "got " << describe(m) << ", expected kind Ip, "
                                         << "error none";
}

::testing::AssertionResult IsNonIp(const PacketMeta& m) {
    if (m.kind == PacketKind::NonIp && m.error == DropReason::None) {
        return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "got " << describe(m) << ", expected kind NonIp, "
                                         << "error none";
}

// Properties every parse result must have, whatever the input.
::testing::AssertionResult HoldsInvariants(const PacketMeta& m, size_t len) {
    auto fail = [&]() {
        return ::testing::AssertionFailure() << "len " << len << ", " << describe(m) << ": ";
    };
    switch (m.kind) {
    case PacketKind::NonIp:
        if (m.error != DropReason::None) {
            return fail() << "NonIp with an error";
        }
        return ::testing::AssertionSuccess();
    case PacketKind::Malformed:
        if (!dp::is_malformed(m.error)) {
            return fail() << "Malformed without a malformed-class error";
        }
        return ::testing::AssertionSuccess();
    case PacketKind::Ip:
        break;
    default:
        return fail() << "kind is not Ip, NonIp or Malformed";
    }
    if (m.error != DropReason::None) {
        return fail() << "Ip with an error";
    }
    if (m.ip_version != 4 && m.ip_version != 6) {
        return fail() << "ip_version " << unsigned{m.ip_version};
    }
    if (m.vlan_count > dp::kMaxVlanTags) {
        return fail() << "vlan_count " << unsigned{m.vlan_count};
    }
    if (m.l3_offset != kEthHdr + kVlanHdr * m.vlan_count) {
        return fail() << "l3_offset " << m.l3_offset << " with " << unsigned{m.vlan_count}
                      << " tags";
    }
    const size_t l3_end = size_t{m.l3_offset} + m.l3_length;
    if (l3_end > len) {
        return fail() << "l3 ends at " << l3_end;
    }
    if (m.l4_offset != 0 && (m.l4_offset <= m.l3_offset || m.l4_offset > l3_end)) {
        return fail() << "l4_offset " << m.l4_offset << " outside the datagram";
    }
    if (m.payload_length != 0 &&
        (m.payload_offset < m.l4_offset || size_t{m.payload_offset} + m.payload_length > l3_end)) {
        return fail() << "payload " << m.payload_offset << "+" << m.payload_length
                      << " outside the datagram";
    }
    if (m.key.ip_version != m.ip_version || m.key.proto != m.l4_proto || m.key.tunnel != 0) {
        return fail() << "key version/proto/pad disagree with the metadata";
    }
    if (m.ip_version == 4) {
        for (int slot = 0; slot < 2; ++slot) {
            for (size_t i = 4; i < 16; ++i) {
                if (m.key.addr[slot][i] != 0) {
                    return fail() << "IPv4 key address byte " << i << " not zero";
                }
            }
        }
    }
    return ::testing::AssertionSuccess();
}

Bytes tcp_v4_frame(const Ip4& src, uint16_t sport, const Ip4& dst, uint16_t dport) {
    return ipv4_frame({.src = src, .dst = dst}, tcp({.sport = sport, .dport = dport}));
}

Bytes tcp_v6_frame(const Ip6& src, uint16_t sport, const Ip6& dst, uint16_t dport) {
    return ipv6_frame({.src = src, .dst = dst}, tcp({.sport = sport, .dport = dport}));
}

// ===== Ethernet and VLAN ====================================================================

TEST(PacketParser, ArpIsNonIp) {
    Bytes f = arp_frame();
    PacketMeta m = parse(f);
    EXPECT_TRUE(IsNonIp(m));
    EXPECT_EQ(m.ethertype, ether::kArp);
    EXPECT_EQ(m.ip_version, 0);
    EXPECT_EQ(m.vlan_count, 0);
}

TEST(PacketParser, LldpAndUnknownEtherTypesAreNonIp) {
    for (uint16_t et : {ether::kLldp, ether::kMpls, ether::kLocalExperimental, uint16_t{0x0842},
                        uint16_t{0x88e5}, uint16_t{0xffff}}) {
        SCOPED_TRACE(et);
        Bytes f = pad_to(ethernet(et, pattern(46)));
        PacketMeta m = parse(f);
        EXPECT_TRUE(IsNonIp(m));
        EXPECT_EQ(m.ethertype, et);
        EXPECT_EQ(m.ip_version, 0);
    }
}

TEST(PacketParser, FrameShorterThanEthernetHeaderIsL2Truncated) {
    Bytes f = tcp_v4_frame(kV4A, 40000, kV4B, 80);
    for (size_t len = 0; len < kEthHdr; ++len) {
        SCOPED_TRACE(len);
        EXPECT_TRUE(IsMalformed(parse_prefix(f, len), DropReason::L2Truncated));
    }
}

TEST(PacketParser, UntaggedFrameHasNoVlan) {
    PacketMeta m = parse(tcp_v4_frame(kV4A, 40000, kV4B, 80));
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.vlan_count, 0);
    EXPECT_EQ(m.key.vlan, 0u);
    EXPECT_EQ(m.l3_offset, kEthV4L3);
    EXPECT_EQ(m.ethertype, ether::kIpv4);
}

TEST(PacketParser, SingleVlanTagWithEachTpid) {
    for (uint16_t tpid : {ether::kVlan, ether::kQinQ, ether::kVlan9100}) {
        SCOPED_TRACE(tpid);
        Bytes f = ipv4_frame({}, tcp({}), {{.tpid = tpid, .vid = 100}});
        PacketMeta m = parse(f);
        ASSERT_TRUE(IsIp(m));
        EXPECT_EQ(m.vlan_count, 1);
        EXPECT_EQ(m.key.vlan, 100u);
        EXPECT_EQ(m.l3_offset, kEthHdr + kVlanHdr);
        EXPECT_EQ(m.l4_offset, kEthHdr + kVlanHdr + kIpv4Hdr);
        EXPECT_EQ(m.ethertype, ether::kIpv4);
        EXPECT_EQ(m.key.port[0], 40000);
        EXPECT_EQ(m.key.port[1], 80);
    }
}

TEST(PacketParser, VlanPriorityAndDeiBitsAreNotPartOfTheVid) {
    Bytes f =
        ipv4_frame({}, tcp({}), {{.tpid = ether::kVlan, .vid = 0xabc, .pcp = 7, .dei = true}});
    PacketMeta m = parse(f);
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.key.vlan, 0xabcu);

    Bytes q = ipv4_frame({}, tcp({}),
                         {{.tpid = ether::kQinQ, .vid = 0x123, .pcp = 5, .dei = true},
                          {.tpid = ether::kVlan, .vid = 0x456, .pcp = 3, .dei = true}});
    PacketMeta mq = parse(q);
    ASSERT_TRUE(IsIp(mq));
    EXPECT_EQ(mq.key.vlan, 0x123456u);
}

TEST(PacketParser, QinQCombinesOuterAndInnerVid) {
    Bytes f = ipv4_frame({}, tcp({}),
                         {{.tpid = ether::kQinQ, .vid = 100}, {.tpid = ether::kVlan, .vid = 200}});
    PacketMeta m = parse(f);
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.vlan_count, 2);
    EXPECT_EQ(m.key.vlan, (100u << 12) | 200u);
    EXPECT_EQ(m.l3_offset, kEthHdr + 2 * kVlanHdr);
    EXPECT_EQ(m.l4_offset, kEthHdr + 2 * kVlanHdr + kIpv4Hdr);
    EXPECT_EQ(m.ethertype, ether::kIpv4);
    EXPECT_EQ(m.key.port[0], 40000);
    EXPECT_EQ(m.key.port[1], 80);
}

TEST(PacketParser, QinQWithEveryTpidCombinationAndMaximalVids) {
    const uint16_t tpids[] = {ether::kVlan, ether::kQinQ, ether::kVlan9100};
    for (uint16_t outer : tpids) {
        for (uint16_t inner : tpids) {
            SCOPED_TRACE(std::to_string(outer) + "/" + std::to_string(inner));
            Bytes f = ipv6_frame({.next_header = ipproto::kUdp}, udp({}, pattern(12)),
                                 {{.tpid = outer, .vid = 4095}, {.tpid = inner, .vid = 1}});
            PacketMeta m = parse(f);
            ASSERT_TRUE(IsIp(m));
            EXPECT_EQ(m.vlan_count, 2);
            EXPECT_EQ(m.key.vlan, (4095u << 12) | 1u);
            EXPECT_EQ(m.ethertype, ether::kIpv6);
            EXPECT_EQ(m.ip_version, 6);
            EXPECT_EQ(m.l3_offset, kEthHdr + 2 * kVlanHdr);
        }
    }
}

TEST(PacketParser, ThreeVlanTagsAreTooDeep) {
    Bytes f = ipv4_frame({}, tcp({}),
                         {{.tpid = ether::kQinQ, .vid = 1},
                          {.tpid = ether::kVlan, .vid = 2},
                          {.tpid = ether::kVlan, .vid = 3}});
    EXPECT_TRUE(IsMalformed(parse(f), DropReason::VlanTooDeep));

    Bytes g = arp_frame({{.tpid = ether::kVlan9100, .vid = 1},
                         {.tpid = ether::kQinQ, .vid = 2},
                         {.tpid = ether::kVlan, .vid = 3}});
    EXPECT_TRUE(IsMalformed(parse(g), DropReason::VlanTooDeep));
}

TEST(PacketParser, TruncatedVlanTagIsL2Truncated) {
    // One tag: the frame ends inside the TCI or before the inner EtherType.
    Bytes one = ipv4_frame({}, tcp({}), {{.tpid = ether::kVlan, .vid = 10}});
    for (size_t len = kEthHdr; len < kEthHdr + kVlanHdr; ++len) {
        SCOPED_TRACE(len);
        EXPECT_TRUE(IsMalformed(parse_prefix(one, len), DropReason::L2Truncated));
    }
    // Two tags: the second one is cut short.
    Bytes two = ipv4_frame({}, tcp({}),
                           {{.tpid = ether::kQinQ, .vid = 10}, {.tpid = ether::kVlan, .vid = 20}});
    for (size_t len = kEthHdr; len < kEthHdr + 2 * kVlanHdr; ++len) {
        SCOPED_TRACE(len);
        EXPECT_TRUE(IsMalformed(parse_prefix(two, len), DropReason::L2Truncated));
    }
}

TEST(PacketParser, NonIpInsideVlanIsNonIp) {
    PacketMeta m = parse(arp_frame({{.tpid = ether::kVlan, .vid = 7}}));
    EXPECT_TRUE(IsNonIp(m));
    EXPECT_EQ(m.ethertype, ether::kArp);
    EXPECT_EQ(m.vlan_count, 1);

    PacketMeta q = parse(pad_to(ethernet(ether::kLldp, pattern(40),
                                         {{.tpid = ether::kQinQ, .vid = 7},
                                          {.tpid = ether::kVlan, .vid = 8}})));
    EXPECT_TRUE(IsNonIp(q));
    EXPECT_EQ(q.ethertype, ether::kLldp);
    EXPECT_EQ(q.vlan_count, 2);
}

// ===== IPv4 =================================================================================

TEST(PacketParser, Ipv4TcpSynFillsAllFields) {
    Bytes f = ipv4_frame({.src = kV4A, .dst = kV4B, .proto = ipproto::kTcp},
                         tcp({.sport = 40000, .dport = 443, .seq = 0x11223344, .ack = 0,
                              .flags = dp::tcp_flag::kSyn}));
    ASSERT_EQ(f.size(), 54u);
    PacketMeta m = parse(f);
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.ip_version, 4);
    EXPECT_EQ(m.l4_proto, ipproto::kTcp);
    EXPECT_EQ(m.ethertype, ether::kIpv4);
    EXPECT_EQ(m.l3_offset, kEthV4L3);
    EXPECT_EQ(m.l3_length, 40);
    EXPECT_EQ(m.l4_offset, kEthV4L4);
    EXPECT_EQ(m.payload_length, 0);
    EXPECT_EQ(m.tcp_flags, dp::tcp_flag::kSyn);
    EXPECT_EQ(m.tcp_seq, 0x11223344u);
    EXPECT_EQ(m.tcp_ack, 0u);
    EXPECT_EQ(m.is_fragment, 0);
    EXPECT_EQ(m.vlan_count, 0);
    EXPECT_EQ(m.reversed, 0);
    EXPECT_EQ(m.key, key_v4(kV4A, 40000, kV4B, 443, ipproto::kTcp));
}

TEST(PacketParser, Ipv4HeaderShorterThan20BytesIsIpv4Truncated) {
    Bytes f = tcp_v4_frame(kV4A, 40000, kV4B, 80);
    for (size_t len = kEthHdr; len < kEthHdr + kIpv4Hdr; ++len) {
        SCOPED_TRACE(len);
        EXPECT_TRUE(IsMalformed(parse_prefix(f, len), DropReason::Ipv4Truncated));
    }
    // Same behind a VLAN tag.
    Bytes v = ipv4_frame({}, tcp({}), {{.tpid = ether::kVlan, .vid = 5}});
    EXPECT_TRUE(IsMalformed(parse_prefix(v, kEthHdr + kVlanHdr + 19), DropReason::Ipv4Truncated));
}

TEST(PacketParser, Ipv4VersionOtherThan4IsBadVersion) {
    for (uint8_t version : {0, 1, 5, 6, 15}) {
        SCOPED_TRACE(unsigned{version});
        Bytes f = ipv4_frame({.version = version}, tcp({}));
        EXPECT_TRUE(IsMalformed(parse(f), DropReason::Ipv4BadVersion));
    }
    // A well-formed IPv6 packet behind EtherType 0x0800.
    Bytes v6 = ethernet(ether::kIpv4, ipv6({}, tcp({})));
    EXPECT_TRUE(IsMalformed(parse(v6), DropReason::Ipv4BadVersion));
}

TEST(PacketParser, Ipv4IhlBelowFiveIsBadIhl) {
    for (uint8_t ihl = 0; ihl < 5; ++ihl) {
        SCOPED_TRACE(unsigned{ihl});
        Bytes f = ipv4_frame({.ihl = ihl}, tcp({}));
        EXPECT_TRUE(IsMalformed(parse(f), DropReason::Ipv4BadIhl));
    }
}

TEST(PacketParser, Ipv4IhlBeyondFrameIsBadIhl) {
    // IHL 15 (60 bytes) and total length 60, but only 40 IP bytes in the frame.
    Bytes f = ipv4_frame({.ihl = 15, .total_length = 60}, tcp({}));
    ASSERT_EQ(f.size(), kEthHdr + 40);
    EXPECT_TRUE(IsMalformed(parse(f), DropReason::Ipv4BadIhl));

    // IHL 6 with only the 20-byte base header present.
    Bytes g = ipv4_frame({.ihl = 6, .total_length = 24}, {});
    ASSERT_EQ(g.size(), kEthHdr + kIpv4Hdr);
    EXPECT_TRUE(IsMalformed(parse(g), DropReason::Ipv4BadIhl));
}

TEST(PacketParser, Ipv4TotalLengthBelowHeaderIsBadLength) {
    for (uint16_t total : {0, 1, 19}) {
        SCOPED_TRACE(total);
        Bytes f = ipv4_frame({.total_length = total}, tcp({}));
        EXPECT_TRUE(IsMalformed(parse(f), DropReason::Ipv4BadLength));
    }
    // 24-byte header (one option word) but total length 20.
    Bytes g = ipv4_frame({.options = {0x94, 0x04, 0x00, 0x00}, .total_length = 20}, tcp({}));
    EXPECT_TRUE(IsMalformed(parse(g), DropReason::Ipv4BadLength));
}

TEST(PacketParser, Ipv4TotalLengthBeyondFrameIsBadLength) {
    Bytes f = ipv4_frame({.total_length = kIpv4Hdr + kTcpHdr + 1}, tcp({}));
    EXPECT_TRUE(IsMalformed(parse(f), DropReason::Ipv4BadLength));

    Bytes g = ipv4_frame({.total_length = 0xffff}, tcp({}, pattern(100)));
    EXPECT_TRUE(IsMalformed(parse(g), DropReason::Ipv4BadLength));

    // A datagram cut by the capture: one byte missing.
    Bytes h = tcp_v4_frame(kV4A, 1, kV4B, 2);
    EXPECT_TRUE(IsMalformed(parse_prefix(h, h.size() - 1), DropReason::Ipv4BadLength));
}

TEST(PacketParser, Ipv4EthernetPaddingIsValidAndExcludedFromLengths) {
    // 14 + 20 + 8 + 4 = 46 bytes, padded to 60.
    Bytes f = pad_to(ipv4_frame({.proto = ipproto::kUdp}, udp({}, text("ping"))));
    ASSERT_EQ(f.size(), kEthMinFrame);
    PacketMeta m = parse(f);
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.l3_length, 32);
    EXPECT_EQ(m.payload_offset, kEthV4L4 + kUdpHdr);
    EXPECT_EQ(m.payload_length, 4);

    // A bare TCP ACK (54 bytes) padded to 60: no payload.
    Bytes a = pad_to(ipv4_frame({}, tcp({.seq = 5, .ack = 6, .flags = dp::tcp_flag::kAck})));
    ASSERT_EQ(a.size(), kEthMinFrame);
    PacketMeta ma = parse(a);
    ASSERT_TRUE(IsIp(ma));
    EXPECT_EQ(ma.l3_length, 40);
    EXPECT_EQ(ma.payload_length, 0);
    EXPECT_EQ(ma.tcp_flags, dp::tcp_flag::kAck);

    // Non-zero trailer bytes (e.g. a trailer some switches append) are ignored as well.
    Bytes t = ipv4_frame({}, tcp({}, text("abc")));
    append(t, pattern(9));
    PacketMeta mt = parse(t);
    ASSERT_TRUE(IsIp(mt));
    EXPECT_EQ(mt.l3_length, kIpv4Hdr + kTcpHdr + 3);
    EXPECT_EQ(mt.payload_length, 3);
}

TEST(PacketParser, Ipv4OptionsAreSkipped) {
    // Router alert (4 bytes): IHL 6.
    Bytes f = ipv4_frame({.proto = ipproto::kUdp, .options = {0x94, 0x04, 0x00, 0x00}},
                         udp({.sport = 1234, .dport = 5678}, text("hello")));
    PacketMeta m = parse(f);
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.l4_offset, kEthHdr + 24);
    EXPECT_EQ(m.l3_length, 24 + kUdpHdr + 5);
    EXPECT_EQ(m.payload_offset, kEthHdr + 24 + kUdpHdr);
    EXPECT_EQ(m.payload_length, 5);
    EXPECT_EQ(m.key, key_v4(kV4A, 1234, kV4B, 5678, ipproto::kUdp));

    // Maximal header: 40 bytes of options (NOPs, then end of list), IHL 15.
    Bytes opts(40, 0x01);
    opts[39] = 0x00;
    Bytes g = ipv4_frame({.options = opts}, tcp({.sport = 2222, .dport = 3333}, text("xy")));
    PacketMeta mg = parse(g);
    ASSERT_TRUE(IsIp(mg));
    EXPECT_EQ(mg.l4_offset, kEthHdr + 60);
    EXPECT_EQ(mg.payload_offset, kEthHdr + 60 + kTcpHdr);
    EXPECT_EQ(mg.payload_length, 2);
    EXPECT_EQ(mg.key, key_v4(kV4A, 2222, kV4B, 3333, ipproto::kTcp));
}

// ===== IPv4 fragments =======================================================================

TEST(PacketParser, Ipv4FirstFragmentCarriesL4) {
    Bytes f = ipv4_frame({.proto = ipproto::kTcp, .id = 0xbeef, .mf = true},
                         tcp({.sport = 40001, .dport = 80, .flags = dp::tcp_flag::kAck},
                             pattern(1000)));
    PacketMeta m = parse(f);
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.is_fragment, 1);
    EXPECT_EQ(m.first_fragment, 1);
    EXPECT_EQ(m.frag_id, 0xbeefu);
    EXPECT_EQ(m.l4_offset, kEthV4L4);
    EXPECT_EQ(m.l4_proto, ipproto::kTcp);
    EXPECT_EQ(m.tcp_flags, dp::tcp_flag::kAck);
    EXPECT_EQ(m.payload_offset, kEthV4L4 + kTcpHdr);
    EXPECT_EQ(m.payload_length, 1000);
    EXPECT_EQ(m.key, key_v4(kV4A, 40001, kV4B, 80, ipproto::kTcp));
}

TEST(PacketParser, Ipv4NonFirstFragmentHasNoL4) {
    // Last fragment (offset 1480 bytes, MF clear) behind a VLAN tag; its payload is not a UDP
    // header and must not be read as one.
    Bytes f = ipv4_frame({.src = kV4B, .dst = kV4A, .proto = ipproto::kUdp, .id = 0x1357,
                          .frag_offset = 185},
                         pattern(100, 0xc3), {{.tpid = ether::kVlan, .vid = 42}});
    PacketMeta m = parse(f);
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.is_fragment, 1);
    EXPECT_EQ(m.first_fragment, 0);
    EXPECT_EQ(m.frag_id, 0x1357u);
    EXPECT_EQ(m.l4_offset, 0);
    EXPECT_EQ(m.l4_proto, ipproto::kUdp);
    EXPECT_EQ(m.ip_version, 4);
    EXPECT_EQ(m.l3_length, kIpv4Hdr + 100);
    // Addresses, protocol and VLAN are keyed; ports are 0. Source B sorts above A.
    EXPECT_EQ(m.key, key_v4(kV4A, 0, kV4B, 0, ipproto::kUdp, 42));
    EXPECT_EQ(m.reversed, 1);
}

TEST(PacketParser, Ipv4MiddleFragmentHasNoL4) {
    Bytes f = ipv4_frame({.proto = ipproto::kTcp, .id = 7, .mf = true, .frag_offset = 1},
                         pattern(64));
    PacketMeta m = parse(f);
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.is_fragment, 1);
    EXPECT_EQ(m.first_fragment, 0);
    EXPECT_EQ(m.frag_id, 7u);
    EXPECT_EQ(m.l4_offset, 0);
    EXPECT_EQ(m.key, key_v4(kV4A, 0, kV4B, 0, ipproto::kTcp));
}

TEST(PacketParser, Ipv4NonFirstFragmentShorterThanAnL4HeaderIsValid) {
    // A 1-byte last fragment: nothing to parse at L4, so nothing can be truncated.
    Bytes f = ipv4_frame({.proto = ipproto::kTcp, .frag_offset = 3}, Bytes{0x42});
    PacketMeta m = parse(pad_to(f));
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.is_fragment, 1);
    EXPECT_EQ(m.first_fragment, 0);
    EXPECT_EQ(m.l3_length, kIpv4Hdr + 1);
}

TEST(PacketParser, Ipv4DontFragmentIsNotAFragment) {
    Bytes f = ipv4_frame({.df = true}, tcp({}));
    PacketMeta m = parse(f);
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.is_fragment, 0);
    EXPECT_EQ(m.l4_offset, kEthV4L4);
}

TEST(PacketParser, Ipv4FragmentEndingBeyond65535IsBadFragment) {
    // Offset 8191 * 8 = 65528, plus 16 data bytes ends at 65544.
    Bytes f = ipv4_frame({.proto = ipproto::kUdp, .frag_offset = 8191}, pattern(16));
    EXPECT_TRUE(IsMalformed(parse(f), DropReason::Ipv4BadFragment));
    // Same with MF set.
    Bytes g = ipv4_frame({.proto = ipproto::kUdp, .mf = true, .frag_offset = 8190}, pattern(24));
    EXPECT_TRUE(IsMalformed(parse(g), DropReason::Ipv4BadFragment));
    // A fragment ending well inside the limit is fine.
    Bytes h = ipv4_frame({.proto = ipproto::kUdp, .frag_offset = 8000}, pattern(100));
    PacketMeta mh = parse(h);
    EXPECT_TRUE(IsIp(mh));
    EXPECT_EQ(mh.is_fragment, 1);
}

TEST(PacketParser, Ipv4FragmentEndingExactlyAt65535IsValid) {
    // 65528 + 7 = 65535: the last byte of a maximal datagram; one more byte is too many.
    Bytes ok = ipv4_frame({.proto = ipproto::kUdp, .frag_offset = 8191}, pattern(7));
    PacketMeta m = parse(ok);
    EXPECT_TRUE(IsIp(m));
    EXPECT_EQ(m.is_fragment, 1);
    EXPECT_EQ(m.first_fragment, 0);

    Bytes over = ipv4_frame({.proto = ipproto::kUdp, .frag_offset = 8191}, pattern(8));
    EXPECT_TRUE(IsMalformed(parse(over), DropReason::Ipv4BadFragment));
}

// ===== IPv6 =================================================================================

TEST(PacketParser, Ipv6TcpFillsAllFields) {
    Bytes f = ipv6_frame({.src = kV6A, .dst = kV6B, .next_header = ipproto::kTcp},
                         tcp({.sport = 50000, .dport = 443, .seq = 0xa0b0c0d0, .ack = 0x01020304,
                              .flags = dp::tcp_flag::kPsh | dp::tcp_flag::kAck},
                             text("payload!")));
    PacketMeta m = parse(f);
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.ip_version, 6);
    EXPECT_EQ(m.ethertype, ether::kIpv6);
    EXPECT_EQ(m.l4_proto, ipproto::kTcp);
    EXPECT_EQ(m.l3_offset, kEthHdr);
    EXPECT_EQ(m.l3_length, kIpv6Hdr + kTcpHdr + 8);
    EXPECT_EQ(m.l4_offset, kEthV6L4);
    EXPECT_EQ(m.payload_offset, kEthV6L4 + kTcpHdr);
    EXPECT_EQ(m.payload_length, 8);
    EXPECT_EQ(m.tcp_flags, dp::tcp_flag::kPsh | dp::tcp_flag::kAck);
    EXPECT_EQ(m.tcp_seq, 0xa0b0c0d0u);
    EXPECT_EQ(m.tcp_ack, 0x01020304u);
    EXPECT_EQ(m.is_fragment, 0);
    EXPECT_EQ(m.reversed, 0);
    EXPECT_EQ(m.key, key_v6(kV6A, 50000, kV6B, 443, ipproto::kTcp));
}

TEST(PacketParser, Ipv6HeaderShorterThan40BytesIsIpv6Truncated) {
    Bytes f = tcp_v6_frame(kV6A, 1, kV6B, 2);
    for (size_t len = kEthHdr; len < kEthHdr + kIpv6Hdr; ++len) {
        SCOPED_TRACE(len);
        EXPECT_TRUE(IsMalformed(parse_prefix(f, len), DropReason::Ipv6Truncated));
    }
}

TEST(PacketParser, Ipv6VersionOtherThan6IsBadVersion) {
    for (uint8_t version : {0, 4, 7, 15}) {
        SCOPED_TRACE(unsigned{version});
        Bytes f = ipv6_frame({.version = version}, tcp({}));
        EXPECT_TRUE(IsMalformed(parse(f), DropReason::Ipv6BadVersion));
    }
    // An IPv4 packet (padded to 40+ bytes) behind EtherType 0x86dd.
    Bytes v4 = ethernet(ether::kIpv6, ipv4({}, tcp({}, pattern(20))));
    EXPECT_TRUE(IsMalformed(parse(v4), DropReason::Ipv6BadVersion));
}

TEST(PacketParser, Ipv6PayloadLengthBeyondFrameIsBadLength) {
    Bytes f = ipv6_frame({.payload_length = kTcpHdr + 1}, tcp({}));
    EXPECT_TRUE(IsMalformed(parse(f), DropReason::Ipv6BadLength));

    Bytes g = ipv6_frame({.payload_length = 0xffff}, tcp({}));
    EXPECT_TRUE(IsMalformed(parse(g), DropReason::Ipv6BadLength));

    Bytes h = tcp_v6_frame(kV6A, 1, kV6B, 2);
    EXPECT_TRUE(IsMalformed(parse_prefix(h, h.size() - 1), DropReason::Ipv6BadLength));
}

TEST(PacketParser, Ipv6TrailingPaddingIsValidAndExcludedFromLengths) {
    Bytes f = with_trailer(ipv6_frame({.next_header = ipproto::kUdp}, udp({}, text("abcd"))), 6);
    PacketMeta m = parse(f);
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.l3_length, kIpv6Hdr + kUdpHdr + 4);
    EXPECT_EQ(m.payload_offset, kEthV6L4 + kUdpHdr);
    EXPECT_EQ(m.payload_length, 4);

    Bytes t = with_trailer(ipv6_frame({}, tcp({.flags = dp::tcp_flag::kAck})), 4);
    PacketMeta mt = parse(t);
    ASSERT_TRUE(IsIp(mt));
    EXPECT_EQ(mt.l3_length, kIpv6Hdr + kTcpHdr);
    EXPECT_EQ(mt.payload_length, 0);
}

TEST(PacketParser, Ipv6HopByHopRoutingAndDestinationOptionsAreWalked) {
    // hop-by-hop (8) -> routing (16) -> destination options (24) -> TCP.
    Bytes chain = cat({ipv6_options_header(ipproto::kRouting, 0),
                       ipv6_routing_header(ipproto::kDestOpts, 1),
                       ipv6_options_header(ipproto::kTcp, 2)});
    ASSERT_EQ(chain.size(), 48u);
    Bytes f = ipv6_frame({.next_header = ipproto::kHopByHop},
                         cat({chain, tcp({.sport = 1111, .dport = 2222}, text("data"))}));
    PacketMeta m = parse(f);
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.l4_proto, ipproto::kTcp);
    EXPECT_EQ(m.l4_offset, kEthV6L4 + 48);
    EXPECT_EQ(m.payload_offset, kEthV6L4 + 48 + kTcpHdr);
    EXPECT_EQ(m.payload_length, 4);
    EXPECT_EQ(m.l3_length, kIpv6Hdr + 48 + kTcpHdr + 4);
    EXPECT_EQ(m.is_fragment, 0);
    EXPECT_EQ(m.key, key_v6(kV6A, 1111, kV6B, 2222, ipproto::kTcp));
}

TEST(PacketParser, Ipv6AuthenticationHeaderLengthIsInFourOctetUnits) {
    // Payload length 4 => (4 + 2) * 4 = 24 bytes (an (len + 1) * 8 reading would give 40).
    Bytes f = ipv6_frame({.next_header = ipproto::kAh},
                         cat({ipv6_ah_header(ipproto::kUdp, 4),
                              udp({.sport = 500, .dport = 4500}, pattern(30))}));
    PacketMeta m = parse(f);
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.l4_proto, ipproto::kUdp);
    EXPECT_EQ(m.l4_offset, kEthV6L4 + 24);
    EXPECT_EQ(m.payload_length, 30);
    EXPECT_EQ(m.key, key_v6(kV6A, 500, kV6B, 4500, ipproto::kUdp));

    // Payload length 6 => 32 bytes, after a destination options header.
    Bytes g = ipv6_frame({.next_header = ipproto::kDestOpts},
                         cat({ipv6_options_header(ipproto::kAh, 0),
                              ipv6_ah_header(ipproto::kTcp, 6),
                              tcp({.sport = 7, .dport = 8})}));
    PacketMeta mg = parse(g);
    ASSERT_TRUE(IsIp(mg));
    EXPECT_EQ(mg.l4_proto, ipproto::kTcp);
    EXPECT_EQ(mg.l4_offset, kEthV6L4 + 8 + 32);
    EXPECT_EQ(mg.key, key_v6(kV6A, 7, kV6B, 8, ipproto::kTcp));
}

TEST(PacketParser, Ipv6FirstFragmentCarriesL4) {
    Bytes t = ipv6_frame({.next_header = ipproto::kFragment},
                         cat({ipv6_fragment_header(ipproto::kTcp, 0, true, 0xcafef00d),
                              tcp({.sport = 40000, .dport = 22}, pattern(1000))}));
    PacketMeta m = parse(t);
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.is_fragment, 1);
    EXPECT_EQ(m.first_fragment, 1);
    EXPECT_EQ(m.frag_id, 0xcafef00du);
    EXPECT_EQ(m.l4_proto, ipproto::kTcp);
    EXPECT_EQ(m.l4_offset, kEthV6L4 + 8);
    EXPECT_EQ(m.payload_length, 1000);
    EXPECT_EQ(m.key, key_v6(kV6A, 40000, kV6B, 22, ipproto::kTcp));
}

TEST(PacketParser, UdpFirstFragmentMayAnnounceTheWholeDatagramLength) {
    // The UDP length of a first fragment covers all fragments, so it exceeds this packet's IP
    // payload; that is normal, not UdpBadLength.
    Bytes f4 = ipv4_frame({.proto = ipproto::kUdp, .id = 0x0abc, .mf = true},
                          udp({.sport = 4789, .dport = 4790, .length = 3000}, pattern(1472)));
    PacketMeta m4 = parse(f4);
    ASSERT_TRUE(IsIp(m4));
    EXPECT_EQ(m4.is_fragment, 1);
    EXPECT_EQ(m4.first_fragment, 1);
    EXPECT_EQ(m4.frag_id, 0x0abcu);
    EXPECT_EQ(m4.l4_offset, kEthV4L4);
    EXPECT_EQ(m4.key, key_v4(kV4A, 4789, kV4B, 4790, ipproto::kUdp));

    Bytes f6 = ipv6_frame({.next_header = ipproto::kFragment},
                          cat({ipv6_fragment_header(ipproto::kUdp, 0, true, 0xdeadbeef),
                               udp({.sport = 5353, .dport = 5354, .length = 3000},
                                   pattern(1200))}));
    PacketMeta m6 = parse(f6);
    ASSERT_TRUE(IsIp(m6));
    EXPECT_EQ(m6.is_fragment, 1);
    EXPECT_EQ(m6.first_fragment, 1);
    EXPECT_EQ(m6.frag_id, 0xdeadbeefu);
    EXPECT_EQ(m6.l4_offset, kEthV6L4 + 8);
    EXPECT_EQ(m6.key, key_v6(kV6A, 5353, kV6B, 5354, ipproto::kUdp));
}

TEST(PacketParser, Ipv6NonFirstFragmentHasNoL4) {
    Bytes f = ipv6_frame({.src = kV6B, .dst = kV6A, .next_header = ipproto::kFragment},
                         cat({ipv6_fragment_header(ipproto::kUdp, 100, false, 0x89abcdef),
                              pattern(64)}),
                         {{.tpid = ether::kVlan, .vid = 9}});
    PacketMeta m = parse(f);
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.is_fragment, 1);
    EXPECT_EQ(m.first_fragment, 0);
    EXPECT_EQ(m.frag_id, 0x89abcdefu);
    EXPECT_EQ(m.l4_offset, 0);
    EXPECT_EQ(m.l4_proto, ipproto::kUdp);
    EXPECT_EQ(m.ip_version, 6);
    EXPECT_EQ(m.key, key_v6(kV6A, 0, kV6B, 0, ipproto::kUdp, 9));
    EXPECT_EQ(m.reversed, 1);

    // A middle fragment (M set) after a hop-by-hop header.
    Bytes g = ipv6_frame({.next_header = ipproto::kHopByHop},
                         cat({ipv6_options_header(ipproto::kFragment, 0),
                              ipv6_fragment_header(ipproto::kTcp, 185, true, 1), pattern(1480)}));
    PacketMeta mg = parse(g);
    ASSERT_TRUE(IsIp(mg));
    EXPECT_EQ(mg.is_fragment, 1);
    EXPECT_EQ(mg.first_fragment, 0);
    EXPECT_EQ(mg.frag_id, 1u);
    EXPECT_EQ(mg.l4_offset, 0);
    EXPECT_EQ(mg.key, key_v6(kV6A, 0, kV6B, 0, ipproto::kTcp));
}

TEST(PacketParser, Ipv6ExtensionHeaderBeyondPacketIsExtTruncated) {
    struct Case {
        const char* name;
        uint8_t first;
        Bytes payload;
    };
    const Bytes hop32 = ipv6_options_header(ipproto::kTcp, 3); // 32 bytes
    const Bytes ah24 = ipv6_ah_header(ipproto::kTcp, 4);       // 24 bytes
    const Bytes rt16 = ipv6_routing_header(ipproto::kTcp, 1);   // 16 bytes
    const Bytes frag = ipv6_fragment_header(ipproto::kTcp, 0, true, 1);
    const std::vector<Case> cases = {
        {"hop-by-hop announced, nothing follows", ipproto::kHopByHop, {}},
        {"hop-by-hop, 1 byte", ipproto::kHopByHop, Bytes(hop32.begin(), hop32.begin() + 1)},
        {"hop-by-hop 32 bytes, 8 present", ipproto::kHopByHop,
         Bytes(hop32.begin(), hop32.begin() + 8)},
        {"hop-by-hop 32 bytes, 31 present", ipproto::kHopByHop,
         Bytes(hop32.begin(), hop32.end() - 1)},
        {"routing 16 bytes, 12 present", ipproto::kRouting, Bytes(rt16.begin(), rt16.begin() + 12)},
        {"fragment, 6 of 8 bytes", ipproto::kFragment, Bytes(frag.begin(), frag.begin() + 6)},
        {"AH 24 bytes, 16 present", ipproto::kAh, Bytes(ah24.begin(), ah24.begin() + 16)},
        {"destination options after a complete hop-by-hop", ipproto::kHopByHop,
         cat({ipv6_options_header(ipproto::kDestOpts, 0), Bytes{ipproto::kTcp}})},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        EXPECT_TRUE(IsMalformed(parse(ipv6_frame({.next_header = c.first}, c.payload)),
                                DropReason::Ipv6ExtTruncated));
    }
}

TEST(PacketParser, Ipv6ExtensionHeaderRunningIntoPaddingIsExtTruncated) {
    // Payload length 8 covers only part of a 16-byte destination options header; the frame's
    // trailing padding must not be read as the rest of it.
    Bytes dst16 = ipv6_options_header(ipproto::kNoNext, 1);
    Bytes f = ipv6_frame({.next_header = ipproto::kDestOpts, .payload_length = 8}, dst16);
    f = with_trailer(f, 16);
    EXPECT_TRUE(IsMalformed(parse(f), DropReason::Ipv6ExtTruncated));
}

Bytes ext_chain(unsigned n, uint8_t last_next) {
    const uint8_t kinds[] = {ipproto::kHopByHop, ipproto::kDestOpts, ipproto::kRouting,
                             ipproto::kDestOpts};
    Bytes chain;
    for (unsigned i = 0; i < n; ++i) {
        uint8_t next = i + 1 < n ? kinds[(i + 1) % 4] : last_next;
        uint8_t kind = kinds[i % 4];
        append(chain, kind == ipproto::kRouting ? ipv6_routing_header(next, 0)
                                                : ipv6_options_header(next, 0));
    }
    return chain;
}

TEST(PacketParser, Ipv6ExtensionChainAtTheLimitIsAccepted) {
    const unsigned n = dp::kMaxIpv6ExtHeaders;
    Bytes f = ipv6_frame({.next_header = ipproto::kHopByHop},
                         cat({ext_chain(n, ipproto::kTcp), tcp({.sport = 9, .dport = 10})}));
    PacketMeta m = parse(f);
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.l4_proto, ipproto::kTcp);
    EXPECT_EQ(m.l4_offset, kEthV6L4 + 8 * n);
    EXPECT_EQ(m.key, key_v6(kV6A, 9, kV6B, 10, ipproto::kTcp));
}

TEST(PacketParser, Ipv6ExtensionChainOverTheLimitIsExtTooLong) {
    const unsigned n = dp::kMaxIpv6ExtHeaders + 1;
    Bytes f = ipv6_frame({.next_header = ipproto::kHopByHop},
                         cat({ext_chain(n, ipproto::kTcp), tcp({})}));
    EXPECT_TRUE(IsMalformed(parse(f), DropReason::Ipv6ExtTooLong));

    Bytes g = ipv6_frame({.next_header = ipproto::kHopByHop},
                         cat({ext_chain(30, ipproto::kUdp), udp({})}));
    EXPECT_TRUE(IsMalformed(parse(g), DropReason::Ipv6ExtTooLong));
}

TEST(PacketParser, Ipv6NoNextHeaderIsIpWithoutL4) {
    Bytes f = ipv6_frame({.next_header = ipproto::kNoNext}, {});
    PacketMeta m = parse(f);
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.l4_proto, ipproto::kNoNext);
    EXPECT_EQ(m.l4_offset, 0);
    EXPECT_EQ(m.l3_length, kIpv6Hdr);
    EXPECT_EQ(m.key, key_v6(kV6A, 0, kV6B, 0, ipproto::kNoNext));

    // After a destination options header, with bytes following that must be ignored.
    Bytes g = ipv6_frame({.next_header = ipproto::kDestOpts},
                         cat({ipv6_options_header(ipproto::kNoNext, 0), pattern(16)}));
    PacketMeta mg = parse(g);
    ASSERT_TRUE(IsIp(mg));
    EXPECT_EQ(mg.l4_proto, ipproto::kNoNext);
    EXPECT_EQ(mg.l4_offset, 0);
    EXPECT_EQ(mg.key.port[0], 0);
    EXPECT_EQ(mg.key.port[1], 0);
}

TEST(PacketParser, Ipv6EspIsAnOtherProtocolWithoutPorts) {
    Bytes f = ipv6_frame({.next_header = ipproto::kEsp}, pattern(48));
    PacketMeta m = parse(f);
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.l4_proto, ipproto::kEsp);
    EXPECT_EQ(m.key, key_v6(kV6A, 0, kV6B, 0, ipproto::kEsp));
}

// ===== TCP ==================================================================================

TEST(PacketParser, TcpFlagsSequenceAndAckAreHostOrder) {
    const uint8_t flags = dp::tcp_flag::kFin | dp::tcp_flag::kPsh | dp::tcp_flag::kAck;
    Bytes f = ipv4_frame({}, tcp({.sport = 443, .dport = 51000, .seq = 0xfedcba98,
                                  .ack = 0x01234567, .flags = flags}));
    PacketMeta m = parse(f);
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.tcp_flags, flags);
    EXPECT_EQ(m.tcp_seq, 0xfedcba98u);
    EXPECT_EQ(m.tcp_ack, 0x01234567u);

    for (uint8_t fl : {dp::tcp_flag::kSyn, uint8_t{dp::tcp_flag::kSyn | dp::tcp_flag::kAck},
                       dp::tcp_flag::kRst, uint8_t{0xff}}) {
        SCOPED_TRACE(unsigned{fl});
        PacketMeta mf = parse(ipv6_frame({}, tcp({.flags = fl})));
        ASSERT_TRUE(IsIp(mf));
        EXPECT_EQ(mf.tcp_flags, fl);
    }
}

TEST(PacketParser, TcpOptionsAndPayloadOffsets) {
    Bytes http = text("GET / HTTP/1.1\r\nHost: example.test\r\n\r\n");
    Bytes f = ipv4_frame({}, tcp({.sport = 40000, .dport = 80, .flags = dp::tcp_flag::kPsh,
                                  .options = tcp_syn_options()},
                                 http));
    PacketMeta m = parse(f);
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.l4_offset, kEthV4L4);
    EXPECT_EQ(m.payload_offset, kEthV4L4 + 40);
    EXPECT_EQ(m.payload_length, http.size());
    EXPECT_EQ(m.l3_length, kIpv4Hdr + 40 + http.size());
    ASSERT_LE(size_t{m.payload_offset} + m.payload_length, f.size());
    EXPECT_EQ(std::memcmp(f.data() + m.payload_offset, http.data(), http.size()), 0);

    // Maximal data offset (15 words, 60 bytes) with one payload byte.
    Bytes g = ipv6_frame({}, tcp({.options = Bytes(40, 0x01)}, Bytes{0x7f}));
    PacketMeta mg = parse(g);
    ASSERT_TRUE(IsIp(mg));
    EXPECT_EQ(mg.payload_offset, kEthV6L4 + 60);
    EXPECT_EQ(mg.payload_length, 1);
}

TEST(PacketParser, TcpShorterThan20BytesIsTcpTruncated) {
    const Bytes full = tcp({});
    for (size_t n = 0; n < kTcpHdr; ++n) {
        SCOPED_TRACE(n);
        Bytes seg(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
        EXPECT_TRUE(IsMalformed(parse(ipv4_frame({}, seg)), DropReason::TcpTruncated));
        EXPECT_TRUE(IsMalformed(parse(ipv6_frame({}, seg)), DropReason::TcpTruncated));
        // Ethernet padding after the datagram does not complete the header.
        EXPECT_TRUE(IsMalformed(parse(pad_to(ipv4_frame({}, seg))), DropReason::TcpTruncated));
    }
}

TEST(PacketParser, TcpDataOffsetBelowFiveIsBadOffset) {
    for (uint8_t doff = 0; doff < 5; ++doff) {
        SCOPED_TRACE(unsigned{doff});
        EXPECT_TRUE(IsMalformed(parse(ipv4_frame({}, tcp({.data_offset = doff}, pattern(20)))),
                                DropReason::TcpBadOffset));
        EXPECT_TRUE(IsMalformed(parse(ipv6_frame({}, tcp({.data_offset = doff}))),
                                DropReason::TcpBadOffset));
    }
}

TEST(PacketParser, TcpDataOffsetBeyondSegmentIsBadOffset) {
    EXPECT_TRUE(IsMalformed(parse(ipv4_frame({}, tcp({.data_offset = 6}))),
                            DropReason::TcpBadOffset));
    EXPECT_TRUE(IsMalformed(parse(ipv4_frame({}, tcp({.data_offset = 15}, pattern(20)))),
                            DropReason::TcpBadOffset));
    EXPECT_TRUE(IsMalformed(parse(ipv6_frame({}, tcp({.data_offset = 11}, pattern(23)))),
                            DropReason::TcpBadOffset));
    // The options would fit in the Ethernet padding, but not in the IP datagram.
    Bytes f = pad_to(ipv4_frame({}, tcp({.data_offset = 6})));
    ASSERT_EQ(f.size(), kEthMinFrame);
    EXPECT_TRUE(IsMalformed(parse(f), DropReason::TcpBadOffset));
    // Exactly fitting options are fine.
    PacketMeta m = parse(ipv4_frame({}, tcp({.data_offset = 6}, Bytes{1, 1, 1, 0})));
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.payload_length, 0);
}

// ===== UDP ==================================================================================

TEST(PacketParser, UdpPortsAndPayload) {
    Bytes dns = pattern(29);
    Bytes f = ipv4_frame({.src = kV4A, .dst = kV4C, .proto = ipproto::kUdp},
                         udp({.sport = 53000, .dport = 53}, dns));
    PacketMeta m = parse(f);
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.l4_proto, ipproto::kUdp);
    EXPECT_EQ(m.l4_offset, kEthV4L4);
    EXPECT_EQ(m.payload_offset, kEthV4L4 + kUdpHdr);
    EXPECT_EQ(m.payload_length, 29);
    EXPECT_EQ(m.l3_length, kIpv4Hdr + kUdpHdr + 29);
    EXPECT_EQ(m.key, key_v4(kV4A, 53000, kV4C, 53, ipproto::kUdp));

    Bytes g = ipv6_frame({.next_header = ipproto::kUdp},
                         udp({.sport = 443, .dport = 61000}, pattern(1200)));
    PacketMeta mg = parse(g);
    ASSERT_TRUE(IsIp(mg));
    EXPECT_EQ(mg.payload_offset, kEthV6L4 + kUdpHdr);
    EXPECT_EQ(mg.payload_length, 1200);
    EXPECT_EQ(mg.key, key_v6(kV6A, 443, kV6B, 61000, ipproto::kUdp));

    // An empty datagram.
    PacketMeta me = parse(pad_to(ipv4_frame({.proto = ipproto::kUdp}, udp({}))));
    ASSERT_TRUE(IsIp(me));
    EXPECT_EQ(me.payload_length, 0);
}

TEST(PacketParser, UdpShorterThan8BytesIsUdpTruncated) {
    const Bytes full = udp({});
    for (size_t n = 0; n < kUdpHdr; ++n) {
        SCOPED_TRACE(n);
        Bytes seg(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
        EXPECT_TRUE(IsMalformed(parse(pad_to(ipv4_frame({.proto = ipproto::kUdp}, seg))),
                                DropReason::UdpTruncated));
        EXPECT_TRUE(IsMalformed(parse(ipv6_frame({.next_header = ipproto::kUdp}, seg)),
                                DropReason::UdpTruncated));
    }
}

TEST(PacketParser, UdpLengthBelow8IsBadLength) {
    for (uint16_t len : {0, 1, 7}) {
        SCOPED_TRACE(len);
        EXPECT_TRUE(IsMalformed(
            parse(ipv4_frame({.proto = ipproto::kUdp}, udp({.length = len}, pattern(8)))),
            DropReason::UdpBadLength));
        EXPECT_TRUE(IsMalformed(
            parse(ipv6_frame({.next_header = ipproto::kUdp}, udp({.length = len}, pattern(8)))),
            DropReason::UdpBadLength));
    }
}

TEST(PacketParser, UdpLengthBeyondIpPayloadIsBadLength) {
    EXPECT_TRUE(IsMalformed(
        parse(ipv4_frame({.proto = ipproto::kUdp}, udp({.length = kUdpHdr + 11}, pattern(10)))),
        DropReason::UdpBadLength));
    EXPECT_TRUE(IsMalformed(parse(ipv6_frame({.next_header = ipproto::kUdp},
                                             udp({.length = 0xffff}, pattern(10)))),
                            DropReason::UdpBadLength));
    // UDP length reaching into the Ethernet padding, beyond the IP total length.
    Bytes f =
        pad_to(ipv4_frame({.proto = ipproto::kUdp}, udp({.length = kUdpHdr + 6}, text("ab"))));
    ASSERT_EQ(f.size(), kEthMinFrame);
    EXPECT_TRUE(IsMalformed(parse(f), DropReason::UdpBadLength));
}

TEST(PacketParser, UdpLengthShorterThanIpPayloadDefinesPayloadLength) {
    Bytes f = ipv4_frame({.proto = ipproto::kUdp}, udp({.length = kUdpHdr + 6}, pattern(10)));
    PacketMeta m = parse(f);
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.payload_offset, kEthV4L4 + kUdpHdr);
    EXPECT_EQ(m.payload_length, 6);
    EXPECT_EQ(m.l3_length, kIpv4Hdr + kUdpHdr + 10);
}

// ===== ICMP and other protocols =============================================================

TEST(PacketParser, IcmpEchoHasZeroPorts) {
    Bytes f = ipv4_frame({.src = kV4B, .dst = kV4A, .proto = ipproto::kIcmp},
                         icmp_echo(8, 0x1234, 1, pattern(56)));
    PacketMeta m = parse(f);
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.l4_proto, ipproto::kIcmp);
    EXPECT_EQ(m.l4_offset, kEthV4L4);
    EXPECT_EQ(m.l3_length, kIpv4Hdr + 8 + 56);
    EXPECT_EQ(m.key, key_v4(kV4A, 0, kV4B, 0, ipproto::kIcmp));
    EXPECT_EQ(m.reversed, 1);
}

TEST(PacketParser, Icmpv6EchoHasZeroPorts) {
    Bytes f = ipv6_frame({.next_header = ipproto::kIcmpv6}, icmp_echo(128, 0x4321, 9, pattern(8)));
    PacketMeta m = parse(f);
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.l4_proto, ipproto::kIcmpv6);
    EXPECT_EQ(m.l4_offset, kEthV6L4);
    EXPECT_EQ(m.key, key_v6(kV6A, 0, kV6B, 0, ipproto::kIcmpv6));

    // Behind a hop-by-hop header (as MLD reports are).
    Bytes g = ipv6_frame({.next_header = ipproto::kHopByHop},
                         cat({ipv6_options_header(ipproto::kIcmpv6, 0), icmp_echo(143, 0, 0)}));
    PacketMeta mg = parse(g);
    ASSERT_TRUE(IsIp(mg));
    EXPECT_EQ(mg.l4_proto, ipproto::kIcmpv6);
    EXPECT_EQ(mg.l4_offset, kEthV6L4 + 8);
    EXPECT_EQ(mg.key, key_v6(kV6A, 0, kV6B, 0, ipproto::kIcmpv6));
}

TEST(PacketParser, IcmpShorterThan4BytesIsIcmpTruncated) {
    const Bytes full = icmp_echo(8, 1, 1);
    for (size_t n = 0; n < 4; ++n) {
        SCOPED_TRACE(n);
        Bytes msg(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
        EXPECT_TRUE(IsMalformed(parse(pad_to(ipv4_frame({.proto = ipproto::kIcmp}, msg))),
                                DropReason::IcmpTruncated));
        EXPECT_TRUE(IsMalformed(parse(ipv6_frame({.next_header = ipproto::kIcmpv6}, msg)),
                                DropReason::IcmpTruncated));
    }
    // Exactly 4 bytes is enough.
    Bytes four(full.begin(), full.begin() + 4);
    EXPECT_TRUE(IsIp(parse(pad_to(ipv4_frame({.proto = ipproto::kIcmp}, four)))));
    EXPECT_TRUE(IsIp(parse(ipv6_frame({.next_header = ipproto::kIcmpv6}, four))));
}

TEST(PacketParser, OtherIpProtocolsAreKeyedWithoutPorts) {
    // SCTP common header (ports 5000 -> 5001) plus an INIT chunk; GRE version 1 (PPTP), which
    // is not looked into (test_decap.cpp: the GRE l7gate decapsulates).
    Bytes sctp;
    put16(sctp, 5000);
    put16(sctp, 5001);
    put32(sctp, 0);
    put32(sctp, 0);
    append(sctp, pattern(20));
    Bytes gre = cat({Bytes{0x30, 0x01, 0x88, 0x0b}, pattern(8), ipv4({}, tcp({}))});
    for (auto [proto, l4] : {std::pair{ipproto::kSctp, sctp}, std::pair{ipproto::kGre, gre},
                             std::pair{uint8_t{253}, pattern(3)}}) {
        SCOPED_TRACE(unsigned{proto});
        PacketMeta m4 = parse(ipv4_frame({.proto = proto}, l4));
        ASSERT_TRUE(IsIp(m4));
        EXPECT_EQ(m4.l4_proto, proto);
        EXPECT_EQ(m4.key, key_v4(kV4A, 0, kV4B, 0, proto));

        PacketMeta m6 = parse(ipv6_frame({.next_header = proto}, l4));
        ASSERT_TRUE(IsIp(m6));
        EXPECT_EQ(m6.l4_proto, proto);
        EXPECT_EQ(m6.key, key_v6(kV6A, 0, kV6B, 0, proto));
    }
}

// ===== Direction ============================================================================

TEST(PacketParser, ReversedWhenSourceAddressSortsAbove) {
    PacketMeta fwd = parse(tcp_v4_frame(kV4A, 40000, kV4B, 80));
    PacketMeta rev = parse(tcp_v4_frame(kV4B, 80, kV4A, 40000));
    ASSERT_TRUE(IsIp(fwd));
    ASSERT_TRUE(IsIp(rev));
    EXPECT_EQ(fwd.reversed, 0);
    EXPECT_EQ(rev.reversed, 1);
    EXPECT_EQ(fwd.key, rev.key);
    EXPECT_EQ(fwd.key, key_v4(kV4A, 40000, kV4B, 80, ipproto::kTcp));

    PacketMeta fwd6 = parse(tcp_v6_frame(kV6A, 40000, kV6C, 80));
    PacketMeta rev6 = parse(tcp_v6_frame(kV6C, 80, kV6A, 40000));
    ASSERT_TRUE(IsIp(fwd6));
    ASSERT_TRUE(IsIp(rev6));
    EXPECT_EQ(fwd6.reversed, 0);
    EXPECT_EQ(rev6.reversed, 1);
    EXPECT_EQ(fwd6.key, key_v6(kV6A, 40000, kV6C, 80, ipproto::kTcp));
    EXPECT_EQ(rev6.key, fwd6.key);
}

TEST(PacketParser, ReversedComparesAddressesAsNetworkOrderBytes) {
    // 198.18.1.0 > 198.18.0.255 byte-wise (a little-endian integer compare says otherwise).
    const Ip4 lo = ip4(198, 18, 0, 255);
    const Ip4 hi = ip4(198, 18, 1, 0);
    PacketMeta m = parse(tcp_v4_frame(hi, 1000, lo, 2000));
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.reversed, 1);
    EXPECT_EQ(m.key, key_v4(lo, 2000, hi, 1000, ipproto::kTcp));

    const Ip6 lo6 = ip6({0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xff00});
    const Ip6 hi6 = ip6({0x2001, 0xdb8, 0, 0, 0, 0, 1, 0x0000});
    PacketMeta m6 = parse(tcp_v6_frame(hi6, 1000, lo6, 2000));
    ASSERT_TRUE(IsIp(m6));
    EXPECT_EQ(m6.reversed, 1);
    EXPECT_EQ(m6.key, key_v6(lo6, 2000, hi6, 1000, ipproto::kTcp));
}

TEST(PacketParser, ReversedBreaksAddressTieByPort) {
    // Same host on both ends: the lower port is slot 0. 256 > 1 numerically (host order).
    PacketMeta a = parse(tcp_v4_frame(kV4A, 256, kV4A, 1));
    PacketMeta b = parse(tcp_v4_frame(kV4A, 1, kV4A, 256));
    ASSERT_TRUE(IsIp(a));
    ASSERT_TRUE(IsIp(b));
    EXPECT_EQ(a.reversed, 1);
    EXPECT_EQ(b.reversed, 0);
    EXPECT_EQ(a.key, key_v4(kV4A, 1, kV4A, 256, ipproto::kTcp));
    EXPECT_EQ(a.key, b.key);

    // Identical endpoints: not reversed.
    PacketMeta same = parse(tcp_v6_frame(kV6B, 7, kV6B, 7));
    ASSERT_TRUE(IsIp(same));
    EXPECT_EQ(same.reversed, 0);
}

// ===== Robustness ===========================================================================

struct NamedFrame {
    const char* name;
    Bytes frame;
    PacketKind kind; // of the whole frame
    size_t min_len;  // shorter prefixes are Malformed, longer ones parse as `kind`
};

NamedFrame ip_frame(const char* name, Bytes frame, size_t trailer = 0) {
    const size_t min_len = frame.size();
    return {name, with_trailer(std::move(frame), trailer), PacketKind::Ip, min_len};
}

std::vector<NamedFrame> corpus() {
    const std::vector<VlanTag> qinq = {{.tpid = ether::kQinQ, .vid = 300},
                                       {.tpid = ether::kVlan, .vid = 400}};
    std::vector<NamedFrame> c;
    c.push_back(ip_frame("ipv4 tcp", ipv4_frame({}, tcp({}, text("hello")))));
    c.push_back(ip_frame("ipv4 tcp options qinq",
                         ipv4_frame({}, tcp({.options = tcp_syn_options()}, pattern(9)), qinq)));
    c.push_back(ip_frame("ipv4 udp padded",
                         ipv4_frame({.proto = ipproto::kUdp}, udp({}, text("x"))), 17));
    c.push_back(ip_frame("ipv4 options udp",
                         ipv4_frame({.proto = ipproto::kUdp, .options = Bytes(12, 0x01)},
                                    udp({}, pattern(5)))));
    c.push_back(ip_frame("ipv4 icmp", ipv4_frame({.proto = ipproto::kIcmp}, icmp_echo(8, 1, 2))));
    c.push_back(ip_frame("ipv4 first fragment", ipv4_frame({.mf = true}, tcp({}, pattern(64)))));
    c.push_back(ip_frame("ipv4 non-first fragment",
                         ipv4_frame({.proto = ipproto::kUdp, .frag_offset = 10}, pattern(40))));
    c.push_back(ip_frame("ipv4 sctp", ipv4_frame({.proto = ipproto::kSctp}, pattern(16))));
    c.push_back(ip_frame("ipv6 tcp", ipv6_frame({}, tcp({}, text("hello")))));
    c.push_back(ip_frame("ipv6 udp vlan",
                         ipv6_frame({.next_header = ipproto::kUdp}, udp({}, pattern(3)),
                                    {{.tpid = ether::kVlan9100, .vid = 1}})));
    c.push_back(ip_frame("ipv6 ext chain tcp",
                         ipv6_frame({.next_header = ipproto::kHopByHop},
                                    cat({ipv6_options_header(ipproto::kRouting, 0),
                                         ipv6_routing_header(ipproto::kAh, 1),
                                         ipv6_ah_header(ipproto::kDestOpts, 4),
                                         ipv6_options_header(ipproto::kTcp, 1),
                                         tcp({}, pattern(4))}))));
    c.push_back(ip_frame("ipv6 first fragment tcp",
                         ipv6_frame({.next_header = ipproto::kFragment},
                                    cat({ipv6_fragment_header(ipproto::kTcp, 0, true, 77),
                                         tcp({}, pattern(16))}))));
    c.push_back(ip_frame("ipv6 non-first fragment",
                         ipv6_frame({.next_header = ipproto::kFragment},
                                    cat({ipv6_fragment_header(ipproto::kUdp, 3, false, 78),
                                         pattern(9)}))));
    c.push_back(ip_frame("ipv6 icmpv6",
                         ipv6_frame({.next_header = ipproto::kIcmpv6}, icmp_echo(128, 3, 4))));
    c.push_back(ip_frame("ipv6 no next header padded",
                         ipv6_frame({.next_header = ipproto::kNoNext}, {}), 6));
    c.push_back({"arp qinq", arp_frame(qinq), PacketKind::NonIp, kEthHdr + 2 * kVlanHdr});
    return c;
}

TEST(PacketParser, EveryTruncationOfValidFramesIsHandled) {
    for (const NamedFrame& nf : corpus()) {
        SCOPED_TRACE(nf.name);
        PacketMeta whole = parse(nf.frame);
        ASSERT_EQ(whole.kind, nf.kind) << describe(whole);
        ASSERT_TRUE(HoldsInvariants(whole, nf.frame.size()));
        for (size_t len = 0; len < nf.frame.size(); ++len) {
            PacketMeta m = parse_prefix(nf.frame, len);
            ASSERT_TRUE(HoldsInvariants(m, len)) << "truncated to " << len;
            // A cut into the headers or the datagram leaves it shorter than it claims; a cut
            // into the trailing padding only does not matter.
            const PacketKind expected = len < nf.min_len ? PacketKind::Malformed : nf.kind;
            EXPECT_EQ(m.kind, expected) << "truncated to " << len << ": " << describe(m);
        }
    }
}

TEST(PacketParser, RandomMutationsKeepInvariants) {
    std::mt19937 rng(0x17ea7e);
    const std::vector<NamedFrame> frames = corpus();
    for (int iter = 0; iter < 50000; ++iter) {
        const NamedFrame& nf = frames[rng() % frames.size()];
        Bytes f = nf.frame;
        // Flip a few bytes, biased toward the headers.
        const int flips = 1 + static_cast<int>(rng() % 4);
        for (int i = 0; i < flips; ++i) {
            size_t limit = std::min<size_t>(f.size(), rng() % 2 == 0 ? 80 : f.size());
            f[rng() % limit] = static_cast<uint8_t>(rng());
        }
        const size_t len = rng() % 4 == 0 ? rng() % (f.size() + 1) : f.size();
        PacketMeta m = parse_prefix(f, len);
        ASSERT_TRUE(HoldsInvariants(m, len)) << nf.name << ", iteration " << iter;
    }
}

TEST(PacketParser, RandomBytesBehindIpEtherTypesKeepInvariants) {
    std::mt19937 rng(42);
    const uint16_t types[] = {ether::kIpv4, ether::kIpv6, ether::kVlan, ether::kQinQ};
    for (int iter = 0; iter < 20000; ++iter) {
        Bytes f = ethernet(types[rng() % 4], {});
        const size_t extra = rng() % 128;
        for (size_t i = 0; i < extra; ++i) {
            f.push_back(static_cast<uint8_t>(rng()));
        }
        if (f.size() > 14 && rng() % 2 == 0) {
            f[14] = static_cast<uint8_t>(rng() % 2 == 0 ? 0x45 : 0x60); // plausible version
        }
        PacketMeta m = parse(f);
        ASSERT_TRUE(HoldsInvariants(m, f.size())) << "iteration " << iter;
    }
}

TEST(PacketParser, StaleMetadataIsOverwritten) {
    // The worker reuses PacketMeta storage: nothing from a previous packet may leak through.
    PacketMeta m;
    std::memset(&m, 0xa5, sizeof(m));
    Bytes f = ipv4_frame({.proto = ipproto::kUdp}, udp({.sport = 1000, .dport = 2000}, pattern(4)));
    dp::parse_packet(f.data(), static_cast<uint32_t>(f.size()), m);
    ASSERT_TRUE(IsIp(m));
    EXPECT_EQ(m.key, key_v4(kV4A, 1000, kV4B, 2000, ipproto::kUdp));
    EXPECT_EQ(m.reversed, 0);
    EXPECT_EQ(m.ip_version, 4);
    EXPECT_EQ(m.l4_proto, ipproto::kUdp);
    EXPECT_EQ(m.is_fragment, 0);
    EXPECT_EQ(m.vlan_count, 0);
    EXPECT_EQ(m.l3_offset, kEthV4L3);
    EXPECT_EQ(m.l4_offset, kEthV4L4);
    EXPECT_EQ(m.payload_offset, kEthV4L4 + kUdpHdr);
    EXPECT_EQ(m.payload_length, 4);
    EXPECT_EQ(m.l3_length, kIpv4Hdr + kUdpHdr + 4);
    EXPECT_EQ(m.ethertype, ether::kIpv4);

    std::memset(&m, 0xa5, sizeof(m));
    Bytes a = arp_frame();
    dp::parse_packet(a.data(), static_cast<uint32_t>(a.size()), m);
    EXPECT_TRUE(IsNonIp(m));
    EXPECT_EQ(m.ip_version, 0);
    EXPECT_EQ(m.vlan_count, 0);
    EXPECT_EQ(m.ethertype, ether::kArp);

    std::memset(&m, 0xa5, sizeof(m));
    dp::parse_packet(a.data(), 10, m);
    EXPECT_TRUE(IsMalformed(m, DropReason::L2Truncated));
}

} // namespace
