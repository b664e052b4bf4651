// Symmetric RSS: the key l7gate programs must hash both directions of a flow alike, so the
// two ports of a bridge pair deliver a flow's packets to the same queue index (worker).
#include <gtest/gtest.h>

#include <cstdint>
#include <random>

#include <rte_thash.h>

#include "dataplane/port.hpp"

namespace l7gate::test {
namespace {

uint32_t hash_v4(const uint8_t* key, uint32_t src, uint32_t dst, uint16_t sp, uint16_t dp) {
    uint32_t t[3] = {src, dst, static_cast<uint32_t>(sp) << 16 | dp};
    return rte_softrss(t, 3, key);
}

uint32_t hash_v6(const uint8_t* key, const uint32_t src[4], const uint32_t dst[4], uint16_t sp,
                 uint16_t dp) {
    uint32_t t[9];
    for (int i = 0; i < 4; ++i) {
        t[i] = src[i];
        t[4 + i] = dst[i];
    }
    t[8] = static_cast<uint32_t>(sp) << 16 | dp;
    return rte_softrss(t, 9, key);
}

TEST(SymmetricRss, BothDirectionsOfAnIpv4FlowHashAlike) {
    uint8_t key[40];
    dp::make_symmetric_rss_key(key, sizeof(key));
    std::mt19937 rng(7);
    for (int i = 0; i < 10000; ++i) {
        const uint32_t a = rng();
        const uint32_t b = rng();
        const auto sp = static_cast<uint16_t>(rng());
        const auto dp = static_cast<uint16_t>(rng());
        ASSERT_EQ(hash_v4(key, a, b, sp, dp), hash_v4(key, b, a, dp, sp)) << i;
    }
}

TEST(SymmetricRss, BothDirectionsOfAnIpv6FlowHashAlike) {
    uint8_t key[52];
    dp::make_symmetric_rss_key(key, sizeof(key));
    std::mt19937 rng(11);
    for (int i = 0; i < 5000; ++i) {
        uint32_t a[4];
        uint32_t b[4];
        for (int k = 0; k < 4; ++k) {
            a[k] = rng();
            b[k] = rng();
        }
        const auto sp = static_cast<uint16_t>(rng());
        const auto dp = static_cast<uint16_t>(rng());
        ASSERT_EQ(hash_v6(key, a, b, sp, dp), hash_v6(key, b, a, dp, sp)) << i;
    }
}

TEST(SymmetricRss, KeyStillSpreadsFlowsOverQueues) {
    uint8_t key[40];
    dp::make_symmetric_rss_key(key, sizeof(key));
    std::mt19937 rng(3);
    unsigned per_queue[4] = {};
    for (int i = 0; i < 40000; ++i) {
        const uint32_t h = hash_v4(key, rng(), rng(), static_cast<uint16_t>(rng()),
                                   static_cast<uint16_t>(rng()));
        ++per_queue[h % 4];  // a RETA filled round-robin maps hash low bits to queues
    }
    for (unsigned q : per_queue) {
        EXPECT_GT(q, 9000u);
        EXPECT_LT(q, 11000u);
    }
}

TEST(SymmetricRss, AnOrdinaryKeyIsNotSymmetric) {
    // Guards the two tests above: they must be able to fail with a key that is not symmetric.
    uint8_t key[40];
    for (unsigned i = 0; i < sizeof(key); ++i) {
        key[i] = static_cast<uint8_t>(i * 37 + 11);
    }
    int asymmetric = 0;
    std::mt19937 rng(5);
    for (int i = 0; i < 100; ++i) {
        const uint32_t a = rng();
        const uint32_t b = rng();
        asymmetric += hash_v4(key, a, b, 1000, 80) != hash_v4(key, b, a, 80, 1000);
    }
    EXPECT_GT(asymmetric, 90);
}

} // namespace
} // namespace l7gate::test
