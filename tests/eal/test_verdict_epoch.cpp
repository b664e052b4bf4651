// Verdict epochs (issue 18, point 3): a flow caches the worker's verdict epoch and is decided
// again when it differs. New flows start at 0, so the epoch must never be 0 whatever the
// policy and blocked-set generations are: a cache key made of uint16(policy generation +
// blocked generation) was 0 whenever that sum wrapped, and new flows then went undecided (no
// ips, country or default rule, no blocked-host check). Driven directly: both generations
// across the 16-bit wrap, and the worker's own epoch across its wrap. Also what the per-reason
// verdict counters (l7gate_verdicts_total) count: verdict changes.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <rte_mbuf.h>

#include "control/ndpi_names.hpp"
#include "control/policy_compiler.hpp"
#include "control/policy_config.hpp"
#include "control/policy_loader.hpp"
#include "dataplane/host_block.hpp"
#include "dataplane/worker.hpp"
#include "eal_env.hpp"
#include "unit/frame_builder.hpp"

namespace l7gate::test {
namespace {

const char* const kDropAll = R"(version: 1
default_policy: p
policies:
  p:
    default: drop
)";
const char* const kPassAll = R"(version: 1
default_policy: p
policies:
  p:
    default: pass
)";

// A TCP SYN (deferred: nDPI sees nothing, so only the epoch can make the worker decide) from
// 198.18.(1 + i>>16).(i>>8).i, or from `blocked_host` when given, to 198.18.0.2:443.
std::vector<uint8_t> syn(uint32_t i, const Ip4* from = nullptr) {
    Ipv4Spec ip;
    ip.src = from != nullptr ? *from
                             : Ip4{198, static_cast<uint8_t>(18 + (i >> 16 & 1)), static_cast<uint8_t>(i >> 8),
                                   static_cast<uint8_t>(i | 1)};
    ip.dst = {198, 18, 0, 2};
    TcpSpec t;
    t.sport = static_cast<uint16_t>(1024 + (i & 0x3fff));
    t.dport = 443;
    return ipv4_frame(ip, tcp(t));
}

const Ip4 kBlockedHost = {198, 19, 255, 7};

class VerdictEpoch : public ::testing::Test {
protected:
    void SetUp() override {
        pool_ = eal_pool();
        ASSERT_NE(pool_, nullptr);
        dp::NdpiArena::attach(nullptr);
        static ctl::NdpiNames names;
        static const std::string err = names.init("", "");
        ASSERT_EQ(err, "");
        names_ = &names;
        dp::WorkerConfig cfg = eal_worker_config(0, 1);
        cfg.policy = &policy_;
        cfg.blocked = &blocked_;
        w_ = new dp::Worker();
        ASSERT_EQ(w_->init(cfg), nullptr);
        w_->classifier_attach_for_test();
    }
    void TearDown() override {
        policy_.store(nullptr);
        blocked_.store(nullptr);
        if (w_ != nullptr) {
            w_->load_snapshots();
            w_->flush_flows();
        }
        dp::NdpiArena::attach(nullptr);
        delete w_;
    }

    std::unique_ptr<dp::PolicySnapshot> compile(const char* text) {
        ctl::PolicyConfig cfg;
        std::vector<ctl::PolicyError> errors;
        EXPECT_TRUE(ctl::load_policy_text(text, "epoch.yaml", ctl::PolicyFormat::Auto, cfg, errors));
        ctl::CompileContext ctx{names_, nullptr, &reasons_, 1, 1};
        auto snap = ctl::compile_policy(cfg, ctx, errors);
        EXPECT_TRUE(errors.empty());
        return snap;
    }

    // Publishes `pol` with policy generation pg and, when has_blocked, a blocked set (holding
    // kBlockedHost) with generation bg; alternates between two objects of each, as the control
    // thread publishes a new one every time.
    void publish(dp::PolicySnapshot* pol, uint64_t pg, bool has_blocked, uint64_t bg) {
        pol->generation = pg;
        policy_.store(pol);
        if (has_blocked) {
            dp::BlockedSet& s = sets_[++flip_ & 1];
            s.generation = bg;
            s.reason = reasons_.id("hosts/auto_block");
            s.hosts = {dp::host_key(4, kBlockedHost.data())};
            blocked_.store(&s);
        } else {
            blocked_.store(nullptr);
        }
        w_->load_snapshots();
        EXPECT_NE(w_->verdict_epoch(), 0) << "the epoch new flows start at";
    }

    // One packet through the worker; true when it was forwarded.
    bool forwarded(const std::vector<uint8_t>& f) {
        dp::Burst& b = w_->burst();
        rte_mbuf* m = rte_pktmbuf_alloc(pool_);
        EXPECT_NE(m, nullptr);
        std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(f.size())), f.data(), f.size());
        b.mbufs[0] = m;
        now_ += 1000000;
        const unsigned nout = w_->process_burst(0, 1, now_);
        for (unsigned k = 0; k < nout; ++k) {
            rte_pktmbuf_free(b.out[k]);
        }
        if (w_->flow_table().active() > 3000) {
            w_->flush_flows();  // keep room for the next new flows
        }
        return nout == 1;
    }

    // Every (policy generation, blocked generation) pair around the points where their 16-bit
    // sum wraps, with and without a blocked set.
    static std::vector<std::pair<uint64_t, int64_t>> generations() {
        std::vector<std::pair<uint64_t, int64_t>> out;  // bg < 0: no blocked set
        for (const uint64_t pg : std::initializer_list<uint64_t>{1, 2, 3, 1000, 65535, 65536, 65537, 131072, 4294967296}) {
            out.emplace_back(pg, -1);
            const uint64_t complement = (65536 - pg % 65536) % 65536;
            for (const uint64_t base : {uint64_t{0}, complement, complement + 65536, complement + 131072}) {
                for (int d = -2; d <= 2; ++d) {
                    if (static_cast<int64_t>(base) + d >= 0) {
                        out.emplace_back(pg, static_cast<int64_t>(base) + d);
                    }
                }
            }
        }
        return out;
    }

    static constexpr uint64_t kT0 = 1700000000ull * 1000000000ull;
    rte_mempool* pool_ = nullptr;
    const ctl::NdpiNames* names_ = nullptr;
    ctl::ReasonRegistry reasons_;
    std::atomic<const dp::PolicySnapshot*> policy_{nullptr};
    std::atomic<const dp::BlockedSet*> blocked_{nullptr};
    dp::BlockedSet sets_[2];
    unsigned flip_ = 0;
    uint64_t now_ = kT0;
    dp::Worker* w_ = nullptr;
};

TEST_F(VerdictEpoch, NewFlowsAreDecidedWhateverTheGenerations) {
    std::unique_ptr<dp::PolicySnapshot> pols[2] = {compile(kDropAll), compile(kDropAll)};
    ASSERT_TRUE(pols[0] && pols[1]);
    uint32_t flow = 0;
    unsigned step = 0;
    for (const auto& [pg, bg] : generations()) {
        publish(pols[step++ & 1].get(), pg, bg >= 0, static_cast<uint64_t>(bg));
        const uint64_t evals = w_->counters().policy_evaluations.get();
        // Two new flows per step: the first after the change, and one more in the same epoch.
        for (int k = 0; k < 2; ++k) {
            EXPECT_FALSE(forwarded(syn(++flow))) << "policy generation " << pg << ", blocked generation " << bg
                                                 << ": a new flow passed a default-drop policy undecided";
        }
        EXPECT_EQ(w_->counters().policy_evaluations.get(), evals + 2)
            << "policy generation " << pg << ", blocked generation " << bg;
    }
}

TEST_F(VerdictEpoch, BlockedHostsAreCheckedWhateverTheGenerations) {
    std::unique_ptr<dp::PolicySnapshot> pols[2] = {compile(kPassAll), compile(kPassAll)};
    ASSERT_TRUE(pols[0] && pols[1]);
    uint32_t flow = 0;
    unsigned step = 0;
    for (const auto& [pg, bg] : generations()) {
        if (bg < 0) {
            continue;
        }
        publish(pols[step++ & 1].get(), pg, true, static_cast<uint64_t>(bg));
        EXPECT_FALSE(forwarded(syn(++flow, &kBlockedHost)))
            << "policy generation " << pg << ", blocked generation " << bg << ": a blocked host's new flow passed";
        EXPECT_TRUE(forwarded(syn(++flow))) << "policy generation " << pg << ", blocked generation " << bg;
    }
}

TEST_F(VerdictEpoch, TheWorkersOwnEpochSkipsZeroWhenItWraps) {
    std::unique_ptr<dp::PolicySnapshot> pol = compile(kDropAll);
    ASSERT_NE(pol, nullptr);
    // A blocked set republished 70,000 times (one per 5 ms at most in l7gate: about 6 min),
    // the policy once: the epoch passes 65,535 and wraps; a new flow is decided at every
    // epoch near the wrap and at every 1,000th.
    uint32_t flow = 0;
    bool wrapped = false;
    uint16_t last = 0;
    for (uint64_t bg = 1; bg <= 70000; ++bg) {
        publish(pol.get(), 7, true, bg);
        const uint16_t epoch = w_->verdict_epoch();
        ASSERT_NE(epoch, last) << "a new blocked set did not move the epoch";
        wrapped = wrapped || epoch < last;
        last = epoch;
        if (epoch <= 3 || epoch >= 65533 || bg % 1000 == 0) {
            ASSERT_FALSE(forwarded(syn(++flow))) << "epoch " << epoch << ": a new flow passed undecided";
        }
    }
    EXPECT_TRUE(wrapped);
}

TEST_F(VerdictEpoch, AnUnchangedSnapshotKeepsTheEpoch) {
    std::unique_ptr<dp::PolicySnapshot> pol = compile(kDropAll);
    ASSERT_NE(pol, nullptr);
    publish(pol.get(), 5, false, 0);
    const uint16_t epoch = w_->verdict_epoch();
    w_->load_snapshots();
    w_->load_snapshots();
    EXPECT_EQ(w_->verdict_epoch(), epoch) << "known flows would be decided again on every loop";
    // The known flow keeps its verdict without another evaluation.
    const std::vector<uint8_t> f = syn(1);
    EXPECT_FALSE(forwarded(f));
    const uint64_t evals = w_->counters().policy_evaluations.get();
    EXPECT_FALSE(forwarded(f));
    EXPECT_EQ(w_->counters().policy_evaluations.get(), evals);
}

// What l7gate_verdicts_total (the per-reason reason_flows counters, `reasons[].flows` in the
// stats JSON) counts: verdict changes. Each time a flow's verdict (action, reason) becomes
// another one, +1 under the new reason; a new flow's first verdict is such a change; a
// re-evaluation that gives the same verdict (a reload of the same policy) counts nothing. So
// a flow that passes as `pending` until nDPI names HTTP and is then dropped counts twice.
TEST_F(VerdictEpoch, VerdictsTotalCountsVerdictChanges) {
    const char* const policy = R"(version: 1
default_policy: p
policies:
  p:
    default: pass
    protocols: {HTTP: drop}
)";
    std::unique_ptr<dp::PolicySnapshot> pols[2] = {compile(policy), compile(policy)};
    ASSERT_TRUE(pols[0] && pols[1]);
    publish(pols[0].get(), 1, false, 0);
    const uint16_t pending = pols[0]->pending_reason;
    const uint16_t http = reasons_.id("p/protocols/HTTP");
    const uint16_t dflt = reasons_.id("p/default");
    const auto& c = w_->counters();
    auto flows = [&](uint16_t r) { return c.reason_flows[r].get(); };

    using namespace dp::tcp_flag;
    auto seg = [](bool from_client, uint16_t cport, uint8_t flags, uint32_t seq, uint32_t ack, const char* data) {
        Ipv4Spec ip;
        ip.src = from_client ? Ip4{198, 18, 5, 1} : Ip4{198, 19, 5, 2};
        ip.dst = from_client ? Ip4{198, 19, 5, 2} : Ip4{198, 18, 5, 1};
        TcpSpec t;
        t.sport = from_client ? cport : 80;
        t.dport = from_client ? 80 : cport;
        t.flags = flags;
        t.seq = seq;
        t.ack = ack;
        return ipv4_frame(ip, tcp(t, data != nullptr ? text(data) : Bytes{}));
    };
    const char* get = "GET / HTTP/1.1\r\nHost: counts.test\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
    // An HTTP flow: handshake (pending, passes), then the request (HTTP: dropped).
    EXPECT_TRUE(forwarded(seg(true, 41000, kSyn, 100, 0, nullptr)));
    EXPECT_EQ(flows(pending), 1u) << "a new flow's first verdict counts";
    EXPECT_TRUE(forwarded(seg(false, 41000, kSyn | kAck, 500, 101, nullptr)));
    EXPECT_TRUE(forwarded(seg(true, 41000, kAck, 101, 501, nullptr)));
    EXPECT_EQ(flows(pending), 1u) << "the same verdict again is no change";
    EXPECT_FALSE(forwarded(seg(true, 41000, kPsh | kAck, 101, 501, get)));
    EXPECT_EQ(flows(pending), 1u);
    EXPECT_EQ(flows(http), 1u) << "the change to drop counts under its reason";
    // A reload of the same policy: every flow is decided again; the same verdicts count nothing.
    publish(pols[1].get(), 2, false, 0);
    EXPECT_FALSE(forwarded(seg(true, 41000, kAck, 180, 501, nullptr)));
    EXPECT_EQ(flows(pending), 1u);
    EXPECT_EQ(flows(http), 1u);
    // So the counter is not flows by final verdict: two changes for one flow.
    uint64_t total = 0;
    for (const auto& r : c.reason_flows) {
        total += r.get();
    }
    EXPECT_EQ(total, 2u);
    EXPECT_EQ(flows(dflt), 0u);
}

} // namespace
} // namespace l7gate::test
