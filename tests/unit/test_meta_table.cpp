#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "dataplane/hash.hpp"
#include "dataplane/meta_table.hpp"

namespace l7gate::test {
namespace {

dp::FlowMeta value(const std::string& host, uint8_t ja3 = 0, uint16_t version = 0) {
    dp::FlowMeta m;
    std::memset(&m, 0, sizeof(m));
    std::memcpy(m.host, host.data(), host.size() < sizeof(m.host) - 1 ? host.size() : sizeof(m.host) - 1);
    m.ja3c[0] = ja3;
    m.tls_version = version;
    return m;
}

// Hostnames a sender picks so that they share one index slot of a 128-record table (256
// slots) under the table's previous hash, a CRC32C with a fixed seed: each intern() of such a
// name would walk a probe chain as long as the names before it. With the keyed hash they
// scatter like any names.
TEST(MetaTable, NamesCollidingUnderTheOldFixedHashScatter) {
    auto old_slot = [](const dp::FlowMeta& v) {
        return dp::crc32c_key<dp::kFlowMetaValueBytes>(&v, 0x6d657461u) & 255u;
    };
    std::vector<dp::FlowMeta> names;
    const uint32_t target = old_slot(value("h0.example.com"));
    for (unsigned i = 0; names.size() < 64; ++i) {
        char name[32];
        std::snprintf(name, sizeof(name), "h%u.example.com", i);
        const dp::FlowMeta v = value(name);
        if (old_slot(v) == target) {
            names.push_back(v);
        }
    }
    dp::MetaTable t;
    ASSERT_TRUE(t.init(128, -1, dp::HashKey{3, 4}));
    std::map<uint32_t, unsigned> per_slot;
    for (const dp::FlowMeta& v : names) {
        per_slot[t.hash(v) & 255u] += 1;
    }
    unsigned worst = 0;
    for (const auto& [slot, n] : per_slot) {
        worst = n > worst ? n : worst;
    }
    EXPECT_GT(per_slot.size(), 40u);  // 64 random slots of 256: about 56 distinct
    EXPECT_LE(worst, 4u);
    for (const dp::FlowMeta& v : names) {
        ASSERT_NE(t.intern(v), dp::MetaTable::kNone);
    }
    EXPECT_EQ(t.in_use(), 64u);
}

TEST(MetaTable, FlowsWithTheSameMetadataShareOneRecord) {
    dp::MetaTable t;
    ASSERT_TRUE(t.init(64, -1));
    const uint32_t a = t.intern(value("www.example.com", 1, 0x0303));
    const uint32_t b = t.intern(value("www.example.com", 1, 0x0303));
    ASSERT_NE(a, dp::MetaTable::kNone);
    EXPECT_EQ(a, b);
    EXPECT_EQ(t.in_use(), 1u);
    EXPECT_EQ(t.shared(), 1u);
    EXPECT_STREQ(t.at(a).host, "www.example.com");
    EXPECT_EQ(t.at(a).tls_version, 0x0303);
    // Any field that differs makes another record.
    const uint32_t c = t.intern(value("www.example.com", 2, 0x0303));
    const uint32_t d = t.intern(value("www.example.com", 1, 0x0304));
    const uint32_t e = t.intern(value("www.example.org", 1, 0x0303));
    EXPECT_NE(c, a);
    EXPECT_NE(d, a);
    EXPECT_NE(e, a);
    EXPECT_NE(c, d);
    EXPECT_EQ(t.in_use(), 4u);
    // The record stays while a flow holds it.
    t.release(a);
    EXPECT_EQ(t.in_use(), 4u);
    EXPECT_STREQ(t.at(b).host, "www.example.com");
    t.release(b);
    EXPECT_EQ(t.in_use(), 3u);
}

TEST(MetaTable, FullTableStillSharesExistingRecords) {
    dp::MetaTable t;
    ASSERT_TRUE(t.init(16, -1));
    for (int i = 0; i < 16; ++i) {
        ASSERT_NE(t.intern(value(std::string("h").append(std::to_string(i)))), dp::MetaTable::kNone) << i;
    }
    EXPECT_EQ(t.intern(value("one.too.many")), dp::MetaTable::kNone);
    EXPECT_EQ(t.in_use(), 16u);
    const uint32_t again = t.intern(value("h7"));
    ASSERT_NE(again, dp::MetaTable::kNone);
    EXPECT_STREQ(t.at(again).host, "h7");
    // Freed by its last reference, the record serves a new value.
    t.release(again);
    t.release(again);
    EXPECT_EQ(t.in_use(), 15u);
    const uint32_t n = t.intern(value("one.too.many"));
    ASSERT_NE(n, dp::MetaTable::kNone);
    EXPECT_STREQ(t.at(n).host, "one.too.many");
}

TEST(MetaTable, AgreesWithAReferenceModelUnderChurn) {
    // Many more values than slots, random interning and release: every held value must
    // still be found after the deletions' backward shifts (a probe that stopped at a hole
    // would make a second record for a value already held).
    dp::MetaTable t;
    constexpr uint32_t kCap = 64;
    ASSERT_TRUE(t.init(kCap, -1));
    std::map<std::string, std::pair<uint32_t, uint32_t>> held;  // host -> (id, refs)
    std::mt19937 rng(7);
    for (int step = 0; step < 200000; ++step) {
        const std::string host = std::string("host-").append(std::to_string(rng() % 150)).append(".example");
        auto it = held.find(host);
        if (it != held.end() && rng() % 2 == 0) {
            t.release(it->second.first);
            if (--it->second.second == 0) {
                held.erase(it);
            }
        } else {
            const uint32_t id = t.intern(value(host));
            if (it != held.end()) {
                ASSERT_EQ(id, it->second.first) << "step " << step << ": " << host << " not found";
                it->second.second += 1;
            } else if (held.size() == kCap) {
                ASSERT_EQ(id, dp::MetaTable::kNone) << "step " << step;
            } else {
                ASSERT_NE(id, dp::MetaTable::kNone) << "step " << step;
                for (const auto& [h, v] : held) {
                    ASSERT_NE(v.first, id) << "step " << step << ": " << host << " took " << h << "'s record";
                }
                held[host] = {id, 1};
            }
        }
        ASSERT_EQ(t.in_use(), held.size()) << "step " << step;
    }
    for (const auto& [h, v] : held) {
        EXPECT_STREQ(t.at(v.first).host, h.c_str());
    }
}

} // namespace
} // namespace l7gate::test
