// Fragments take their flow's verdict (issue 18, point 6). The first fragment of a datagram
// (offset 0, it carries the ports) finds or creates the flow and is recorded in the fragment
// table whatever the flow's verdict; later fragments find the flow there. A flow dropped by
// the policy used to drop its first fragment before recording it: its later fragments found
// nothing, counted as malformed `frag_no_first` and, under `--malformed pass`, were forwarded.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <vector>

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
    std::vector<std::vector<uint8_t>> out;
    for (size_t off = 0; off < whole.size(); off += 24) {
        Ipv4Spec ip;
        ip.src = {198, 18, 6, host};
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

} // namespace
} // namespace l7gate::test
