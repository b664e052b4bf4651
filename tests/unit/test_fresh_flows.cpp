// The benchmark source of new flows (--bench-fresh-flows): how one frame is rewritten.
#include <gtest/gtest.h>

// Designated initializers name only the fields a test cares about.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <set>

#include "dataplane/fresh_flows.hpp"
#include "dataplane/packet_parser.hpp"
#include "frame_builder.hpp"

namespace l7gate::test {
namespace {

using dp::fresh_flows_rewrite;
using dp::fresh_flows_value;

dp::PacketMeta parse(const Bytes& f) {
    dp::PacketMeta m;
    dp::parse_packet(f.data(), static_cast<uint32_t>(f.size()), m);
    return m;
}

TEST(FreshFlows, FirstPassIsLeftAsCaptured) {
    EXPECT_EQ(fresh_flows_value(0), 0);
    Bytes f = ipv4_frame({.src = kV4A, .dst = kV4B}, tcp({.sport = 40000, .dport = 443}));
    const Bytes before = f;
    fresh_flows_rewrite(f.data(), static_cast<uint32_t>(f.size()), fresh_flows_value(0));
    EXPECT_EQ(f, before);
}

TEST(FreshFlows, PassValuesAreNonZeroAndDistinct) {
    std::set<uint16_t> seen;
    for (uint64_t p = 1; p <= 4096; ++p) {
        const uint16_t v = fresh_flows_value(p);
        EXPECT_NE(v, 0) << p;
        seen.insert(v);
    }
    EXPECT_EQ(seen.size(), 4096u);
}

TEST(FreshFlows, Ipv4AddressesChangeAlikeAndTheHeaderChecksumStaysValid) {
    const uint16_t v = fresh_flows_value(7);
    Bytes c2s = ipv4_frame({.src = kV4A, .dst = kV4B}, tcp({.sport = 40000, .dport = 443}));
    Bytes s2c = ipv4_frame({.src = kV4B, .dst = kV4A}, tcp({.sport = 443, .dport = 40000}));
    const dp::PacketMeta m0 = parse(c2s);
    fresh_flows_rewrite(c2s.data(), static_cast<uint32_t>(c2s.size()), v);
    fresh_flows_rewrite(s2c.data(), static_cast<uint32_t>(s2c.size()), v);
    const dp::PacketMeta a = parse(c2s), b = parse(s2c);
    ASSERT_EQ(a.kind, dp::PacketKind::Ip);
    // Both directions still meet in one flow, and it is another flow than the captured one.
    EXPECT_EQ(a.key, b.key);
    EXPECT_NE(a.key, m0.key);
    // Only the low 16 bits of each address moved, by v.
    const uint8_t* ip = c2s.data() + kEthHdr;
    EXPECT_EQ(ip[12], kV4A[0]);
    EXPECT_EQ(ip[13], kV4A[1]);
    EXPECT_EQ(ip[14], kV4A[2] ^ (v >> 8));
    EXPECT_EQ(ip[15], kV4A[3] ^ (v & 0xff));
    EXPECT_EQ(ip[18], kV4B[2] ^ (v >> 8));
    EXPECT_EQ(ip[19], kV4B[3] ^ (v & 0xff));
    // The header checksum verifies: the one's complement sum over the header is 0xffff.
    uint32_t sum = 0;
    for (size_t i = 0; i < kIpv4Hdr; i += 2) {
        sum += uint32_t{ip[i]} << 8 | ip[i + 1];
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    EXPECT_EQ(sum, 0xffffu);
}

TEST(FreshFlows, Ipv6BehindVlanTagsIsRewritten) {
    const uint16_t v = fresh_flows_value(3);
    Bytes f = ipv6_frame({}, tcp({.sport = 40000, .dport = 443}), {{.vid = 10}, {.vid = 20}});
    const dp::PacketMeta m0 = parse(f);
    fresh_flows_rewrite(f.data(), static_cast<uint32_t>(f.size()), v);
    const dp::PacketMeta m1 = parse(f);
    ASSERT_EQ(m1.kind, dp::PacketKind::Ip);
    EXPECT_NE(m1.key, m0.key);
    // Bytes 12-13 of each address moved by v.
    const uint8_t* ip = f.data() + kEthHdr + 2 * kVlanHdr;
    EXPECT_EQ(ip[8 + 12], kV6A[12] ^ (v >> 8));
    EXPECT_EQ(ip[24 + 13], kV6B[13] ^ (v & 0xff));
    fresh_flows_rewrite(f.data(), static_cast<uint32_t>(f.size()), v);  // XOR twice: the capture again
    EXPECT_EQ(parse(f).key, m0.key);
}

TEST(FreshFlows, NonIpAndShortFramesAreLeftAlone) {
    Bytes arp = arp_frame();
    const Bytes before = arp;
    fresh_flows_rewrite(arp.data(), static_cast<uint32_t>(arp.size()), 0x1234);
    EXPECT_EQ(arp, before);
    Bytes f = ipv4_frame({.src = kV4A, .dst = kV4B}, tcp({.sport = 1, .dport = 2}));
    const Bytes cut(f.begin(), f.begin() + kEthHdr + 10);
    Bytes g = cut;
    fresh_flows_rewrite(g.data(), static_cast<uint32_t>(g.size()), 0x1234);
    EXPECT_EQ(g, cut);
}

TEST(FreshFlows, SynsOnlyRewritesBareSynsAndNothingElse) {
    const uint16_t v = fresh_flows_value(5);
    using dp::tcp_flag::kAck;
    using dp::tcp_flag::kSyn;
    auto moved = [&](Bytes f) {
        const Bytes before = f;
        fresh_flows_rewrite(f.data(), static_cast<uint32_t>(f.size()), v, true);
        return f != before;
    };
    EXPECT_TRUE(moved(ipv4_frame({.src = kV4A, .dst = kV4B}, tcp({.flags = kSyn}))));
    EXPECT_TRUE(moved(ipv6_frame({}, tcp({.flags = kSyn}), {{.vid = 10}})));
    // The rest of a connection stays with its flow.
    EXPECT_FALSE(moved(ipv4_frame({.src = kV4B, .dst = kV4A}, tcp({.flags = kSyn | kAck}))));
    EXPECT_FALSE(moved(ipv4_frame({.src = kV4A, .dst = kV4B}, tcp({.flags = kAck}, pattern(100)))));
    EXPECT_FALSE(moved(ipv6_frame({}, tcp({.flags = kAck}))));
    EXPECT_FALSE(moved(ipv4_frame({.src = kV4A, .dst = kV4B}, udp({.sport = 5000, .dport = 53}, pattern(30)))));
    // A frame cut before the TCP flags is left alone.
    Bytes f = ipv4_frame({.src = kV4A, .dst = kV4B}, tcp({.flags = kSyn}));
    const Bytes cut(f.begin(), f.begin() + kEthHdr + kIpv4Hdr + 10);
    Bytes g = cut;
    fresh_flows_rewrite(g.data(), static_cast<uint32_t>(g.size()), v, true);
    EXPECT_EQ(g, cut);
    // Without syns_only every IP frame moves.
    Bytes a = ipv4_frame({.src = kV4A, .dst = kV4B}, tcp({.flags = kAck}));
    const Bytes abefore = a;
    fresh_flows_rewrite(a.data(), static_cast<uint32_t>(a.size()), v);
    EXPECT_NE(a, abefore);
}

} // namespace
} // namespace l7gate::test
