// The /16 summary of nDPI's IPv4 host-protocol tree (AppClassifier::may_match_host), which
// lets the give-up of a payload-less flow skip nDPI's Patricia lookups, never hides a network:
// wherever the tree has a prefix covering an address, the summary says "maybe".
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

#include <ndpi_api.h>

#include "dataplane/classifier_ndpi.hpp"
#include "dataplane/ndpi_tree.hpp"
#include "eal_env.hpp"

namespace l7gate::test {
namespace {

void collect(ndpi_patricia_node_t* node, void* /*data*/, void* user) {
    const ndpi_prefix_t* p = ndpi_patricia_get_node_prefix(node);
    if (p != nullptr && p->family == AF_INET) {
        static_cast<std::vector<std::pair<uint32_t, unsigned>>*>(user)->emplace_back(ntohl(p->add.sin.s_addr), p->bitlen);
    }
}

std::array<uint8_t, 4> bytes_of(uint32_t host_order) {
    const uint32_t n = htonl(host_order);
    std::array<uint8_t, 4> b{};
    std::memcpy(b.data(), &n, 4);
    return b;
}

bool tree_covers(ndpi_patricia_tree_t* tree, uint32_t host_order) {
    in_addr a{};
    a.s_addr = htonl(host_order);
    ndpi_prefix_t pfx;
    ndpi_fill_prefix_v4(&pfx, &a, 32, 32);
    return ndpi_patricia_search_best(tree, &pfx) != nullptr;
}

TEST(HostNets, SummaryCoversEveryNetworkOfTheTree) {
    ASSERT_NE(eal_pool(), nullptr);
    dp::ClassifierConfig cc = eal_worker_config(0, 1).classifier;
    auto* c = new dp::AppClassifier();
    ASSERT_EQ(c->init(cc, 0), nullptr);
    c->attach_thread();
    ndpi_patricia_tree_t* tree = dp::ndpi_host_protocol_tree(c->module());
    ASSERT_NE(tree, nullptr);

    std::vector<std::pair<uint32_t, unsigned>> nets;
    ndpi_patricia_walk_tree_inorder(tree, collect, &nets);
    ASSERT_GT(nets.size(), 1000u);  // nDPI 4.2 lists thousands of networks
    for (const auto& [addr, bits] : nets) {
        const uint32_t last = addr | (bits >= 32 ? 0u : UINT32_MAX >> bits);
        EXPECT_TRUE(c->may_match_host(bytes_of(addr).data())) << std::hex << addr << "/" << std::dec << bits;
        EXPECT_TRUE(c->may_match_host(bytes_of(last).data())) << std::hex << last << "/" << std::dec << bits;
    }
    // Google's resolver is in nDPI's lists.
    EXPECT_TRUE(c->may_match_host(bytes_of(0x08080808u).data()));
    EXPECT_TRUE(tree_covers(tree, 0x08080808u));

    // Random addresses: every one the tree covers is a "maybe"; most others are not looked up.
    std::mt19937 rng(0x2ee5);
    unsigned covered = 0;
    unsigned skipped = 0;
    for (int i = 0; i < 200000; ++i) {
        const uint32_t a = rng();
        const bool maybe = c->may_match_host(bytes_of(a).data());
        if (tree_covers(tree, a)) {
            ++covered;
            ASSERT_TRUE(maybe) << std::hex << a;
        } else if (!maybe) {
            ++skipped;
        }
    }
    EXPECT_GT(covered, 0u);
    EXPECT_GT(skipped, 100000u) << "the summary should rule out most of the address space";
    dp::NdpiArena::attach(nullptr);  // the arena goes with the classifier
    delete c;
}

} // namespace
} // namespace l7gate::test
