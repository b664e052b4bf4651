#pragma once
// One worker driven directly under compiled policies that a test publishes, reloads and
// replaces (tier-2 tests: EAL up, no ports), and the frames it is fed.

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <rte_mbuf.h>

#include "control/base/ndpi_names.hpp"
#include "control/policy/compiler.hpp"
#include "control/policy/config.hpp"
#include "control/policy/loader.hpp"
#include "dataplane/host_block.hpp"
#include "dataplane/worker.hpp"
#include "eal_env.hpp"
#include "unit/frame_builder.hpp"

namespace l7gate::test {

// A TCP SYN (deferred: nDPI sees nothing, so only the epoch can make the worker decide) from
// 198.18.(1 + i>>16).(i>>8).i, or from `blocked_host` when given, to 198.18.0.2:443.
inline std::vector<uint8_t> syn(uint32_t i, const Ip4* from = nullptr) {
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

inline const Ip4 kBlockedHost = {198, 19, 255, 7};

class PolicyWorker : public ::testing::Test {
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
        configure(cfg);
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

    // A test's own worker options (before init).
    virtual void configure(dp::WorkerConfig&) {}

    std::unique_ptr<dp::PolicySnapshot> compile(const char* text) {
        ctl::PolicyConfig cfg;
        std::vector<ctl::PolicyError> errors;
        EXPECT_TRUE(ctl::load_policy_text(text, "policy.yaml", ctl::PolicyFormat::Auto, cfg, errors));
        ctl::CompileContext ctx{names_, nullptr, &reasons_, 1, 1};
        ctx.shaper_slots = &slots_;
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
    ctl::ShaperSlots slots_;  // as l7gate keeps them across reloads
    std::atomic<const dp::PolicySnapshot*> policy_{nullptr};
    std::atomic<const dp::BlockedSet*> blocked_{nullptr};
    dp::BlockedSet sets_[2];
    unsigned flip_ = 0;
    uint64_t now_ = kT0;
    dp::Worker* w_ = nullptr;
};

} // namespace l7gate::test
