// Unit tests for dp::FlowKey: make_flow_key canonicalisation and flow_key_hash quality.

#include <gtest/gtest.h>

// Designated initializers rely on default member initializers (see frame_builder.hpp).
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/flow_key.hpp"
#include "dataplane/flow_table.hpp"
#include "dataplane/shaper.hpp"
#include "dataplane/packet_parser.hpp"
#include "frame_builder.hpp"

namespace {

namespace dp = l7gate::dp;
using namespace l7gate::test; // NOLINT(google-build-using-namespace): test-local helpers

using dp::FlowKey;
using dp::PacketKind;
using dp::PacketMeta;

using KeyBytes = std::array<uint8_t, sizeof(FlowKey)>;

// A fixed secret for the hash-quality tests (the flow table draws its own).
const dp::HashKey kTestSecret{0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull};

// Every hash test runs for each construction the flow table may use (FlowHasher): the
// AES-round hash (skipped on a CPU without AES-NI) and SipHash-1-3.
dp::FlowHasher::Kind g_kind = dp::FlowHasher::best_kind();
uint32_t khash(const FlowKey& k, const dp::HashKey& secret = kTestSecret) {
    return dp::FlowHasher(secret, g_kind)(k);
}
class FlowKeyHashKinds : public ::testing::TestWithParam<dp::FlowHasher::Kind> {
protected:
    void SetUp() override {
        if (GetParam() == dp::FlowHasher::Kind::AesRounds && !dp::FlowHasher::cpu_has_aes()) {
            GTEST_SKIP() << "no AES-NI on this CPU";
        }
        g_kind = GetParam();
    }
    void TearDown() override { g_kind = dp::FlowHasher::best_kind(); }
};
INSTANTIATE_TEST_SUITE_P(Each, FlowKeyHashKinds,
                         ::testing::Values(dp::FlowHasher::Kind::AesRounds, dp::FlowHasher::Kind::SipHash13),
                         [](const ::testing::TestParamInfo<dp::FlowHasher::Kind>& i) {
                             return std::string(i.param == dp::FlowHasher::Kind::AesRounds ? "AesRounds" : "SipHash13");
                         });

KeyBytes bytes_of(const FlowKey& k) {
    KeyBytes b;
    std::memcpy(b.data(), &k, sizeof(k));
    return b;
}

// A key whose storage starts as garbage, so every byte make_flow_key leaves alone shows.
FlowKey garbage_key(uint8_t fill = 0xee) {
    FlowKey k;
    std::memset(&k, fill, sizeof(k));
    return k;
}

struct Endpoints {
    const char* name;
    uint8_t version;
    uint8_t proto;
    uint32_t vlan;
    Ip6 a; // only the first 4 bytes are used for IPv4
    uint16_t a_port;
    Ip6 b;
    uint16_t b_port;
};

Ip6 widen(const Ip4& v4) {
    Ip6 a{};
    std::memcpy(a.data(), v4.data(), 4);
    return a;
}

std::vector<Endpoints> endpoint_cases() {
    return {
        {"v4 tcp", 4, ipproto::kTcp, 0, widen(kV4A), 40000, widen(kV4B), 80},
        {"v4 udp", 4, ipproto::kUdp, 0, widen(kV4C), 53, widen(kV4A), 53000},
        {"v4 tcp vlan", 4, ipproto::kTcp, 100, widen(kV4B), 443, widen(kV4C), 60000},
        {"v4 udp qinq", 4, ipproto::kUdp, (100u << 12) | 200u, widen(kV4A), 5060, widen(kV4B),
         5060},
        {"v4 same host", 4, ipproto::kTcp, 0, widen(kV4A), 8080, widen(kV4A), 1234},
        {"v6 tcp", 6, ipproto::kTcp, 0, kV6A, 40000, kV6B, 443},
        {"v6 udp", 6, ipproto::kUdp, 0, kV6C, 123, kV6A, 123},
        {"v6 tcp qinq", 6, ipproto::kTcp, (4095u << 12) | 4095u, kV6B, 22, kV6C, 50022},
        {"v6 udp vlan", 6, ipproto::kUdp, 7, kV6C, 4500, kV6B, 500},
    };
}

TEST(FlowKey, BothDirectionsGiveTheSameKey) {
    for (const Endpoints& e : endpoint_cases()) {
        SCOPED_TRACE(e.name);
        FlowKey fwd = garbage_key(0x11);
        FlowKey rev = garbage_key(0x77);
        const bool r_fwd = dp::make_flow_key(fwd, e.version, e.proto, e.vlan, e.a.data(),
                                             e.b.data(), e.a_port, e.b_port);
        const bool r_rev = dp::make_flow_key(rev, e.version, e.proto, e.vlan, e.b.data(),
                                             e.a.data(), e.b_port, e.a_port);
        EXPECT_EQ(fwd, rev);
        EXPECT_EQ(bytes_of(fwd), bytes_of(rev));
        EXPECT_NE(r_fwd, r_rev);
        EXPECT_EQ(fwd.vlan, e.vlan);
        EXPECT_EQ(fwd.proto, e.proto);
        EXPECT_EQ(fwd.ip_version, e.version);
    }
}

TEST(FlowKey, LowerEndpointGoesIntoSlotZero) {
    FlowKey k;
    // Source lower: not reversed, stored as given.
    EXPECT_FALSE(dp::make_flow_key(k, 4, ipproto::kTcp, 0, kV4A.data(), kV4B.data(), 50000, 80));
    EXPECT_EQ(k, key_v4(kV4A, 50000, kV4B, 80, ipproto::kTcp));
    // Source higher: reversed, swapped with its port.
    EXPECT_TRUE(dp::make_flow_key(k, 4, ipproto::kTcp, 0, kV4B.data(), kV4A.data(), 80, 50000));
    EXPECT_EQ(k, key_v4(kV4A, 50000, kV4B, 80, ipproto::kTcp));
    // Addresses decide before ports: the lower address keeps its (higher) port.
    EXPECT_FALSE(dp::make_flow_key(k, 6, ipproto::kUdp, 0, kV6A.data(), kV6B.data(), 65535, 1));
    EXPECT_EQ(k, key_v6(kV6A, 65535, kV6B, 1, ipproto::kUdp));
    // Address tie: the port decides, numerically.
    EXPECT_TRUE(dp::make_flow_key(k, 6, ipproto::kUdp, 0, kV6A.data(), kV6A.data(), 256, 1));
    EXPECT_EQ(k, key_v6(kV6A, 1, kV6A, 256, ipproto::kUdp));
    // Identical endpoints: not reversed in either direction.
    EXPECT_FALSE(dp::make_flow_key(k, 4, ipproto::kUdp, 0, kV4A.data(), kV4A.data(), 9, 9));
    EXPECT_EQ(k, key_v4(kV4A, 9, kV4A, 9, ipproto::kUdp));
}

TEST_P(FlowKeyHashKinds, DifferentPortsVlanProtocolOrVersionGiveDifferentKeys) {
    // Each key starts from different garbage, so two equal keys are equal in every byte
    // make_flow_key wrote, not because they share a stack slot.
    uint8_t fill = 0x10;
    auto v4 = [&fill](uint8_t proto, uint32_t vlan, uint16_t sport, uint16_t dport) {
        FlowKey k = garbage_key(fill);
        fill = static_cast<uint8_t>(fill + 0x21);
        dp::make_flow_key(k, 4, proto, vlan, kV4A.data(), kV4B.data(), sport, dport);
        return k;
    };
    const FlowKey base = v4(ipproto::kTcp, 10, 40000, 80);
    EXPECT_EQ(base, v4(ipproto::kTcp, 10, 40000, 80));
    EXPECT_NE(base, v4(ipproto::kTcp, 10, 40001, 80));
    EXPECT_NE(base, v4(ipproto::kTcp, 10, 40000, 81));
    EXPECT_NE(base, v4(ipproto::kTcp, 10, 80, 40000)); // same ports, swapped roles
    EXPECT_NE(base, v4(ipproto::kTcp, 11, 40000, 80));
    EXPECT_NE(base, v4(ipproto::kTcp, 0, 40000, 80));
    EXPECT_NE(base, v4(ipproto::kTcp, (10u << 12) | 10u, 40000, 80));
    EXPECT_NE(base, v4(ipproto::kUdp, 10, 40000, 80));

    // The same four address bytes as IPv6 (the rest zero): only ip_version differs.
    FlowKey as_v6;
    const Ip6 a6 = widen(kV4A);
    const Ip6 b6 = widen(kV4B);
    dp::make_flow_key(as_v6, 6, ipproto::kTcp, 10, a6.data(), b6.data(), 40000, 80);
    EXPECT_NE(base, as_v6);
    FlowKey patched = as_v6;
    patched.ip_version = 4;
    EXPECT_EQ(base, patched);

    EXPECT_NE(khash(base), khash(v4(ipproto::kTcp, 10, 40001, 80)));
    EXPECT_NE(khash(base), khash(as_v6));
}

TEST(FlowKey, Ipv4AddressesOccupyTheFirstFourBytes) {
    // Sources with garbage after the 4 address bytes: make_flow_key must read only 4 bytes.
    Ip6 src;
    Ip6 dst;
    src.fill(0xcc);
    dst.fill(0xdd);
    std::memcpy(src.data(), kV4B.data(), 4);
    std::memcpy(dst.data(), kV4A.data(), 4);
    FlowKey k = garbage_key();
    EXPECT_TRUE(dp::make_flow_key(k, 4, ipproto::kUdp, 5, src.data(), dst.data(), 1, 2));
    EXPECT_EQ(std::memcmp(k.addr[0], kV4A.data(), 4), 0);
    EXPECT_EQ(std::memcmp(k.addr[1], kV4B.data(), 4), 0);
    for (int slot = 0; slot < 2; ++slot) {
        for (size_t i = 4; i < 16; ++i) {
            EXPECT_EQ(k.addr[slot][i], 0) << "slot " << slot << " byte " << i;
        }
    }
    EXPECT_EQ(k.tunnel, 0);
    EXPECT_EQ(k, key_v4(kV4A, 2, kV4B, 1, ipproto::kUdp, 5));
}

TEST(FlowKey, PadIsZero) {
    for (const Endpoints& e : endpoint_cases()) {
        SCOPED_TRACE(e.name);
        FlowKey k = garbage_key(0xff);
        dp::make_flow_key(k, e.version, e.proto, e.vlan, e.a.data(), e.b.data(), e.a_port,
                          e.b_port);
        EXPECT_EQ(k.tunnel, 0);
    }
}

// The frame the other endpoint of `e` sends (b -> a), with e.vlan as its tags: one 802.1Q
// tag, or an 802.1ad service tag (outer VID) and an 802.1Q tag (inner VID).
Bytes reply_frame(const Endpoints& e) {
    std::vector<VlanTag> tags;
    if (e.vlan > 0x0fff) {
        tags = {{.tpid = ether::kQinQ, .vid = static_cast<uint16_t>(e.vlan >> 12)},
                {.tpid = ether::kVlan, .vid = static_cast<uint16_t>(e.vlan & 0x0fff)}};
    } else if (e.vlan != 0) {
        tags = {{.tpid = ether::kVlan, .vid = static_cast<uint16_t>(e.vlan)}};
    }
    const Bytes l4 = e.proto == ipproto::kTcp
                         ? tcp({.sport = e.b_port, .dport = e.a_port, .flags = dp::tcp_flag::kAck})
                         : udp({.sport = e.b_port, .dport = e.a_port}, pattern(12));
    if (e.version == 4) {
        Ip4 src;
        Ip4 dst;
        std::memcpy(src.data(), e.b.data(), 4);
        std::memcpy(dst.data(), e.a.data(), 4);
        return ipv4_frame({.src = src, .dst = dst, .proto = e.proto}, l4, tags);
    }
    return ipv6_frame({.src = e.b, .dst = e.a, .next_header = e.proto}, l4, tags);
}

// One flow, two independent constructions: make_flow_key on a's packet (over garbage) and the
// parser on b's reply frame. Same key, same hash.
TEST_P(FlowKeyHashKinds, HashOfAFlowIsTheSameFromEitherEndpoint) {
    for (const Endpoints& e : endpoint_cases()) {
        SCOPED_TRACE(e.name);
        FlowKey fwd = garbage_key(0x01);
        dp::make_flow_key(fwd, e.version, e.proto, e.vlan, e.a.data(), e.b.data(), e.a_port,
                          e.b_port);
        const PacketMeta rep = parse(reply_frame(e));
        ASSERT_EQ(rep.kind, PacketKind::Ip);
        ASSERT_EQ(rep.key.vlan, e.vlan);
        ASSERT_EQ(fwd, rep.key);
        EXPECT_EQ(khash(fwd), khash(rep.key));
    }
}

// The hash reads the key's 44 bytes and nothing around them: the same key in the middle of
// buffers filled with different bytes hashes the same.
TEST_P(FlowKeyHashKinds, HashReadsOnlyTheKey) {
    for (const Endpoints& e : endpoint_cases()) {
        SCOPED_TRACE(e.name);
        FlowKey k;
        dp::make_flow_key(k, e.version, e.proto, e.vlan, e.a.data(), e.b.data(), e.a_port,
                          e.b_port);
        uint32_t hashes[2];
        for (int i = 0; i < 2; ++i) {
            alignas(16) uint8_t buf[sizeof(FlowKey) + 64];
            std::memset(buf, i == 0 ? 0x00 : 0xff, sizeof(buf));
            std::memcpy(buf + 32, &k, sizeof(k));
            hashes[i] = khash(*reinterpret_cast<const FlowKey*>(buf + 32));
        }
        EXPECT_EQ(hashes[0], hashes[1]);
    }
}

// Flips one bit (the lowest, then the highest) of each listed byte of `base`: every flip must
// change the hash.
void expect_hash_depends_on(const FlowKey& base, const std::vector<size_t>& offsets) {
    const uint32_t h = khash(base);
    for (size_t i : offsets) {
        for (uint8_t flip : {uint8_t{0x01}, uint8_t{0x80}}) {
            KeyBytes b = bytes_of(base);
            b[i] ^= flip;
            FlowKey k;
            std::memcpy(&k, b.data(), sizeof(k));
            EXPECT_NE(khash(k), h) << "byte " << i << " flip " << unsigned{flip};
        }
    }
}

TEST_P(FlowKeyHashKinds, HashDependsOnEveryKeyByte) {
    FlowKey base;
    dp::make_flow_key(base, 6, ipproto::kTcp, (12u << 12) | 34u, kV6A.data(), kV6C.data(), 40000,
                      443);
    // Every byte, the tunnel discriminator included.
    std::vector<size_t> offsets;
    for (size_t i = 0; i < sizeof(FlowKey); ++i) {
        offsets.push_back(i);
    }
    expect_hash_depends_on(base, offsets);
}

// IPv4 keys take their own, shorter path through the hash: every byte that can differ between
// two IPv4 keys (4 bytes of each address, both ports, both VLAN IDs, protocol and version)
// must reach it. Bytes 4-15 of each address are always zero in an IPv4 key.
TEST_P(FlowKeyHashKinds, Ipv4HashDependsOnEveryAddressPortVlanAndProtocolByte) {
    FlowKey base;
    dp::make_flow_key(base, 4, ipproto::kUdp, (2049u << 12) | 3071u, kV4A.data(), kV4C.data(),
                      40000, 53);
    ASSERT_EQ(base.ip_version, 4);
    std::vector<size_t> offsets;
    for (size_t slot = 0; slot < 2; ++slot) {
        for (size_t i = 0; i < 4; ++i) {
            offsets.push_back(offsetof(FlowKey, addr) + slot * 16 + i);
        }
    }
    for (size_t i = offsetof(FlowKey, port); i < offsetof(FlowKey, tunnel); ++i) {
        offsets.push_back(i);
    }
    expect_hash_depends_on(base, offsets);
}

// A tunnelled IPv4 key (the encapsulation in vlan's top byte, a tunnel discriminator) is hashed
// whole: the discriminator reaches the hash, so inner flows of two tunnels with one 5-tuple
// land in unrelated buckets (issue 20).
TEST_P(FlowKeyHashKinds, TunnelledIpv4HashDependsOnTheTunnelDiscriminator) {
    FlowKey base;
    dp::make_flow_key(base, 4, ipproto::kTcp, 3u << 24 | 17u, kV4A.data(), kV4C.data(), 40000, 443);
    base.tunnel = 0x1234;
    std::vector<size_t> offsets;
    for (size_t slot = 0; slot < 2; ++slot) {
        for (size_t i = 0; i < 4; ++i) {
            offsets.push_back(offsetof(FlowKey, addr) + slot * 16 + i);
        }
    }
    for (size_t i = offsetof(FlowKey, port); i < sizeof(FlowKey); ++i) {
        offsets.push_back(i);
    }
    expect_hash_depends_on(base, offsets);
}

// Distinct keys, realistic mix: IPv4 in 198.18.0.0/15, IPv6 in 2001:db8::/32, TCP and UDP,
// ephemeral client ports, a handful of VLANs.
std::vector<FlowKey> random_distinct_keys(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::set<KeyBytes> seen;
    std::vector<FlowKey> keys;
    keys.reserve(n);
    while (keys.size() < n) {
        const bool v6 = rng() % 4 == 0;
        Ip6 a{};
        Ip6 b{};
        if (v6) {
            a = ip6({0x2001, 0x0db8, static_cast<uint16_t>(rng()), static_cast<uint16_t>(rng()), 0,
                     0, static_cast<uint16_t>(rng()), static_cast<uint16_t>(rng())});
            b = ip6({0x2001, 0x0db8, static_cast<uint16_t>(rng()), 0, 0, 0, 0,
                     static_cast<uint16_t>(rng() % 64)});
        } else {
            const uint32_t ra = rng();
            const uint32_t rb = rng();
            a = widen(ip4(198, static_cast<uint8_t>(18 + (ra & 1)), static_cast<uint8_t>(ra >> 8),
                          static_cast<uint8_t>(ra >> 16)));
            b = widen(ip4(198, static_cast<uint8_t>(18 + (rb & 1)), static_cast<uint8_t>(rb >> 8),
                          static_cast<uint8_t>(rb >> 16)));
        }
        const uint8_t proto = rng() % 3 == 0 ? ipproto::kUdp : ipproto::kTcp;
        const uint16_t sport = static_cast<uint16_t>(32768 + rng() % 28232);
        const uint16_t dports[] = {80, 443, 53, 22, 25, 8080, 3306, 5060};
        const uint16_t dport = dports[rng() % 8];
        const uint32_t vlan = rng() % 2 == 0 ? 0 : 1 + rng() % 16;
        FlowKey k;
        dp::make_flow_key(k, v6 ? 6 : 4, proto, vlan, a.data(), b.data(), sport, dport);
        if (seen.insert(bytes_of(k)).second) {
            keys.push_back(k);
        }
    }
    return keys;
}

// Keys that differ in few bits: one client, sequential source ports; and a /16 of clients
// talking to one server port.
std::vector<FlowKey> structured_keys(size_t n) {
    std::vector<FlowKey> keys;
    keys.reserve(n);
    for (size_t i = 0; keys.size() < n / 2; ++i) {
        FlowKey k;
        dp::make_flow_key(k, 4, ipproto::kTcp, 0, kV4A.data(), kV4C.data(),
                          static_cast<uint16_t>(10000 + i), 443);
        keys.push_back(k);
    }
    for (size_t i = 0; keys.size() < n; ++i) {
        const Ip4 client = ip4(198, 19, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i));
        FlowKey k;
        dp::make_flow_key(k, 4, ipproto::kTcp, 0, client.data(), kV4A.data(), 50000, 80);
        keys.push_back(k);
    }
    return keys;
}

size_t hash_collisions(const std::vector<FlowKey>& keys) {
    std::vector<uint32_t> hashes;
    hashes.reserve(keys.size());
    for (const FlowKey& k : keys) {
        hashes.push_back(khash(k));
    }
    std::sort(hashes.begin(), hashes.end());
    const auto unique_end = std::unique(hashes.begin(), hashes.end());
    return static_cast<size_t>(hashes.end() - unique_end);
}

// Largest bucket over 1024 buckets indexed by the low hash bits, as a multiple of the mean.
double worst_bucket_ratio(const std::vector<FlowKey>& keys, size_t* empty_buckets) {
    constexpr size_t kBuckets = 1024;
    std::vector<size_t> count(kBuckets, 0);
    for (const FlowKey& k : keys) {
        ++count[khash(k) % kBuckets];
    }
    const double mean = static_cast<double>(keys.size()) / kBuckets;
    *empty_buckets = static_cast<size_t>(std::count(count.begin(), count.end(), size_t{0}));
    return static_cast<double>(*std::max_element(count.begin(), count.end())) / mean;
}

TEST_P(FlowKeyHashKinds, HashHasFewCollisionsOverRandomKeys) {
    const std::vector<FlowKey> keys = random_distinct_keys(10000, 0x5eed);
    ASSERT_EQ(keys.size(), 10000u);
    EXPECT_LT(hash_collisions(keys), 10u);
}

// The worker hashes a burst's keys at once (FlowHasher::burst): the same values as one by one,
// for bursts of every length up to the worker's 32, IPv4 and IPv6 keys mixed.
TEST_P(FlowKeyHashKinds, BurstHashesEqualSingleHashes) {
    const std::vector<FlowKey> keys = random_distinct_keys(200, 0xb1a5);
    const dp::HashKey secret{0x0123456789abcdefull, 0xfedcba9876543210ull};
    const dp::FlowHasher h(secret, GetParam());
    for (unsigned n = 0; n <= 32; ++n) {
        const FlowKey* ptrs[32];
        uint32_t out[32];
        for (unsigned i = 0; i < n; ++i) {
            ptrs[i] = &keys[(n * 7 + i) % keys.size()];
            out[i] = 0xdeadbeef;
        }
        h.burst(ptrs, out, n);
        for (unsigned i = 0; i < n; ++i) {
            ASSERT_EQ(out[i], h(*ptrs[i])) << "burst of " << n << ", key " << i;
        }
    }
}

TEST_P(FlowKeyHashKinds, HashSpreadsRandomKeysOverBuckets) {
    const std::vector<FlowKey> keys = random_distinct_keys(10000, 0xb0c4e7);
    size_t empty = 0;
    const double ratio = worst_bucket_ratio(keys, &empty);
    EXPECT_LE(ratio, 3.0) << "fullest bucket holds " << ratio << "x the mean";
    RecordProperty("worst_bucket_ratio_x100", static_cast<int>(ratio * 100));
}

TEST_P(FlowKeyHashKinds, HashSpreadsStructuredKeysOverBuckets) {
    const std::vector<FlowKey> keys = structured_keys(10000);
    EXPECT_LT(hash_collisions(keys), 10u);
    size_t empty = 0;
    const double ratio = worst_bucket_ratio(keys, &empty);
    EXPECT_LE(ratio, 3.0) << "fullest bucket holds " << ratio << "x the mean";
}

// ===== Through the parser ===================================================================

struct Exchange {
    const char* name;
    Bytes request;
    Bytes reply;
};

std::vector<Exchange> exchanges() {
    const std::vector<VlanTag> qinq = {{.tpid = ether::kQinQ, .vid = 10},
                                       {.tpid = ether::kVlan, .vid = 20}};
    return {
        {"v4 tcp",
         ipv4_frame({.src = kV4A, .dst = kV4B},
                    tcp({.sport = 40000, .dport = 80, .flags = dp::tcp_flag::kSyn})),
         ipv4_frame({.src = kV4B, .dst = kV4A},
                    tcp({.sport = 80, .dport = 40000, .seq = 77, .ack = 0x10000002,
                         .flags = dp::tcp_flag::kSyn | dp::tcp_flag::kAck}))},
        {"v4 udp qinq padded",
         pad_to(ipv4_frame({.src = kV4C, .dst = kV4A, .proto = ipproto::kUdp},
                           udp({.sport = 53000, .dport = 53}, pattern(4)), qinq)),
         ipv4_frame({.src = kV4A, .dst = kV4C, .proto = ipproto::kUdp},
                    udp({.sport = 53, .dport = 53000}, pattern(60)), qinq)},
        {"v4 icmp echo",
         ipv4_frame({.src = kV4B, .dst = kV4C, .proto = ipproto::kIcmp},
                    icmp_echo(8, 0x77, 1, pattern(32))),
         ipv4_frame({.src = kV4C, .dst = kV4B, .proto = ipproto::kIcmp},
                    icmp_echo(0, 0x77, 1, pattern(32)))},
        {"v4 non-first fragments",
         ipv4_frame({.src = kV4A, .dst = kV4B, .proto = ipproto::kUdp, .frag_offset = 185},
                    pattern(100)),
         ipv4_frame({.src = kV4B, .dst = kV4A, .proto = ipproto::kUdp, .id = 9,
                     .frag_offset = 185},
                    pattern(100))},
        {"v6 tcp",
         ipv6_frame({.src = kV6C, .dst = kV6A},
                    tcp({.sport = 51515, .dport = 443}, text("client hello"))),
         ipv6_frame({.src = kV6A, .dst = kV6C}, tcp({.sport = 443, .dport = 51515}))},
        {"v6 udp vlan, ext headers on one side",
         ipv6_frame({.src = kV6A, .dst = kV6B, .next_header = ipproto::kHopByHop},
                    cat({ipv6_options_header(ipproto::kUdp, 0),
                         udp({.sport = 5353, .dport = 5354}, pattern(20))}),
                    {{.tpid = ether::kVlan, .vid = 99}}),
         ipv6_frame({.src = kV6B, .dst = kV6A, .next_header = ipproto::kUdp},
                    udp({.sport = 5354, .dport = 5353}, pattern(20)),
                    {{.tpid = ether::kVlan, .vid = 99}})},
        {"v6 icmpv6 echo",
         ipv6_frame({.src = kV6B, .dst = kV6C, .next_header = ipproto::kIcmpv6},
                    icmp_echo(128, 5, 6)),
         ipv6_frame({.src = kV6C, .dst = kV6B, .next_header = ipproto::kIcmpv6},
                    icmp_echo(129, 5, 6))},
    };
}

TEST_P(FlowKeyHashKinds, ParsedRequestAndReplyShareKeyAndHash) {
    for (const Exchange& x : exchanges()) {
        SCOPED_TRACE(x.name);
        const PacketMeta req = parse(x.request);
        const PacketMeta rep = parse(x.reply);
        ASSERT_EQ(req.kind, PacketKind::Ip);
        ASSERT_EQ(rep.kind, PacketKind::Ip);
        EXPECT_EQ(req.key, rep.key);
        EXPECT_EQ(bytes_of(req.key), bytes_of(rep.key));
        EXPECT_EQ(khash(req.key), khash(rep.key));
        EXPECT_NE(req.reversed, rep.reversed);
        EXPECT_EQ(req.key.tunnel, 0);
    }
}

TEST_P(FlowKeyHashKinds, ParsedKeysOfDifferentFlowsDiffer) {
    const PacketMeta a = parse(ipv4_frame({}, tcp({.sport = 40000, .dport = 80})));
    const PacketMeta b = parse(ipv4_frame({}, tcp({.sport = 40001, .dport = 80})));
    const PacketMeta c = parse(ipv4_frame({}, tcp({.sport = 40000, .dport = 80}),
                                          {{.tpid = ether::kVlan, .vid = 1}}));
    const PacketMeta d = parse(ipv4_frame({.proto = ipproto::kUdp},
                                          udp({.sport = 40000, .dport = 80})));
    ASSERT_EQ(a.kind, PacketKind::Ip);
    ASSERT_EQ(b.kind, PacketKind::Ip);
    ASSERT_EQ(c.kind, PacketKind::Ip);
    ASSERT_EQ(d.kind, PacketKind::Ip);
    EXPECT_NE(a.key, b.key);
    EXPECT_NE(a.key, c.key);
    EXPECT_NE(a.key, d.key);
    EXPECT_NE(khash(a.key), khash(b.key));
    EXPECT_NE(khash(a.key), khash(c.key));
    EXPECT_NE(khash(a.key), khash(d.key));
}

} // namespace

namespace l7gate::test {
namespace {

// The SipHash implementation (hash.hpp) against the paper's test vectors (SipHash-2-4, key
// 00..0f): the same code with one compression and three finalisation rounds is the flow hash.
TEST(SipHash, MatchesThePapersVectors) {
    dp::HashKey k;
    uint8_t kb[16];
    for (unsigned i = 0; i < 16; ++i) {
        kb[i] = static_cast<uint8_t>(i);
    }
    std::memcpy(&k.k0, kb, 8);
    std::memcpy(&k.k1, kb + 8, 8);
    uint8_t msg[15];
    for (unsigned i = 0; i < 15; ++i) {
        msg[i] = static_cast<uint8_t>(i);
    }
    EXPECT_EQ((dp::siphash_bytes<15, 2, 4>(msg, k)), 0xa129ca6149be45e5ull);
    EXPECT_EQ((dp::siphash_bytes<0, 2, 4>(msg, k)), 0x726fdb47dd0e0e31ull);
}

// The flow hash depends on the secret: the same key under two secrets hashes differently.
TEST_P(FlowKeyHashKinds, DependsOnTheSecret) {
    const FlowKey k = key_v4(kV4A, 40000, kV4B, 80, ipproto::kTcp);
    const dp::HashKey other{kTestSecret.k0 ^ 1, kTestSecret.k1};
    EXPECT_NE(khash(k), khash(k, other));
    const dp::HashKey other_k1{kTestSecret.k0, kTestSecret.k1 ^ (1ull << 63)};
    EXPECT_NE(khash(k), khash(k, other_k1));
    const FlowKey k6 = key_v6(kV6A, 40000, kV6C, 443, ipproto::kTcp);
    EXPECT_NE(khash(k6), khash(k6, other));
}

} // namespace
} // namespace l7gate::test

// The shaper's per-host key (issue 18, point 10): `per: host` buckets and queues are found by
// a 64-bit key of (local address, shaper, port). It was two CRC32C of the address under the
// seeds s and ~s: CRC is affine over GF(2), crc(s, a ^ d) = crc(s, a) ^ B(d) with B linear and
// the same for every seed, so both halves moved together (32 bits of entropy) and anyone
// could solve B(d) = 0 for an address sharing a victim's key, hence its bucket and queue. An
// IPv6 attacker with a /64 of its own picks the low 64 bits: 32 equations, 64 unknowns.
namespace l7gate::test {
namespace {

uint64_t old_crc_host_key(unsigned shaper, unsigned port, const uint8_t (&addr)[16]) {
    const uint32_t seed = shaper << 8 | port;
    const uint64_t hi = dp::crc32c_key<16>(addr, seed);
    const uint64_t lo = dp::crc32c_key<16>(addr, ~seed);
    return (hi << 32 | lo) | 1u;
}

// The low 64 bits x of `attacker` (its /64 kept) such that the CRC part of the key, seed 0
// (B, linear), of attacker equals the victim's: Gaussian elimination over GF(2).
bool solve_collision(const uint8_t (&victim)[16], uint8_t (&attacker)[16]) {
    auto b = [](const uint8_t (&a)[16]) { return dp::crc32c_key<16>(a, 0); };
    uint8_t base[16];
    std::memcpy(base, attacker, 16);
    std::memset(base + 8, 0, 8);
    const uint32_t target = b(victim) ^ b(base);  // B(x in the low bits) must equal this
    // Rows: (image of the combination, the combination of low bits).
    std::vector<std::pair<uint32_t, uint64_t>> basis;  // pivot: highest set bit of the image
    uint32_t t = target;
    uint64_t sol = 0;
    for (unsigned bit = 0; bit < 64; ++bit) {
        uint8_t e[16] = {};
        e[8 + bit / 8] = static_cast<uint8_t>(1u << (bit % 8));
        uint32_t v = b(e);
        uint64_t c = uint64_t{1} << bit;
        for (const auto& [bv, bc] : basis) {
            if ((v ^ bv) < v) {
                v ^= bv;
                c ^= bc;
            }
        }
        if (v != 0) {
            basis.emplace_back(v, c);
            std::sort(basis.begin(), basis.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
        }
    }
    for (const auto& [bv, bc] : basis) {
        if ((t ^ bv) < t) {
            t ^= bv;
            sol ^= bc;
        }
    }
    if (t != 0) {
        return false;
    }
    std::memcpy(attacker + 8, &sol, 8);
    return true;
}

TEST(ShaperHostKey, AddressesComputedToShareAVictimsCrcKeyGetTheirOwnKey) {
    const uint8_t victim[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5};
    dp::HashKey secret;
    ASSERT_TRUE(dp::random_hash_key(secret));
    unsigned solved = 0;
    unsigned collided = 0;
    for (uint8_t net = 1; net <= 16; ++net) {
        uint8_t attacker[16] = {0x20, 0x01, 0x0d, 0xb8, 0xff, net, 0, 1};
        ASSERT_TRUE(solve_collision(victim, attacker));
        ASSERT_NE(std::memcmp(attacker, victim, 16), 0);
        for (unsigned shaper = 0; shaper < 3; ++shaper) {
            for (unsigned port = 0; port < 2; ++port) {
                // The computed address shares the victim's key under the old construction...
                solved += old_crc_host_key(shaper, port, attacker) == old_crc_host_key(shaper, port, victim) ? 1 : 0;
                // ...and not under the keyed one.
                collided += dp::shaper_host_key(secret, shaper, port, attacker) ==
                                    dp::shaper_host_key(secret, shaper, port, victim)
                                ? 1
                                : 0;
            }
        }
    }
    std::printf("robustness: shaper per-host key: 16 IPv6 addresses computed to share a victim's key: "
                "%u of 96 (shaper, port) keys shared under the CRC construction, %u under the keyed hash\n",
                solved, collided);
    EXPECT_EQ(solved, 96u) << "the attack on the CRC construction is meant to work";
    EXPECT_EQ(collided, 0u) << "computed addresses share the victim's per-host bucket";
}

TEST(ShaperHostKey, KeyedNonZeroAndSeparatesShapersAndPorts) {
    const uint8_t a[16] = {198, 18, 0, 1};
    const dp::HashKey k1{1, 2};
    const dp::HashKey k2{3, 4};
    EXPECT_NE(dp::shaper_host_key(k1, 0, 0, a), 0u);
    EXPECT_EQ(dp::shaper_host_key(k1, 2, 1, a), dp::shaper_host_key(k1, 2, 1, a));
    EXPECT_NE(dp::shaper_host_key(k1, 2, 1, a), dp::shaper_host_key(k2, 2, 1, a)) << "the secret is ignored";
    EXPECT_NE(dp::shaper_host_key(k1, 2, 1, a), dp::shaper_host_key(k1, 1, 2, a));
    EXPECT_NE(dp::shaper_host_key(k1, 2, 1, a), dp::shaper_host_key(k1, 2, 0, a));
}

} // namespace
} // namespace l7gate::test
