// Fragments take their flow's verdict (issue 18, point 6). The first fragment of a datagram
// (offset 0, it carries the ports) finds or creates the flow and is recorded in the fragment
// table whatever the flow's verdict; later fragments find the flow there. A flow dropped by
// the policy used to drop its first fragment before recording it: its later fragments found
// nothing, counted as malformed `frag_no_first` and, under `--malformed pass`, were forwarded.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <rte_byteorder.h>
#include <rte_ethdev.h>
#include <rte_thash.h>

#include "dataplane/port.hpp"
#include "policy_worker.hpp"

namespace l7gate::test {
namespace {

const char* const kPolicy = R"(version: 1
default_policy: p
policies:
  p:
    default: pass
    ips: {198.19.9.9: drop}
)";

// A UDP datagram (`whole`: its UDP header and payload) from `src` to `dst` as IPv4 fragments
// of 24 bytes (the last shorter).
std::vector<std::vector<uint8_t>> fragments(const Bytes& whole, Ip4 src, Ip4 dst, uint16_t id) {
    std::vector<std::vector<uint8_t>> out;
    for (size_t off = 0; off < whole.size(); off += 24) {
        Ipv4Spec ip;
        ip.src = src;
        ip.dst = dst;
        ip.proto = ipproto::kUdp;
        ip.id = id;
        ip.frag_offset = static_cast<uint16_t>(off / 8);
        ip.mf = off + 24 < whole.size();
        const size_t end = off + 24 < whole.size() ? off + 24 : whole.size();
        out.push_back(ipv4_frame(ip, Bytes(whole.begin() + static_cast<long>(off), whole.begin() + static_cast<long>(end))));
    }
    return out;
}

// A UDP datagram of 8 + 48 bytes from 198.18.6.<host>:port to `dst`:5353 in three fragments:
// the first holds the UDP header and 16 bytes, the next two 16 bytes each.
std::vector<std::vector<uint8_t>> udp_fragments(Ip4 dst, uint8_t host, uint16_t port, uint16_t id) {
    Bytes data(48);
    for (size_t i = 0; i < data.size(); ++i) {
        data[i] = static_cast<uint8_t>('a' + i % 26);
    }
    UdpSpec u;
    u.sport = port;
    u.dport = 5353;
    const Bytes whole = udp(u, data);
    return fragments(whole, {198, 18, 6, host}, dst, id);
}

class FragVerdict : public PolicyWorker {
protected:
    void configure(dp::WorkerConfig& cfg) override {
        cfg.malformed_drop = false;  // --malformed pass: what used to let them through
    }
};

TEST_F(FragVerdict, LaterFragmentsOfADroppedFlowAreDroppedUnderItsVerdict) {
    std::unique_ptr<dp::PolicySnapshot> pol = compile(kPolicy);
    ASSERT_NE(pol, nullptr);
    publish(pol.get(), 1, false, 0);
    const auto& c = w_->counters();
    const uint16_t reason = reasons_.id("p/ips/198.19.9.9");
    const auto no_first = [&] { return c.malformed[static_cast<unsigned>(dp::DropReason::FragNoFirst)].get(); };
    const auto policy_drops = [&] { return c.drops[static_cast<unsigned>(dp::DropReason::Policy)].get(); };

    // Five datagrams of a flow the policy drops (the same 5-tuple, other ids).
    unsigned later = 0;
    for (uint16_t d = 0; d < 5; ++d) {
        const auto frags = udp_fragments({198, 19, 9, 9}, 1, 41000, static_cast<uint16_t>(0x100 + d));
        for (size_t k = 0; k < frags.size(); ++k) {
            EXPECT_FALSE(forwarded(frags[k])) << "datagram " << d << ", fragment " << k << " of a dropped flow passed";
            later += k != 0 ? 1 : 0;
        }
    }
    EXPECT_EQ(no_first(), 0u) << "later fragments of a dropped flow counted as malformed";
    EXPECT_EQ(c.frag_matched.get(), later);
    EXPECT_EQ(policy_drops(), 5u + later) << "every fragment is dropped by the flow's verdict";
    EXPECT_EQ(c.reason_packets[reason].get(), 5u + later) << "and counted under its reason";
    EXPECT_EQ(c.reason_flows[reason].get(), 1u);

    // A passed flow's fragments all pass, matched to it.
    const auto frags = udp_fragments({198, 19, 9, 10}, 2, 41001, 0x200);
    for (const auto& f : frags) {
        EXPECT_TRUE(forwarded(f));
    }
    EXPECT_EQ(c.frag_matched.get(), later + frags.size() - 1);
    // A later fragment whose first fragment never came is still malformed (and passes here).
    const auto orphan = udp_fragments({198, 19, 9, 9}, 3, 41002, 0x300);
    EXPECT_TRUE(forwarded(orphan[1]));
    EXPECT_EQ(no_first(), 1u);
}


// Fragments and RSS (issue 18, point 10): a NIC hashes a fragment on its addresses (later
// fragments carry no ports), and an unfragmented TCP/UDP packet on its addresses and ports
// when rss_hf holds the TCP/UDP types. l7gate asked for those, so with several workers a
// flow's fragments reached another worker than its other packets: another flow entry,
// another verdict. The NIC is modelled here (Toeplitz under l7gate's symmetric key over the
// fields that l7gate's rss_hf selects for the frame's type, a round-robin RETA over two
// queues) and frames are dispatched to two workers.
unsigned nic_queue(const std::vector<uint8_t>& f, uint64_t hf) {
    uint8_t key[40];
    dp::make_symmetric_rss_key(key, sizeof(key));
    const uint8_t* ip = f.data() + 14;
    const unsigned ihl = (ip[0] & 0x0f) * 4u;
    const bool fragment = ((ip[6] << 8 | ip[7]) & 0x3fff) != 0;
    const uint8_t proto = ip[9];
    uint32_t t[3];
    std::memcpy(&t[0], ip + 12, 4);
    std::memcpy(&t[1], ip + 16, 4);
    t[0] = rte_be_to_cpu_32(t[0]);
    t[1] = rte_be_to_cpu_32(t[1]);
    const bool l4 = !fragment && ((proto == 6 && (hf & RTE_ETH_RSS_NONFRAG_IPV4_TCP) != 0) ||
                                  (proto == 17 && (hf & RTE_ETH_RSS_NONFRAG_IPV4_UDP) != 0));
    if (l4) {
        uint16_t sp;
        uint16_t dp;
        std::memcpy(&sp, ip + ihl, 2);
        std::memcpy(&dp, ip + ihl + 2, 2);
        t[2] = static_cast<uint32_t>(rte_be_to_cpu_16(sp)) << 16 | rte_be_to_cpu_16(dp);
    }
    return rte_softrss(t, l4 ? 3 : 2, key) % 2;
}

// A DNS query for `name` (dotted) from 198.18.11.<host>:port to 198.19.11.1:53.
std::vector<uint8_t> dns_query(uint8_t host, uint16_t port, const std::string& name) {
    Bytes q = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
    size_t start = 0;
    while (start <= name.size()) {
        size_t dot = name.find('.', start);
        if (dot == std::string::npos) {
            dot = name.size();
        }
        q.push_back(static_cast<uint8_t>(dot - start));
        q.insert(q.end(), name.begin() + static_cast<long>(start), name.begin() + static_cast<long>(dot));
        start = dot + 1;
    }
    q.insert(q.end(), {0, 0, 1, 0, 1});
    Ipv4Spec ip;
    ip.src = {198, 18, 11, host};
    ip.dst = {198, 19, 11, 1};
    ip.proto = ipproto::kUdp;
    UdpSpec u;
    u.sport = port;
    u.dport = 53;
    return ipv4_frame(ip, udp(u, q));
}

// A later datagram of that flow (not DNS: what another worker could not judge by name), in
// three fragments.
std::vector<std::vector<uint8_t>> later_datagram(uint8_t host, uint16_t port, uint16_t id) {
    Bytes data(48, 0x77);
    UdpSpec u;
    u.sport = port;
    u.dport = 53;
    const Bytes whole = udp(u, data);
    return fragments(whole, {198, 18, 11, host}, {198, 19, 11, 1}, id);
}

class FragRss : public PolicyWorker {
protected:
    void TearDown() override {
        if (w2_ != nullptr) {
            w2_->classifier_attach_for_test();
            policy_.store(nullptr);
            blocked_.store(nullptr);
            w2_->load_snapshots();
            w2_->flush_flows();
            dp::NdpiArena::attach(nullptr);
            delete w2_;
            w2_ = nullptr;
        }
        w_->classifier_attach_for_test();
        PolicyWorker::TearDown();
    }
    void start_second() {
        dp::WorkerConfig cfg = eal_worker_config(0, 1);
        cfg.queue = 1;
        cfg.policy = &policy_;
        cfg.blocked = &blocked_;
        w2_ = new dp::Worker();
        // nDPI's start-up allocations come from the C heap, as on the control thread (the
        // first worker's arena is attached here and has no room for a second module).
        dp::NdpiArena::attach(nullptr);
        ASSERT_EQ(w2_->init(cfg), nullptr);
        w2_->load_snapshots();
    }
    // One frame to worker q; true when forwarded.
    bool to_worker(unsigned q, const std::vector<uint8_t>& f) {
        dp::Worker& w = q == 0 ? *w_ : *w2_;
        w.classifier_attach_for_test();
        dp::Burst& b = w.burst();
        rte_mbuf* m = rte_pktmbuf_alloc(pool_);
        EXPECT_NE(m, nullptr);
        std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(f.size())), f.data(), f.size());
        b.mbufs[0] = m;
        now_ += 1000000;
        const unsigned nout = w.process_burst(0, 1, now_);
        for (unsigned k = 0; k < nout; ++k) {
            rte_pktmbuf_free(b.out[k]);
        }
        return nout == 1;
    }
    dp::Worker* w2_ = nullptr;
};

TEST_F(FragRss, AFlowsFragmentsReachItsWorkerAndTakeItsVerdict) {
    const char* const policy = R"(version: 1
default_policy: p
policies:
  p:
    default: pass
    hostnames: {"*.blocked.test": drop}
)";
    std::unique_ptr<dp::PolicySnapshot> pol = compile(policy);
    ASSERT_NE(pol, nullptr);
    publish(pol.get(), 1, false, 0);
    start_second();
    const uint64_t hf = dp::rss_hash_functions();
    unsigned queries_dropped = 0;
    unsigned fragments = 0;
    unsigned leaked = 0;
    unsigned elsewhere = 0;
    for (uint8_t h = 1; h <= 32; ++h) {
        const uint16_t port = static_cast<uint16_t>(30000 + h * 7);
        const auto q = dns_query(h, port, "www.blocked.test");
        const unsigned flow_worker = nic_queue(q, hf);
        queries_dropped += to_worker(flow_worker, q) ? 0 : 1;
        for (const auto& f : later_datagram(h, port, static_cast<uint16_t>(0x500 + h))) {
            const unsigned w = nic_queue(f, hf);
            elsewhere += w != flow_worker ? 1 : 0;
            ++fragments;
            leaked += to_worker(w, f) ? 1 : 0;
        }
    }
    std::printf("robustness: fragments and RSS: 32 flows dropped by hostname on 2 workers: %u of their %u later "
                "fragments reached another worker, %u forwarded\n",
                elsewhere, fragments, leaked);
    EXPECT_EQ(queries_dropped, 32u);
    EXPECT_EQ(elsewhere, 0u) << "fragments hashed apart from their flow";
    EXPECT_EQ(leaked, 0u) << "fragments of dropped flows passed through another worker";
}
} // namespace
} // namespace l7gate::test
