// Flow metadata records in the worker (MetaTable): flows with the same hostname and TLS data
// share one record; when no record is free, a flow's verdict still sees its hostname and keeps
// it across policy reloads (a blocked host still reaches it). Driven directly with the
// generated l7 traffic.

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <ndpi_api.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "control/base/ndpi_names.hpp"
#include "control/policy/compiler.hpp"
#include "control/policy/config.hpp"
#include "control/policy/loader.hpp"
#include "dataplane/host_block.hpp"
#include "dataplane/worker.hpp"
#include "eal_env.hpp"
#include "l7_frames.hpp"

namespace l7gate::test {
namespace {

// Every hostname of the l7 set's flows that this policy names, with a marker of its own.
const char* const kPolicy = R"(version: 1
default_policy: p
policies:
  p:
    default: pass
    hostnames: {"*.youtube.com": drop, "*.example.com": pass, "*.example.org": pass, "*.example.net": pass}
)";
const char* const kHostReasons[] = {"p/hostnames/*.example.com", "p/hostnames/*.example.org",
                                    "p/hostnames/*.example.net"};

class MetaRecords : public ::testing::Test {
protected:
    void SetUp() override {
        pool_ = eal_pool();
        ASSERT_NE(pool_, nullptr);
        frames_ = l7_frames();
        ASSERT_GT(frames_.size(), 20u) << "L7GATE_L7_PCAP must name the generated l7.pcap";
        dp::NdpiArena::attach(nullptr);  // nDPI's allocations on this thread: the C heap again
        static ctl::NdpiNames names;
        static const std::string err = names.init("", "");
        ASSERT_EQ(err, "");
        names_ = &names;
    }
    void TearDown() override {
        dp::NdpiArena::attach(nullptr);
        delete w_;
    }

    std::unique_ptr<dp::PolicySnapshot> compile(uint64_t generation, const char* text = kPolicy) {
        ctl::PolicyConfig cfg;
        std::vector<ctl::PolicyError> errors;
        EXPECT_TRUE(ctl::load_policy_text(text, "meta.yaml", ctl::PolicyFormat::Auto, cfg, errors));
        ctl::CompileContext ctx{names_, nullptr, &reasons_, 1, generation};
        auto snap = ctl::compile_policy(cfg, ctx, errors);
        EXPECT_TRUE(errors.empty());
        return snap;
    }

    void start(uint32_t meta_records, rte_ring* flow_log = nullptr) {
        dp::WorkerConfig cfg = eal_worker_config(0, 1);
        cfg.classifier.meta_records = meta_records;
        cfg.flow_log = flow_log;
        cfg.policy = &policy_;
        cfg.blocked = &blocked_;
        w_ = new dp::Worker();
        ASSERT_EQ(w_->init(cfg), nullptr);
        w_->classifier_attach_for_test();
    }

    void feed(const std::vector<std::vector<uint8_t>>& frames, uint64_t t0) {
        dp::Burst& b = w_->burst();
        uint64_t now = t0;
        for (size_t i = 0; i < frames.size();) {
            unsigned n = 0;
            for (; n < dp::kMaxBurst && i < frames.size(); ++n, ++i) {
                rte_mbuf* m = rte_pktmbuf_alloc(pool_);
                ASSERT_NE(m, nullptr);
                std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(frames[i].size())), frames[i].data(),
                            frames[i].size());
                b.mbufs[n] = m;
            }
            const unsigned nout = w_->process_burst(0, n, now);
            for (unsigned k = 0; k < nout; ++k) {
                rte_pktmbuf_free(b.out[k]);
            }
            now += 1000000;
        }
    }

    template <typename Fn>
    void each_flow(Fn&& fn) {
        const dp::FlowTable& t = w_->flow_table();
        for (uint32_t i = 0; i < t.capacity(); ++i) {
            const dp::FlowEntry& e = const_cast<dp::FlowTable&>(t).at(i);
            if (e.live()) {
                fn(e);
            }
        }
    }

    static constexpr uint64_t kT0 = 1700000000ull * 1000000000ull;
    rte_mempool* pool_ = nullptr;
    std::vector<std::vector<uint8_t>> frames_;
    const ctl::NdpiNames* names_ = nullptr;
    ctl::ReasonRegistry reasons_;
    std::atomic<const dp::PolicySnapshot*> policy_{nullptr};
    std::atomic<const dp::BlockedSet*> blocked_{nullptr};
    dp::Worker* w_ = nullptr;
};

TEST_F(MetaRecords, FlowsWithTheSameMetadataShareRecords) {
    start(4096);
    feed(frames_, kT0);
    const dp::MetaTable& mt = w_->classifier().metas();
    const uint32_t first = mt.in_use();
    EXPECT_GE(first, 8u) << "the l7 set has flows with hostnames and TLS data";
    // The same conversations between other addresses: the same hostnames and fingerprints.
    std::vector<std::vector<uint8_t>> again = frames_;
    for (auto& f : again) {
        remap(f, 0x5a);
    }
    feed(again, kT0 + 2000000000ull);
    EXPECT_GT(w_->counters().flows_created.get(), 2u * 15u);
    EXPECT_EQ(mt.in_use(), first) << "the second set of flows made records of its own";
    EXPECT_GE(mt.shared(), first);
    EXPECT_EQ(w_->classifier().counters().meta_pool_full.get(), 0u);
    // Every record goes with its last flow.
    w_->flush_flows();
    EXPECT_EQ(mt.in_use(), 0u);
}

TEST_F(MetaRecords, WithoutAFreeRecordTheVerdictStillSeesTheHostnameAcrossReloads) {
    std::unique_ptr<dp::PolicySnapshot> first = compile(1);
    ASSERT_NE(first, nullptr);
    policy_.store(first.get());
    start(1);  // one record: every flow with metadata but the first loses it
    w_->load_snapshots();
    feed(frames_, kT0);

    std::set<uint16_t> host_reasons;
    for (const char* r : kHostReasons) {
        host_reasons.insert(reasons_.id(r));
    }
    const uint16_t youtube = reasons_.id("p/hostnames/*.youtube.com");
    unsigned lost = 0;
    unsigned lost_by_host = 0;
    unsigned youtube_drops = 0;
    std::vector<std::pair<const dp::FlowEntry*, uint16_t>> decided;
    each_flow([&](const dp::FlowEntry& e) {
        lost += e.meta_lost() ? 1 : 0;
        lost_by_host += e.meta_lost() && host_reasons.count(e.reason) != 0 ? 1 : 0;
        youtube_drops += e.reason == youtube && e.action == dp::cached::kDrop ? 1 : 0;
        decided.emplace_back(&e, e.reason);
    });
    std::printf("robustness: one metadata record: %u flows kept none, %u of them judged by hostname, "
                "youtube drops %u\n", lost, lost_by_host, youtube_drops);
    EXPECT_EQ(lost, w_->classifier().counters().meta_pool_full.get());
    EXPECT_GE(lost_by_host, 3u) << "flows without a record were judged without their hostname";
    EXPECT_EQ(youtube_drops, 1u);
    EXPECT_EQ(w_->classifier().metas().in_use(), 1u);

    // A reload: every flow is judged again on its next packet, except those whose hostname
    // is gone, which keep the verdict that saw it.
    std::unique_ptr<dp::PolicySnapshot> second = compile(2);
    ASSERT_NE(second, nullptr);
    policy_.store(second.get());
    w_->load_snapshots();
    const uint64_t evaluations = w_->counters().policy_evaluations.get();
    feed(frames_, kT0 + 1000000000ull);
    EXPECT_GT(w_->counters().policy_evaluations.get(), evaluations) << "the reload was not seen";
    const dp::FlowEntry* victim = nullptr;
    for (const auto& [e, reason] : decided) {
        ASSERT_TRUE(e->live());
        EXPECT_EQ(e->reason, reason) << "a flow's verdict reason changed across a reload of the same policy";
        if (victim == nullptr && e->meta_lost() && host_reasons.count(e->reason) != 0) {
            victim = e;
        }
    }

    // Only the policy's verdict is kept: a host blocked later still stops such a flow.
    ASSERT_NE(victim, nullptr);
    dp::BlockedSet blocked;
    blocked.generation = 1;
    blocked.reason = reasons_.id("hosts/auto_block");
    blocked.hosts.push_back(dp::host_key(victim->key.ip_version, victim->key.addr[victim->client_slot()]));
    blocked_.store(&blocked);
    w_->load_snapshots();
    feed(frames_, kT0 + 2000000000ull);
    EXPECT_EQ(victim->action, dp::cached::kDrop);
    EXPECT_EQ(victim->reason, blocked.reason);
    w_->flush_flows();
    EXPECT_EQ(w_->classifier().metas().in_use(), 0u);
    policy_.store(nullptr);
    blocked_.store(nullptr);
    w_->load_snapshots();
}

// A flow record says which of the flow's risks a policy exception covers (flow log
// risks_excepted, IPFIX l7gateRiskExceptedBitmap): worked out when the flow ends, only when the
// policy has exceptions at all. The l7 set's SSH on port 2222 carries "Known Protocol on Non
// Standard Port", which the policy excepts for SSH; its other risky flows keep their risks.
TEST_F(MetaRecords, RecordsCarryTheRisksAnExceptionCovers) {
    const char* const with = R"(version: 1
default_policy: p
policies:
  p:
    default: pass
    risk_exceptions:
      - {risks: [known_protocol_on_non_standard_port], protocols: [SSH]}
      - {risks: [tls_missing_sni], hostnames: [nowhere.example]}
)";
    const char* const without = "version: 1\ndefault_policy: p\npolicies:\n  p: {default: pass}\n";
    for (const char* text : {with, without}) {
        SCOPED_TRACE(text == with ? "policy with exceptions" : "policy without exceptions");
        std::unique_ptr<dp::PolicySnapshot> snap = compile(1, text);
        ASSERT_NE(snap, nullptr);
        EXPECT_EQ(snap->any_exceptions, text == with);
        rte_ring* ring = rte_ring_create_elem("meta_excepted", sizeof(dp::FlowRecord), 1024, 0,
                                              RING_F_SP_ENQ | RING_F_SC_DEQ);
        ASSERT_NE(ring, nullptr);
        policy_.store(snap.get());
        start(4096, ring);
        w_->load_snapshots();
        feed(frames_, kT0);
        w_->flush_flows();
        const uint64_t nonstd = uint64_t{1} << NDPI_KNOWN_PROTOCOL_ON_NON_STANDARD_PORT;
        unsigned risky = 0;
        unsigned excepted = 0;
        dp::FlowRecord r;
        while (rte_ring_sc_dequeue_elem(ring, &r, sizeof(r)) == 0) {
            risky += r.risk != 0 ? 1 : 0;
            if (r.risk_excepted != 0) {
                ++excepted;
                EXPECT_EQ(r.risk_excepted, nonstd);
                EXPECT_NE(r.risk & nonstd, 0u);
                EXPECT_EQ(r.app_proto, NDPI_PROTOCOL_SSH);
            }
        }
        EXPECT_GE(risky, 5u) << "the l7 set's risky flows (missing SNI, numeric host, SSH on 2222, ...)";
        EXPECT_EQ(excepted, text == with ? 1u : 0u);
        policy_.store(nullptr);
        w_->load_snapshots();
        delete w_;
        w_ = nullptr;
        dp::NdpiArena::attach(nullptr);  // the next worker's nDPI set-up: not into the freed arena
        rte_ring_free(ring);
    }
}

} // namespace
} // namespace l7gate::test
