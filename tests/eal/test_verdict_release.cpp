// What a verdict follows once it is cached (issue 18, points 10 and 4).
//
// Release (point 10): a flow dropped by the blocked set, or by a rule, is decided again when
// the blocked set or the policy changes, on its next packet. It used to return early from the
// decision ("a dropped flow stays dropped") while each of its packets pushed its idle timeout
// back, so a busy UDP/QUIC/VPN flow of a released host stayed dropped for good.
//
// Blocked-set churn (point 4): a flow caches the epoch of its verdict, and the worker knows how
// many epochs ago the policy last changed; a flow whose verdict saw the policy in force only
// checks the blocked set again (two binary searches), not the whole policy (Hyperscan
// included), when a new blocked set is published (up to one per 5 ms under auto-block).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "l7_frames.hpp"
#include "policy_worker.hpp"

namespace l7gate::test {

// The established l7 set, replayed `passes` times after a first pass that classifies it, in
// bursts of 32; with `churn`, a new blocked set (holding none of its hosts) is published
// before every burst. Outside the test namespace's anonymous part so that perf/blocked_churn.sh
// can name it for callgrind (--toggle-collect).
__attribute__((noinline)) void replay_known_flows(dp::Worker& w, rte_mempool* pool,
                                                  const std::vector<std::vector<uint8_t>>& frames, unsigned passes,
                                                  uint64_t& now, void (*republish)(void*), void* ctx) {
    dp::Burst& b = w.burst();
    for (unsigned p = 0; p < passes; ++p) {
        for (size_t i = 0; i < frames.size();) {
            if (republish != nullptr) {
                republish(ctx);
            }
            unsigned n = 0;
            for (; n < 32 && i < frames.size(); ++n, ++i) {
                rte_mbuf* m = rte_pktmbuf_alloc(pool);
                std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(frames[i].size())), frames[i].data(),
                            frames[i].size());
                b.mbufs[n] = m;
            }
            const unsigned nout = w.process_burst(0, n, now);
            for (unsigned k = 0; k < nout; ++k) {
                rte_pktmbuf_free(b.out[k]);
            }
            now += 1000000;
        }
    }
}

// The measured replay: perf/blocked_churn.sh counts the instructions inside this function
// alone (callgrind --toggle-collect).
__attribute__((noinline)) void measured_replay(dp::Worker& w, rte_mempool* pool,
                                               const std::vector<std::vector<uint8_t>>& frames, unsigned passes,
                                               uint64_t& now, void (*republish)(void*), void* ctx) {
    replay_known_flows(w, pool, frames, passes, now, republish, ctx);
}

namespace {

const char* const kPassAll = R"(version: 1
default_policy: p
policies:
  p:
    default: pass
)";
const char* const kDropServer = R"(version: 1
default_policy: p
policies:
  p:
    default: pass
    ips: {198.19.9.9: drop}
)";
// Hostname rules, regexes among them (Hyperscan), as the costly part of an evaluation.
const char* const kHostRules = R"(version: 1
default_policy: p
policies:
  p:
    default: pass
    hostnames: {"*.youtube.com": drop, "~^ads[0-9]*\\.": drop, "~tracker": drop, "*.example.org": pass}
)";

// A UDP datagram from `src`:port to 198.19.9.9:4500 (an IPsec NAT-T look: a long-lived VPN flow).
std::vector<uint8_t> udp_packet(Ip4 src, uint16_t port, Ip4 dst = {198, 19, 9, 9}) {
    Ipv4Spec ip;
    ip.src = src;
    ip.dst = dst;
    ip.proto = ipproto::kUdp;
    UdpSpec u;
    u.sport = port;
    u.dport = 4500;
    Bytes data(64, 0x5a);
    return ipv4_frame(ip, udp(u, data));
}

class VerdictRelease : public PolicyWorker {
protected:
    // Sends each packet until nDPI is done with its flow, so that no later verdict change
    // comes from the classification.
    void warm_up(const std::vector<std::vector<uint8_t>>& pkts) {
        for (int round = 0; round < 64; ++round) {
            for (const auto& p : pkts) {
                forwarded(p);
            }
            bool done = true;
            const dp::FlowTable& t = w_->flow_table();
            for (uint32_t i = 0; i < t.capacity(); ++i) {
                const dp::FlowEntry& e = const_cast<dp::FlowTable&>(t).at(i);
                done = done && (!e.live() || e.dpi_state() == dp::DpiState::Done || e.dpi_state() == dp::DpiState::None);
            }
            if (done) {
                return;
            }
        }
        ADD_FAILURE() << "nDPI never finished with the flows";
    }

    // A blocked set holding `hosts`, generation bg (a new object each time, as published).
    void publish_blocked(std::vector<dp::HostKey> hosts, uint64_t bg) {
        dp::BlockedSet& s = sets_[++flip_ & 1];
        s.generation = bg;
        s.reason = reasons_.id("hosts/auto_block");
        std::sort(hosts.begin(), hosts.end());
        s.hosts = std::move(hosts);
        blocked_.store(&s);
        w_->load_snapshots();
    }
};

TEST_F(VerdictRelease, AReleasedHostsBusyFlowPassesAgainAtItsNextPacket) {
    std::unique_ptr<dp::PolicySnapshot> pol = compile(kPassAll);
    ASSERT_NE(pol, nullptr);
    publish(pol.get(), 1, false, 0);
    const Ip4 host = {198, 18, 8, 1};
    const auto pkt = udp_packet(host, 40500);
    warm_up({pkt});
    publish_blocked({dp::host_key(4, host.data())}, 1);
    // Blocked: a packet every millisecond keeps the flow alive (and its idle timer young).
    for (int k = 0; k < 20; ++k) {
        EXPECT_FALSE(forwarded(pkt)) << k;
    }
    const uint64_t evals = w_->counters().policy_evaluations.get();
    publish_blocked({}, 2);  // released
    EXPECT_TRUE(forwarded(pkt)) << "a released host's flow stays blackholed";
    EXPECT_EQ(w_->counters().policy_evaluations.get(), evals + 1) << "the policy decides the released flow again";
    for (int k = 0; k < 5; ++k) {
        EXPECT_TRUE(forwarded(pkt));
    }
    EXPECT_EQ(w_->counters().policy_evaluations.get(), evals + 1);
    // Blocked again, then the blocked set withdrawn entirely: released too.
    publish_blocked({dp::host_key(4, host.data())}, 3);
    EXPECT_FALSE(forwarded(pkt));
    blocked_.store(nullptr);
    w_->load_snapshots();
    EXPECT_TRUE(forwarded(pkt));
    const uint16_t dflt = reasons_.id("p/default");
    const auto& flows = w_->flow_table();
    unsigned seen = 0;
    for (uint32_t i = 0; i < flows.capacity(); ++i) {
        const dp::FlowEntry& e = const_cast<dp::FlowTable&>(flows).at(i);
        if (e.live()) {
            ++seen;
            EXPECT_EQ(e.action, dp::cached::kPass);
            EXPECT_EQ(e.reason, dflt);
            EXPECT_FALSE(e.blocked_verdict());
        }
    }
    EXPECT_EQ(seen, 1u);
}

TEST_F(VerdictRelease, AFlowDroppedByARuleThatNoLongerDropsPassesAfterTheReload) {
    std::unique_ptr<dp::PolicySnapshot> drop = compile(kDropServer);
    std::unique_ptr<dp::PolicySnapshot> drop_again = compile(kDropServer);
    std::unique_ptr<dp::PolicySnapshot> pass = compile(kPassAll);
    ASSERT_TRUE(drop && drop_again && pass);
    publish(drop.get(), 1, false, 0);
    const auto pkt = udp_packet({198, 18, 8, 2}, 40501);
    EXPECT_FALSE(forwarded(pkt));
    EXPECT_FALSE(forwarded(pkt));
    publish(drop_again.get(), 2, false, 0);  // a reload that still drops it
    EXPECT_FALSE(forwarded(pkt));
    publish(pass.get(), 3, false, 0);  // the rule is gone
    EXPECT_TRUE(forwarded(pkt)) << "a flow dropped by a rule that no longer drops stays blackholed";
    publish(drop.get(), 4, false, 0);  // and back
    EXPECT_FALSE(forwarded(pkt));
}

TEST_F(VerdictRelease, ABlockedSetChangeChecksOnlyTheBlockedSet) {
    std::unique_ptr<dp::PolicySnapshot> pol = compile(kHostRules);
    ASSERT_NE(pol, nullptr);
    publish(pol.get(), 1, false, 0);
    std::vector<std::vector<uint8_t>> pkts;
    for (uint16_t i = 0; i < 50; ++i) {
        pkts.push_back(udp_packet({198, 18, 9, static_cast<uint8_t>(i + 1)}, static_cast<uint16_t>(41000 + i)));
    }
    warm_up(pkts);
    const uint64_t evals = w_->counters().policy_evaluations.get();
    // 40 new blocked sets (none of these hosts), each followed by a packet of every flow.
    for (uint64_t bg = 1; bg <= 40; ++bg) {
        publish_blocked({dp::host_key(4, kBlockedHost.data())}, bg);
        for (const auto& p : pkts) {
            ASSERT_TRUE(forwarded(p));
        }
    }
    EXPECT_EQ(w_->counters().policy_evaluations.get(), evals)
        << "a new blocked set made every flow evaluate the whole policy again";
    // A set that holds one of them drops that flow without an evaluation; its release costs one.
    const Ip4 h = {198, 18, 9, 7};
    publish_blocked({dp::host_key(4, h.data())}, 41);
    for (size_t i = 0; i < pkts.size(); ++i) {
        EXPECT_EQ(forwarded(pkts[i]), i != 6) << i;
    }
    EXPECT_EQ(w_->counters().policy_evaluations.get(), evals);
    publish_blocked({}, 42);
    for (const auto& p : pkts) {
        EXPECT_TRUE(forwarded(p));
    }
    EXPECT_EQ(w_->counters().policy_evaluations.get(), evals + 1);
    // A new policy still makes every flow evaluate it.
    std::unique_ptr<dp::PolicySnapshot> again = compile(kHostRules);
    publish(again.get(), 2, false, 0);
    for (const auto& p : pkts) {
        EXPECT_TRUE(forwarded(p));
    }
    EXPECT_EQ(w_->counters().policy_evaluations.get(), evals + 1 + pkts.size());
}

// The established l7 set with and without a new blocked set before every burst: the same
// policy evaluations. perf/blocked_churn.sh counts the instructions of the two replays under
// callgrind (the figure is in perf/RESULTS.md).
class BlockedChurn : public VerdictRelease {
protected:
    // every: a new blocked set before every `every`-th burst (0: never). measured: through
    // measured_replay (what perf/blocked_churn.sh counts).
    void replay(unsigned every, bool measured = true) {
        const auto frames = l7_frames();
        ASSERT_GT(frames.size(), 20u) << "L7GATE_L7_PCAP must name the generated l7.pcap";
        std::unique_ptr<dp::PolicySnapshot> pol = compile(kHostRules);
        ASSERT_NE(pol, nullptr);
        publish(pol.get(), 1, false, 0);
        uint64_t now = kT0;
        replay_known_flows(*w_, pool_, frames, 1, now, nullptr, nullptr);  // classify
        // The two sets the churn alternates between, built beforehand: what is measured is the
        // worker's part (loading a new set, checking flows against it), not the control
        // thread's building of sets.
        for (dp::BlockedSet& b : sets_) {
            b.reason = reasons_.id("hosts/auto_block");
            b.hosts = {dp::host_key(4, kBlockedHost.data())};
        }
        const uint64_t evals = w_->counters().policy_evaluations.get();
        bg_ = 0;
        every_ = every;
        bursts_ = 0;
        (measured ? measured_replay : replay_known_flows)(*w_, pool_, frames, kPasses, now,
                                                          every != 0 ? &BlockedChurn::republish : nullptr, this);
        evaluations_ = w_->counters().policy_evaluations.get() - evals;
        std::printf("blocked churn: a new blocked set every %u bursts (0: never): %u passes of %zu frames, "
                    "%lu blocked sets, %lu policy evaluations\n",
                    every, kPasses, frames.size(), static_cast<unsigned long>(bg_),
                    static_cast<unsigned long>(evaluations_));
    }
    static void republish(void* self) {
        auto* t = static_cast<BlockedChurn*>(self);
        if (t->bursts_++ % t->every_ != 0) {
            return;
        }
        dp::BlockedSet& s = t->sets_[++t->flip_ & 1];
        s.generation = ++t->bg_;
        t->blocked_.store(&s);
        t->w_->load_snapshots();
    }
    static constexpr unsigned kPasses = 20;
    uint64_t bg_ = 0;
    unsigned every_ = 0;
    unsigned bursts_ = 0;
    uint64_t evaluations_ = 0;
};

TEST_F(BlockedChurn, Quiet) {
    replay(0);
}

TEST_F(BlockedChurn, RepublishedEvery16Bursts) {
    replay(16);
}

TEST_F(BlockedChurn, RepublishedEveryBurst) {
    replay(1);
    const uint64_t churned = evaluations_;
    // The same replay in a fresh worker without churn, for comparison.
    TearDown();
    SetUp();
    replay(0, false);
    EXPECT_EQ(churned, evaluations_) << "a new blocked set made known flows evaluate the policy again";
}

} // namespace
} // namespace l7gate::test

namespace l7gate::test {
namespace {

// A flow that kept no metadata record keeps its verdict across reloads (it saw a hostname the
// flow no longer has). A shaped verdict names a shaper slot: it must still mean that shaper
// in the new snapshot (point 10: "a meta_lost flow keeps the old snapshot's decision but
// indexes the new snapshot's shaper table"), and when the new policy has no such shaper the
// new policy decides (it used to leave the flow unshaped).
const char* const kHostsSlow = R"(version: 1
shapers:
  slow: {rate: 9gbit, burst: 1mb}
  fast: {rate: 10gbit, burst: 1mb}
default_policy: p
policies:
  p:
    default: pass
    hostnames: {"*.example.com": police:slow, "*.example.org": police:slow, "*.example.net": police:slow}
)";
const char* const kHostsSlowReordered = R"(version: 1
shapers:
  extra: {rate: 8gbit, burst: 1mb}
  fast: {rate: 10gbit, burst: 1mb}
  slow: {rate: 9gbit, burst: 1mb}
default_policy: p
policies:
  p:
    default: police:extra
    hostnames: {"*.example.com": police:fast, "*.example.org": police:fast, "*.example.net": police:fast}
)";
const char* const kFastOnly = R"(version: 1
shapers:
  fast: {rate: 10gbit, burst: 1mb}
default_policy: p
policies:
  p:
    default: police:fast
)";

class MetaLostShaper : public PolicyWorker {
protected:
    void configure(dp::WorkerConfig& cfg) override {
        cfg.classifier.meta_records = 1;  // every flow with metadata but the first loses it
    }
};

TEST_F(MetaLostShaper, AKeptShapedVerdictMeansItsShaperOrTheNewPolicyDecides) {
    const auto frames = l7_frames();
    ASSERT_GT(frames.size(), 20u) << "L7GATE_L7_PCAP must name the generated l7.pcap";
    std::unique_ptr<dp::PolicySnapshot> a = compile(kHostsSlow);
    std::unique_ptr<dp::PolicySnapshot> b = compile(kHostsSlowReordered);
    std::unique_ptr<dp::PolicySnapshot> c = compile(kFastOnly);
    ASSERT_TRUE(a && b && c);
    const auto slot = [](const dp::PolicySnapshot& p, const char* name) {
        for (size_t i = 0; i < p.shapers.size(); ++i) {
            if (p.shapers[i].name == name) {
                return static_cast<uint8_t>(i);
            }
        }
        return static_cast<uint8_t>(255);
    };
    publish(a.get(), 1, false, 0);
    uint64_t now = kT0;
    replay_known_flows(*w_, pool_, frames, 1, now, nullptr, nullptr);
    const dp::FlowEntry* victim = nullptr;
    const dp::FlowTable& t = w_->flow_table();
    for (uint32_t i = 0; i < t.capacity() && victim == nullptr; ++i) {
        const dp::FlowEntry& e = const_cast<dp::FlowTable&>(t).at(i);
        if (e.live() && e.meta_lost() && dp::cached::shaped(e.action)) {
            victim = &e;
        }
    }
    ASSERT_NE(victim, nullptr) << "no flow without its record was shaped by a hostname rule";
    const uint16_t reason = victim->reason;
    EXPECT_EQ(dp::cached::shaper(victim->action), slot(*a, "slow"));

    // Reordered shapers and a new one first; the hostname rules now say fast. The kept
    // verdict still means slow.
    publish(b.get(), 2, false, 0);
    replay_known_flows(*w_, pool_, frames, 1, now, nullptr, nullptr);
    ASSERT_TRUE(victim->live());
    EXPECT_EQ(victim->reason, reason);
    ASSERT_TRUE(dp::cached::shaped(victim->action));
    EXPECT_EQ(b->shapers[dp::cached::shaper(victim->action)].name, "slow");

    // slow is gone: the new policy decides the flow (police:fast), not "unshaped".
    publish(c.get(), 3, false, 0);
    const uint64_t fast_before = w_->counters().shaper[slot(*c, "fast")].sent.get();
    replay_known_flows(*w_, pool_, frames, 1, now, nullptr, nullptr);
    ASSERT_TRUE(victim->live());
    ASSERT_TRUE(dp::cached::shaped(victim->action)) << "the flow kept a verdict whose shaper is gone";
    EXPECT_EQ(dp::cached::shaper(victim->action), slot(*c, "fast"));
    EXPECT_GT(w_->counters().shaper[slot(*c, "fast")].sent.get(), fast_before);
}

} // namespace
} // namespace l7gate::test
