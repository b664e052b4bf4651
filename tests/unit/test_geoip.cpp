#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "control/policy/geoip.hpp"

namespace l7gate::test {
namespace {

using ctl::GeoIpDb;
using ctl::GeoNet;

// tests/data/geoip-test.mmdb, written by tools/gen_geoip.pl; "" when L7GATE_TEST_DATA is unset.
std::string fixture() {
    const char* dir = std::getenv("L7GATE_TEST_DATA");
    if (dir == nullptr || *dir == '\0') {
        return {};
    }
    return std::string(dir) + "/geoip-test.mmdb";
}

#define REQUIRE_FIXTURE(path)                                                                   \
    std::string path = fixture();                                                               \
    if (path.empty()) {                                                                         \
        GTEST_SKIP() << "L7GATE_TEST_DATA is not set (it must name the tests/data directory)"; \
    }

std::string temp_path(const std::string& name) {
    return testing::TempDir() + "l7gate-geoip-" + std::to_string(getpid()) + "-" + name;
}

void write_file(const std::string& path, const std::string& bytes) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// Every network for_each_network reports; *ok (when given) is its return value.
std::vector<GeoNet> walk(const GeoIpDb& db, bool* ok = nullptr) {
    std::vector<GeoNet> nets;
    bool done = db.for_each_network([&](const GeoNet& n) { nets.push_back(n); });
    if (ok != nullptr) {
        *ok = done;
    }
    return nets;
}

// Parses an address the way the walker reports it: version plus the first 4 or 16 bytes.
bool parse(const std::string& ip, uint8_t& version, uint8_t addr[16]) {
    std::memset(addr, 0, 16);
    if (inet_pton(AF_INET, ip.c_str(), addr) == 1) {
        version = 4;
        return true;
    }
    if (inet_pton(AF_INET6, ip.c_str(), addr) == 1) {
        version = 6;
        return true;
    }
    return false;
}

bool prefix_match(const uint8_t* a, const uint8_t* b, unsigned bits) {
    for (unsigned i = 0; i < bits; ++i) {
        uint8_t m = static_cast<uint8_t>(0x80u >> (i % 8));
        if ((a[i / 8] & m) != (b[i / 8] & m)) {
            return false;
        }
    }
    return true;
}

bool contains(const GeoNet& n, uint8_t version, const uint8_t* addr) {
    return n.ip_version == version && prefix_match(n.addr, addr, n.prefix_len);
}

std::string net_str(const GeoNet& n) {
    char b[INET6_ADDRSTRLEN];
    inet_ntop(n.ip_version == 4 ? AF_INET : AF_INET6, n.addr, b, sizeof(b));
    return std::string(b) + "/" + std::to_string(n.prefix_len);
}

const GeoNet* find_net(const std::vector<GeoNet>& nets, const std::string& cidr) {
    for (const auto& n : nets) {
        if (net_str(n) == cidr) {
            return &n;
        }
    }
    return nullptr;
}

struct Expect {
    const char* ip;
    bool found;
    const char* country;
    const char* continent;
};

// Probes covering every network of tools/gen_geoip.pl (first, inner and last addresses), the
// IPv4 aliases in the IPv6 tree, and addresses the database does not hold.
const Expect kProbes[] = {
    {"198.18.0.0", true, "IT", "EU"},
    {"198.18.0.77", true, "IT", "EU"},
    {"198.18.0.255", true, "IT", "EU"},
    {"198.18.1.0", true, "CN", "AS"},
    {"198.18.1.200", true, "CN", "AS"},
    {"198.18.2.0", true, "DE", "EU"},
    {"198.18.3.255", true, "DE", "EU"},
    {"198.18.4.0", false, "", ""},
    {"198.18.255.255", false, "", ""},
    {"198.19.0.0", true, "US", "NA"},
    {"198.19.1.1", true, "US", "NA"},
    {"198.19.64.9", true, "US", "NA"},
    {"198.19.127.255", true, "US", "NA"},
    {"198.19.128.0", true, "JP", "AS"},
    {"198.19.200.1", true, "JP", "AS"},
    {"198.19.255.255", true, "JP", "AS"},
    {"198.20.0.1", false, "", ""},
    {"198.17.255.255", false, "", ""},
    {"203.0.113.0", true, "BR", "SA"},
    {"203.0.113.99", true, "BR", "SA"},
    {"203.0.113.255", true, "BR", "SA"},
    {"203.0.114.0", false, "", ""},
    {"10.0.0.1", false, "", ""},
    {"0.0.0.0", false, "", ""},
    {"255.255.255.255", false, "", ""},
    {"2001:db8:1::", true, "FR", "EU"},
    {"2001:db8:1::1", true, "FR", "EU"},
    {"2001:db8:1:ffff:ffff:ffff:ffff:ffff", true, "FR", "EU"},
    {"2001:db8:2::5", true, "CN", "AS"},
    {"2001:db8:3:abcd::1", true, "AU", "OC"},
    // A record with a continent and no country.
    {"2001:db8:4::1", true, "", "EU"},
    {"2001:db8::1", false, "", ""},
    {"2001:db8:5::1", false, "", ""},
    {"2001:db9::1", false, "", ""},
    {"::1", false, "", ""},
    {"fe80::1", false, "", ""},
    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false, "", ""},
};

TEST(GeoIp, OpensTheFixture) {
    REQUIRE_FIXTURE(path);
    GeoIpDb db;
    EXPECT_FALSE(db.is_open());
    EXPECT_EQ(db.database_type(), "");
    ASSERT_EQ(db.open(path), "");
    EXPECT_TRUE(db.is_open());
    EXPECT_EQ(db.database_type(), "GeoLite2-Country");
}

TEST(GeoIp, LookupsGiveTheScriptsCodes) {
    REQUIRE_FIXTURE(path);
    GeoIpDb db;
    ASSERT_EQ(db.open(path), "");
    for (const auto& p : kProbes) {
        std::string country = "stale";
        std::string continent = "stale";
        EXPECT_EQ(db.lookup(p.ip, country, continent), p.found) << p.ip;
        EXPECT_EQ(country, p.country) << p.ip;
        EXPECT_EQ(continent, p.continent) << p.ip;
    }
}

TEST(GeoIp, LookupFollowsMaxMindsIpv4Aliases) {
    REQUIRE_FIXTURE(path);
    GeoIpDb db;
    ASSERT_EQ(db.open(path), "");
    // ::ffff:0:0/96 (mapped), 2002::/16 (6to4: 2002:c613:c801:: is 198.19.200.1),
    // 2001::/32 (Teredo server address in bits 32..63) and ::/96 itself.
    for (const char* ip : {"::ffff:198.19.200.1", "2002:c613:c801::1", "2001:0:c613:c801::1",
                           "::198.19.200.1"}) {
        std::string country;
        std::string continent;
        ASSERT_TRUE(db.lookup(ip, country, continent)) << ip;
        EXPECT_EQ(country, "JP") << ip;
        EXPECT_EQ(continent, "AS") << ip;
    }
}

TEST(GeoIp, LookupRejectsWhatIsNotAnAddress) {
    REQUIRE_FIXTURE(path);
    GeoIpDb db;
    std::string country;
    std::string continent;
    EXPECT_FALSE(db.lookup("198.19.200.1", country, continent));  // nothing open yet
    ASSERT_EQ(db.open(path), "");
    for (const char* ip : {"", "not-an-ip", "198.19.200.1/24", "198.19.200", "2001:db8:::1"}) {
        EXPECT_FALSE(db.lookup(ip, country, continent)) << ip;
        EXPECT_EQ(country, "");
        EXPECT_EQ(continent, "");
    }
}

TEST(GeoIp, WalkReportsEveryNetworkOfTheScript) {
    REQUIRE_FIXTURE(path);
    GeoIpDb db;
    ASSERT_EQ(db.open(path), "");
    bool ok = false;
    std::vector<GeoNet> nets = walk(db, &ok);
    EXPECT_TRUE(ok);

    // The networks the writer keeps whole, with their codes.
    struct Want {
        const char* cidr;
        const char* country;
        const char* continent;
    };
    const Want want[] = {
        {"198.18.0.0/24", "IT", "EU"},       {"198.18.1.0/24", "CN", "AS"},
        {"198.18.2.0/23", "DE", "EU"},       {"198.19.128.0/17", "JP", "AS"},
        {"203.0.113.0/24", "BR", "SA"},      {"2001:db8:1::/48", "FR", "EU"},
        {"2001:db8:2::/48", "CN", "AS"},     {"2001:db8:3::/48", "AU", "OC"},
        {"2001:db8:4::/48", "", "EU"},
    };
    for (const auto& w : want) {
        const GeoNet* n = find_net(nets, w.cidr);
        ASSERT_NE(n, nullptr) << w.cidr << " not reported";
        EXPECT_EQ(n->country, w.country) << w.cidr;
        EXPECT_EQ(n->continent, w.continent) << w.cidr;
    }

    // 198.19.0.0/16 US with the JP /17 inside it: whatever pieces the writer split the /16
    // into, the US ones cover exactly 198.19.0.0/17.
    uint64_t us_addrs = 0;
    uint8_t v = 0;
    uint8_t lo[16];
    ASSERT_TRUE(parse("198.19.0.0", v, lo));
    for (const auto& n : nets) {
        if (n.country == "US") {
            EXPECT_EQ(n.ip_version, 4);
            EXPECT_EQ(n.continent, "NA");
            EXPECT_GE(n.prefix_len, 17) << net_str(n);
            EXPECT_TRUE(prefix_match(n.addr, lo, 17)) << net_str(n);
            us_addrs += uint64_t{1} << (32 - n.prefix_len);
        }
    }
    EXPECT_EQ(us_addrs, uint64_t{1} << 15);

    // Nothing else: every IPv4 address the script inserted, counted once.
    uint64_t v4_addrs = 0;
    size_t v6_nets = 0;
    for (const auto& n : nets) {
        if (n.ip_version == 4) {
            ASSERT_LE(n.prefix_len, 32);
            v4_addrs += uint64_t{1} << (32 - n.prefix_len);
        } else {
            ASSERT_EQ(n.ip_version, 6);
            ASSERT_LE(n.prefix_len, 128);
            ++v6_nets;
        }
    }
    EXPECT_EQ(v4_addrs, 256u + 256u + 512u + 65536u + 256u);
    EXPECT_EQ(v6_nets, 4u);
}

TEST(GeoIp, WalkReportsIpv4OnceAndNoAliases) {
    REQUIRE_FIXTURE(path);
    GeoIpDb db;
    ASSERT_EQ(db.open(path), "");
    std::vector<GeoNet> nets = walk(db);
    ASSERT_FALSE(nets.empty());

    std::set<std::tuple<uint8_t, std::string, uint8_t>> keys;
    for (const auto& n : nets) {
        // Host bits are zero.
        uint8_t bits = n.ip_version == 4 ? 32 : 128;
        for (unsigned i = n.prefix_len; i < bits; ++i) {
            ASSERT_EQ(n.addr[i / 8] & (0x80u >> (i % 8)), 0u) << net_str(n);
        }
        if (n.ip_version == 4) {
            for (unsigned i = 4; i < 16; ++i) {
                ASSERT_EQ(n.addr[i], 0u) << net_str(n);
            }
        } else {
            // Only 2001:db8::/32 was inserted as IPv6: an alias (::ffff:0:0/96, 2001::/32,
            // 2002::/16) or ::/96 reported as IPv6 would fall outside it.
            uint8_t v = 0;
            uint8_t doc[16];
            ASSERT_TRUE(parse("2001:db8::", v, doc));
            EXPECT_GE(n.prefix_len, 32) << net_str(n);
            EXPECT_TRUE(prefix_match(n.addr, doc, 32)) << net_str(n);
        }
        auto key = std::make_tuple(n.ip_version,
                                   std::string(reinterpret_cast<const char*>(n.addr), 16),
                                   n.prefix_len);
        EXPECT_TRUE(keys.insert(key).second) << net_str(n) << " reported twice";
    }

    // No two reported networks overlap.
    for (size_t i = 0; i < nets.size(); ++i) {
        for (size_t j = i + 1; j < nets.size(); ++j) {
            const GeoNet& a = nets[i];
            const GeoNet& b = nets[j];
            if (a.ip_version != b.ip_version) {
                continue;
            }
            unsigned common = a.prefix_len < b.prefix_len ? a.prefix_len : b.prefix_len;
            EXPECT_FALSE(prefix_match(a.addr, b.addr, common))
                << net_str(a) << " overlaps " << net_str(b);
        }
    }
}

TEST(GeoIp, EveryProbeIsCoveredByExactlyOneNetworkMatchingTheLookup) {
    REQUIRE_FIXTURE(path);
    GeoIpDb db;
    ASSERT_EQ(db.open(path), "");
    std::vector<GeoNet> nets = walk(db);

    std::vector<std::string> probes;
    for (const auto& p : kProbes) {
        probes.push_back(p.ip);
    }
    // And a deterministic spread over the whole of 198.18.0.0/15 and 2001:db8::/44.
    std::mt19937 rng(7);
    for (int i = 0; i < 500; ++i) {
        uint32_t a = (198u << 24) | (18u << 16) | (rng() & 0x1ffffu);
        char b[INET_ADDRSTRLEN];
        uint32_t be = htonl(a);
        inet_ntop(AF_INET, &be, b, sizeof(b));
        probes.push_back(b);
        char b6[64];
        std::snprintf(b6, sizeof(b6), "2001:db8:%x:%x::%x", static_cast<unsigned>(rng() % 8),
                      static_cast<unsigned>(rng() & 0xffff), static_cast<unsigned>(rng() & 0xffff));
        probes.push_back(b6);
    }

    for (const auto& ip : probes) {
        uint8_t v = 0;
        uint8_t addr[16];
        ASSERT_TRUE(parse(ip, v, addr)) << ip;
        std::string country;
        std::string continent;
        bool found = db.lookup(ip, country, continent);
        std::vector<const GeoNet*> hits;
        for (const auto& n : nets) {
            if (contains(n, v, addr)) {
                hits.push_back(&n);
            }
        }
        if (!found) {
            EXPECT_TRUE(hits.empty()) << ip << " not in the database but in " << net_str(*hits[0]);
            continue;
        }
        ASSERT_EQ(hits.size(), 1u) << ip;
        EXPECT_EQ(hits[0]->country, country) << ip << " in " << net_str(*hits[0]);
        EXPECT_EQ(hits[0]->continent, continent) << ip << " in " << net_str(*hits[0]);
    }
}

TEST(GeoIp, OpenRejectsWhatIsNotADatabase) {
    REQUIRE_FIXTURE(path);
    const std::string empty = temp_path("empty.mmdb");
    const std::string garbage = temp_path("garbage.mmdb");
    const std::string text = temp_path("text.mmdb");
    write_file(empty, "");
    std::string junk;
    std::mt19937 rng(1);
    for (int i = 0; i < 8192; ++i) {
        junk += static_cast<char>(rng() & 0xff);
    }
    write_file(garbage, junk);
    write_file(text, "country: IT\n");
    const std::string missing = temp_path("does-not-exist.mmdb");

    for (const auto& bad : {missing, empty, garbage, text}) {
        GeoIpDb db;
        // A failed open also drops the database opened before it.
        ASSERT_EQ(db.open(path), "");
        std::string err = db.open(bad);
        EXPECT_FALSE(err.empty()) << bad;
        EXPECT_NE(err.find(bad), std::string::npos) << err;
        EXPECT_EQ(err.find('\n'), std::string::npos) << err;
        EXPECT_FALSE(db.is_open()) << bad;
        EXPECT_EQ(db.database_type(), "");
        std::string country;
        std::string continent;
        EXPECT_FALSE(db.lookup("198.19.200.1", country, continent));
        bool ok = true;
        EXPECT_TRUE(walk(db, &ok).empty());
        EXPECT_FALSE(ok);
        // And the object is usable again.
        EXPECT_EQ(db.open(path), "");
        EXPECT_TRUE(db.is_open());
    }
    std::remove(empty.c_str());
    std::remove(garbage.c_str());
    std::remove(text.c_str());
}

TEST(GeoIp, MovedDatabaseStaysUsable) {
    REQUIRE_FIXTURE(path);
    GeoIpDb a;
    ASSERT_EQ(a.open(path), "");
    GeoIpDb b(std::move(a));
    std::string country;
    std::string continent;
    ASSERT_TRUE(b.lookup("2001:db8:2::5", country, continent));
    EXPECT_EQ(country, "CN");
    GeoIpDb c;
    c = std::move(b);
    EXPECT_EQ(walk(c).size(), walk(c).size());
    ASSERT_TRUE(c.lookup("198.19.1.1", country, continent));
    EXPECT_EQ(country, "US");
    EXPECT_EQ(continent, "NA");
}

// A corrupt search tree must end the walk (no crash, no endless loop) and never report more
// networks than a tree of that many nodes can hold.
TEST(GeoIp, CorruptSearchTreeEndsTheWalk) {
    REQUIRE_FIXTURE(path);
    const std::string good = read_file(path);
    ASSERT_FALSE(good.empty());
    // The tree is followed by 16 zero bytes (the data section separator).
    size_t tree_end = good.find(std::string(16, '\0'));
    ASSERT_NE(tree_end, std::string::npos);
    ASSERT_EQ(tree_end % 6, 0u);  // 24-bit records, 6 bytes a node
    const size_t node_count = tree_end / 6;
    const std::string bad = temp_path("corrupt.mmdb");

    std::mt19937 rng(42);
    for (int round = 0; round < 300; ++round) {
        std::string bytes = good;
        int flips = 1 + static_cast<int>(rng() % 4);
        for (int i = 0; i < flips; ++i) {
            bytes[rng() % tree_end] = static_cast<char>(rng() & 0xff);
        }
        if (round == 0) {
            // Node 0's left record points at node 0: a cycle.
            bytes[0] = bytes[1] = bytes[2] = 0;
        } else if (round == 1) {
            // Node 0's left record points far past the data section.
            bytes[0] = bytes[1] = bytes[2] = static_cast<char>(0xff);
        }
        write_file(bad, bytes);
        GeoIpDb db;
        if (!db.open(bad).empty()) {
            continue;
        }
        size_t count = 0;
        // Either result is right here: a flipped byte may well leave a valid tree.
        (void)db.for_each_network([&](const GeoNet& n) {
            ++count;
            EXPECT_TRUE(n.ip_version == 4 || n.ip_version == 6);
            EXPECT_LE(n.prefix_len, n.ip_version == 4 ? 32 : 128);
        });
        EXPECT_LE(count, 2 * node_count) << "round " << round;
        std::string country;
        std::string continent;
        db.lookup("198.19.200.1", country, continent);
        db.lookup("2001:db8:2::5", country, continent);
    }
    std::remove(bad.c_str());
}

// ---- Hand-built databases, for what tools/gen_geoip.pl does not produce: an IPv4 tree and
// an IPv6 tree without an IPv4 subtree. Encoding per the MaxMind DB spec 2.0.

std::string enc_ctrl(unsigned type, size_t size) {
    std::string s;
    if (type <= 7) {
        s += static_cast<char>((type << 5) | size);
    } else {
        s += static_cast<char>(size);
        s += static_cast<char>(type - 7);
    }
    return s;
}

std::string enc_str(const std::string& v) {
    return enc_ctrl(2, v.size()) + v;  // all strings here are shorter than 29 bytes
}

std::string enc_uint(unsigned type, uint64_t v) {
    std::string be;
    while (v != 0) {
        be.insert(be.begin(), static_cast<char>(v & 0xff));
        v >>= 8;
    }
    return enc_ctrl(type, be.size()) + be;
}

std::string enc_map(const std::vector<std::pair<std::string, std::string>>& kv) {
    std::string s = enc_ctrl(7, kv.size());
    for (const auto& [k, v] : kv) {
        s += enc_str(k) + v;
    }
    return s;
}

std::string geo_record(const std::string& country, const std::string& continent) {
    std::vector<std::pair<std::string, std::string>> kv;
    kv.emplace_back("continent", enc_map({{"code", enc_str(continent)}}));
    if (!country.empty()) {
        kv.emplace_back("country", enc_map({{"iso_code", enc_str(country)}}));
    }
    return enc_map(kv);
}

// nodes: {left, right} record values (24-bit).
std::string build_mmdb(unsigned ip_version, const std::vector<std::pair<uint32_t, uint32_t>>& nodes,
                       const std::string& data) {
    std::string s;
    auto put24 = [&](uint32_t v) {
        s += static_cast<char>((v >> 16) & 0xff);
        s += static_cast<char>((v >> 8) & 0xff);
        s += static_cast<char>(v & 0xff);
    };
    for (const auto& [l, r] : nodes) {
        put24(l);
        put24(r);
    }
    s += std::string(16, '\0');
    s += data;
    s += "\xab\xcd\xef" "MaxMind.com";
    s += enc_map({
        {"binary_format_major_version", enc_uint(5, 2)},
        {"binary_format_minor_version", enc_uint(5, 0)},
        {"build_epoch", enc_uint(9, 1704067200)},  // libmaxminddb refuses 0
        {"database_type", enc_str("l7gate-Test")},
        {"description", enc_map({})},
        {"ip_version", enc_uint(5, ip_version)},
        {"languages", enc_ctrl(11, 0)},
        {"node_count", enc_uint(6, nodes.size())},
        {"record_size", enc_uint(5, 24)},
    });
    return s;
}

TEST(GeoIp, WalksAnIpv4Database) {
    // 0.0.0.0/1 IT, 128.0.0.0/2 continent EU only, 192.0.0.0/2 empty.
    std::string d0 = geo_record("IT", "EU");
    std::string d1 = geo_record("", "EU");
    const uint32_t n = 2;
    const uint32_t rec0 = n + 16;
    const uint32_t rec1 = n + 16 + static_cast<uint32_t>(d0.size());
    const std::string path = temp_path("v4.mmdb");
    write_file(path, build_mmdb(4, {{rec0, 1}, {rec1, n}}, d0 + d1));

    GeoIpDb db;
    ASSERT_EQ(db.open(path), "");
    EXPECT_EQ(db.database_type(), "l7gate-Test");
    bool ok = false;
    std::vector<GeoNet> nets = walk(db, &ok);
    EXPECT_TRUE(ok);
    ASSERT_EQ(nets.size(), 2u);
    EXPECT_EQ(nets[0].ip_version, 4);
    EXPECT_EQ(net_str(nets[0]), "0.0.0.0/1");
    EXPECT_EQ(nets[0].country, "IT");
    EXPECT_EQ(nets[0].continent, "EU");
    EXPECT_EQ(nets[1].ip_version, 4);
    EXPECT_EQ(net_str(nets[1]), "128.0.0.0/2");
    EXPECT_EQ(nets[1].country, "");
    EXPECT_EQ(nets[1].continent, "EU");

    std::string country;
    std::string continent;
    EXPECT_TRUE(db.lookup("10.1.2.3", country, continent));
    EXPECT_EQ(country, "IT");
    EXPECT_TRUE(db.lookup("150.1.2.3", country, continent));
    EXPECT_EQ(country, "");
    EXPECT_EQ(continent, "EU");
    EXPECT_FALSE(db.lookup("200.1.2.3", country, continent));
    EXPECT_FALSE(db.lookup("2001:db8::1", country, continent));  // IPv6 in an IPv4 database
    std::remove(path.c_str());
}

TEST(GeoIp, Ipv6DatabaseWithoutIpv4SubtreeReportsIpv6) {
    // ::/1 FR (which holds all of ::/96), 8000::/1 empty.
    std::string d0 = geo_record("FR", "EU");
    const uint32_t n = 1;
    const std::string path = temp_path("v6.mmdb");
    write_file(path, build_mmdb(6, {{n + 16, n}}, d0));

    GeoIpDb db;
    ASSERT_EQ(db.open(path), "");
    bool ok = false;
    std::vector<GeoNet> nets = walk(db, &ok);
    EXPECT_TRUE(ok);
    ASSERT_EQ(nets.size(), 1u);
    EXPECT_EQ(nets[0].ip_version, 6);
    EXPECT_EQ(net_str(nets[0]), "::/1");
    EXPECT_EQ(nets[0].country, "FR");
    std::remove(path.c_str());
}

TEST(GeoIp, HandBuiltCorruptTreesEndTheWalk) {
    std::string d0 = geo_record("IT", "EU");
    struct Case {
        const char* what;
        std::vector<std::pair<uint32_t, uint32_t>> nodes;
        size_t max_nets;
    };
    const uint32_t n = 3;
    const uint32_t data = n + 16;
    const Case cases[] = {
        // Nodes 1 and 2 point at each other, next to good data records.
        {"cycle", {{1, data}, {2, data}, {1, data}}, 3},
        // Node 1 points at itself on both sides.
        {"self loop", {{1, n}, {1, 1}, {n, n}}, 0},
        // A record back at the root (libmaxminddb calls it invalid).
        {"root", {{1, data}, {0, data}, {n, n}}, 2},
        // A record inside the 16-byte separator before the data section.
        {"separator", {{n + 3, 1}, {data, data}, {n, n}}, 0},
        // A record past the data section.
        {"past the data", {{data, 1}, {data, 0xfffff0}, {n, n}}, 2},
        // A data record that does not decode: a map whose first key is not a string.
        {"bad data", {{1, n}, {data + static_cast<uint32_t>(d0.size()), n}, {n, n}}, 0},
    };
    for (const auto& c : cases) {
        const std::string path = temp_path("hand-corrupt.mmdb");
        write_file(path, build_mmdb(4, c.nodes, d0 + "\xe1\xa1\x01"));
        GeoIpDb db;
        std::string err = db.open(path);
        std::remove(path.c_str());  // the mapping stays valid
        if (!err.empty()) {
            continue;  // libmaxminddb may reject it up front, which is just as good
        }
        bool ok = true;
        EXPECT_LE(walk(db, &ok).size(), c.max_nets) << c.what;
        EXPECT_FALSE(ok) << c.what;
        std::string country;
        std::string continent;
        db.lookup("1.2.3.4", country, continent);
        db.lookup("200.2.3.4", country, continent);
        if (std::string(c.what) == "bad data") {
            EXPECT_FALSE(db.lookup("1.2.3.4", country, continent));  // 0.0.0.0/2
        }
    }
}

// A deep IPv4 tree: one path of 32 nodes down to 255.255.255.255/32, plus a node below the
// last bit, which no lookup can reach and which ends the walk.
TEST(GeoIp, DeepestLeafAndTooDeepNode) {
    std::string d0 = geo_record("JP", "AS");
    for (bool too_deep : {false, true}) {
        std::vector<std::pair<uint32_t, uint32_t>> nodes;
        const uint32_t n = too_deep ? 33 : 32;
        for (uint32_t i = 0; i < 32; ++i) {
            uint32_t right = i + 1 < 32 ? i + 1 : (too_deep ? 32 : n + 16);
            nodes.emplace_back(n, right);
        }
        if (too_deep) {
            nodes.emplace_back(n + 16, n + 16);
        }
        const std::string path = temp_path("deep.mmdb");
        write_file(path, build_mmdb(4, nodes, d0));
        GeoIpDb db;
        ASSERT_EQ(db.open(path), "");
        bool ok = !too_deep;
        std::vector<GeoNet> nets = walk(db, &ok);
        EXPECT_EQ(ok, !too_deep);
        if (too_deep) {
            EXPECT_TRUE(nets.empty());
        } else {
            ASSERT_EQ(nets.size(), 1u);
            EXPECT_EQ(net_str(nets[0]), "255.255.255.255/32");
            EXPECT_EQ(nets[0].country, "JP");
        }
        std::remove(path.c_str());
    }
}

} // namespace
} // namespace l7gate::test
