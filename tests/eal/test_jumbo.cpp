// Frames longer than one mbuf and --mtu (issue 20, point 3). A frame that arrives as a chain
// of mbufs (scattered RX, net_pcap beyond 2 KiB) is copied whole into the worker's buffer
// before it is parsed, so the parser and nDPI see all of it, even when the chain is cut in the
// middle of a header; the chain itself leaves, untouched, and the flow counts its whole
// length. An IP packet longer than the MTU, or a frame longer than MTU + 22, is dropped as
// over_mtu, whatever --malformed says. Driven directly: process_burst() on a simulated clock.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include <rte_mbuf.h>

#include "dataplane/packet_parser.hpp"
#include "dataplane/worker.hpp"
#include "eal_env.hpp"
#include "unit/frame_builder.hpp"

namespace l7gate::test {
namespace {

constexpr uint64_t kT0 = 1700000000ull * 1000000000ull;

// A UDP datagram of `ip_len` bytes of IP (header included), 198.18.0.1:40000 -> 198.18.0.2:9.
Bytes udp_of_ip_len(uint32_t ip_len, const std::vector<VlanTag>& tags = {}) {
    Ipv4Spec ip;
    ip.proto = ipproto::kUdp;
    UdpSpec u;
    u.dport = 9;
    return ipv4_frame(ip, udp(u, pattern(ip_len - 20 - 8)), tags);
}

// A DNS query for `name` (A, IN) from 198.18.0.1:40000 to 198.18.0.2:53.
Bytes dns_query(const std::string& name) {
    Bytes q = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
    size_t start = 0;
    while (start <= name.size()) {
        size_t dot = name.find('.', start);
        if (dot == std::string::npos) {
            dot = name.size();
        }
        q.push_back(static_cast<uint8_t>(dot - start));
        q.insert(q.end(), name.begin() + static_cast<std::ptrdiff_t>(start), name.begin() + static_cast<std::ptrdiff_t>(dot));
        start = dot + 1;
    }
    q.insert(q.end(), {0, 0, 1, 0, 1});
    Ipv4Spec ip;
    ip.proto = ipproto::kUdp;
    return ipv4_frame(ip, udp(UdpSpec{}, q));
}

// The frame as a chain whose segments end at `cuts` (offsets into the frame), then at the end.
rte_mbuf* chain_of(rte_mempool* pool, const Bytes& f, std::vector<size_t> cuts) {
    cuts.push_back(f.size());
    rte_mbuf* head = nullptr;
    size_t from = 0;
    for (size_t to : cuts) {
        rte_mbuf* m = rte_pktmbuf_alloc(pool);
        EXPECT_NE(m, nullptr);
        char* p = rte_pktmbuf_append(m, static_cast<uint16_t>(to - from));
        EXPECT_NE(p, nullptr);
        std::memcpy(p, f.data() + from, to - from);
        if (head == nullptr) {
            head = m;
        } else {
            EXPECT_EQ(rte_pktmbuf_chain(head, m), 0);
        }
        from = to;
    }
    return head;
}

// Cuts every `seg` bytes (the way a port with `seg`-byte mbufs scatters a frame).
std::vector<size_t> every(size_t seg, size_t len) {
    std::vector<size_t> cuts;
    for (size_t at = seg; at < len; at += seg) {
        cuts.push_back(at);
    }
    return cuts;
}

Bytes bytes_of(const rte_mbuf* m) {
    Bytes out(m->pkt_len);
    const void* p = rte_pktmbuf_read(m, 0, m->pkt_len, out.data());
    if (p != out.data()) {
        std::memcpy(out.data(), p, m->pkt_len);
    }
    return out;
}

struct Jumbo {
    rte_mempool* pool = eal_pool();
    dp::Worker* w = nullptr;

    explicit Jumbo(uint32_t mtu, bool malformed_drop = true) {
        dp::WorkerConfig cfg = eal_worker_config(0, 1);
        cfg.mtu = mtu;
        cfg.malformed_drop = malformed_drop;
        w = new dp::Worker();
        EXPECT_EQ(w->init(cfg), nullptr);
        w->classifier_attach_for_test();
    }
    ~Jumbo() {
        dp::NdpiArena::attach(nullptr);
        delete w;
    }
    // Runs one burst; returns the frames that left, as bytes, with their segment counts.
    std::vector<std::pair<Bytes, unsigned>> run(const std::vector<rte_mbuf*>& ms, uint64_t now = kT0) {
        dp::Burst& b = w->burst();
        for (size_t i = 0; i < ms.size(); ++i) {
            b.mbufs[i] = ms[i];
        }
        const unsigned nout = w->process_burst(0, static_cast<unsigned>(ms.size()), now);
        std::vector<std::pair<Bytes, unsigned>> out;
        for (unsigned k = 0; k < nout; ++k) {
            out.emplace_back(bytes_of(b.out[k]), b.out[k]->nb_segs);
            rte_pktmbuf_free(b.out[k]);
        }
        return out;
    }
    dp::FlowEntry* flow(const Bytes& f) {
        dp::PacketMeta pm;
        dp::parse_packet(f.data(), static_cast<uint32_t>(f.size()), pm);
        auto& t = const_cast<dp::FlowTable&>(w->flow_table());
        return t.lookup(pm.key, t.hash(pm.key));
    }
    uint64_t drops(dp::DropReason r) const { return w->counters().drops[static_cast<unsigned>(r)].get(); }
    uint64_t malformed_total() const {
        uint64_t n = 0;
        for (const auto& c : w->counters().malformed) {
            n += c.get();
        }
        return n;
    }
};

TEST(Jumbo, AChainCutInsideItsHeadersIsParsedAndClassifiedWhole) {
    ASSERT_NE(eal_pool(), nullptr);
    Jumbo j(1500);
    const Bytes f = dns_query("jumbo-chain.example.org");
    // Segments end inside the IPv4 header, inside the UDP header and inside the query name.
    rte_mbuf* m = chain_of(j.pool, f, {20, 37, 60});
    ASSERT_EQ(m->nb_segs, 4);
    const auto out = j.run({m});
    ASSERT_EQ(out.size(), 1u) << "forwarded";
    EXPECT_EQ(out[0].first, f) << "byte for byte";
    EXPECT_EQ(out[0].second, 4u) << "the chain itself left";
    EXPECT_EQ(j.malformed_total(), 0u);
    dp::FlowEntry* e = j.flow(f);
    ASSERT_NE(e, nullptr) << "the parser saw the whole 5-tuple";
    EXPECT_EQ(e->bytes[0] + e->bytes[1], f.size());
    EXPECT_EQ(j.w->classifier().host(*e), "jumbo-chain.example.org") << "nDPI saw the query name";
}

TEST(Jumbo, NineThousandByteChainsLeaveWholeAndCountTheirLength) {
    ASSERT_NE(eal_pool(), nullptr);
    Jumbo j(9000);
    const Bytes f = udp_of_ip_len(9000);           // 9,014 bytes: 5 segments of 2 KiB
    const Bytes tagged = udp_of_ip_len(9000, {VlanTag{ether::kQinQ, 10}, VlanTag{ether::kVlan, 20}});  // 9,022
    ASSERT_EQ(tagged.size(), 9022u);
    const auto out = j.run({chain_of(j.pool, f, every(2048, f.size())), chain_of(j.pool, tagged, every(2048, tagged.size())),
                            chain_of(j.pool, f, every(2048, f.size()))});
    ASSERT_EQ(out.size(), 3u);
    EXPECT_EQ(out[0].first, f);
    EXPECT_EQ(out[0].second, 5u);
    EXPECT_EQ(out[1].first, tagged);
    EXPECT_EQ(out[2].first, f);
    EXPECT_EQ(j.malformed_total(), 0u) << "no ipv4_bad_length: the IP length is within the frame";
    dp::FlowEntry* e = j.flow(f);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->packets[0] + e->packets[1], 2u);
    EXPECT_EQ(e->bytes[0] + e->bytes[1], 2 * f.size());
    EXPECT_EQ(j.w->counters().port[0].rx_bytes.get(), 2 * f.size() + tagged.size());
}

TEST(Jumbo, OverTheMtuIsDroppedUnderItsOwnReason) {
    ASSERT_NE(eal_pool(), nullptr);
    for (bool malformed_drop : {true, false}) {
        Jumbo j(1500, malformed_drop);
        const Bytes at_mtu = udp_of_ip_len(1500, {VlanTag{ether::kQinQ, 10}, VlanTag{ether::kVlan, 20}});  // 1,522
        const Bytes over_ip = udp_of_ip_len(1501);  // 1,515 bytes, one mbuf: its IP length is over
        const Bytes jumbo = udp_of_ip_len(9000);
        const auto out2 = j.run({chain_of(j.pool, at_mtu, {}), chain_of(j.pool, over_ip, {}),
                                 chain_of(j.pool, jumbo, every(2048, jumbo.size())),
                                 chain_of(j.pool, at_mtu, {700})});
        ASSERT_EQ(out2.size(), 2u) << "malformed_drop " << malformed_drop;
        EXPECT_EQ(out2[0].first, at_mtu);
        EXPECT_EQ(out2[1].first, at_mtu);
        EXPECT_EQ(j.drops(dp::DropReason::OverMtu), 2u);
        EXPECT_EQ(j.malformed_total(), 0u) << "over_mtu is not an anomaly of the frame";
    }
}

TEST(Jumbo, MtuAtTheSmallestTakesOnlyWhatFits) {
    ASSERT_NE(eal_pool(), nullptr);
    Jumbo j(576);
    const Bytes ok = udp_of_ip_len(576);
    const Bytes over = udp_of_ip_len(577);
    const auto out = j.run({chain_of(j.pool, ok, {300}), chain_of(j.pool, over, {300})});
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].first, ok);
    EXPECT_EQ(j.drops(dp::DropReason::OverMtu), 1u);
}

} // namespace
} // namespace l7gate::test
