// Verdicts that need no L7 result (issue 18, points 1 and 9), driven directly: process_burst()
// on a simulated clock, GeoIP from tests/data/geoip-test.mmdb (198.18.0.0/24 IT, 198.18.1.0/24
// CN, 198.18.2.0/23 DE, 198.19.0.0/17 US).
//
// Point 1: a packet whose new flow gets no entry (a 64-entry table filled by a SYN flood)
// still gets every verdict that needs no flow state: the blocked-host set, `ips`, `countries`
// and the default; --on-flow-table-full decides only where L7 markers could change it.
//
// Point 9: the first packet of a flow is dropped whenever every verdict still reachable for it
// (whatever nDPI says later) is at least as strict as drop; likewise reject, police, shape.
// Each policy shape lists the verdicts reachable for a flow from an office host to a CN
// address before nDPI has said anything; the test derives the expected first-packet verdict
// from that list by the rule (the least strict of them, pass when one passes) and checks the
// worker against it.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "control/policy/geoip.hpp"
#include "policy_worker.hpp"

namespace l7gate::test {
namespace {

const ctl::GeoIpDb* geoip() {
    static ctl::GeoIpDb db;
    static const std::string err = [] {
        const char* dir = std::getenv("L7GATE_TEST_DATA");
        return dir == nullptr ? std::string("unset") : db.open(std::string(dir) + "/geoip-test.mmdb");
    }();
    return err.empty() ? &db : nullptr;
}

// A TCP segment from `src`:sport to `dst`:dport.
std::vector<uint8_t> seg(const Ip4& src, uint16_t sport, const Ip4& dst, uint16_t dport, uint8_t flags,
                         uint32_t seq = 0x10000001, uint32_t ack = 0) {
    Ipv4Spec ip;
    ip.src = src;
    ip.dst = dst;
    TcpSpec t;
    t.sport = sport;
    t.dport = dport;
    t.flags = flags;
    t.seq = seq;
    t.ack = ack;
    return ipv4_frame(ip, tcp(t));
}

constexpr uint8_t kSyn = dp::tcp_flag::kSyn;
constexpr uint8_t kAck = dp::tcp_flag::kAck;
const Ip4 kOffice = {192, 168, 1, 10};   // pool office
const Ip4 kCn = {198, 18, 1, 5};         // CN
const Ip4 kIt = {198, 18, 0, 3};         // IT
const Ip4 kBadPrefix = {198, 19, 7, 9};  // US, in the policy's dropped prefix

class Flowless : public PolicyWorker {
protected:
    void SetUp() override {
        PolicyWorker::SetUp();
        if (HasFatalFailure()) {
            return;
        }
        if (geoip() == nullptr) {
            GTEST_SKIP() << "L7GATE_TEST_DATA is not set (it must name the tests/data directory)";
        }
    }

    // A new worker (the fixture's is replaced) with a table of `flows` entries.
    void make_worker(uint32_t flows, bool table_full_drop) {
        w_->flush_flows();
        dp::NdpiArena::attach(nullptr);
        delete w_;
        dp::WorkerConfig cfg = eal_worker_config(0, 1);
        cfg.policy = &policy_;
        cfg.blocked = &blocked_;
        cfg.flows = flows;
        cfg.table_full_drop = table_full_drop;
        cfg.reject_rate = 0;  // nothing injected: process_burst() alone never sends it
        w_ = new dp::Worker();
        ASSERT_EQ(w_->init(cfg), nullptr);
        w_->classifier_attach_for_test();
    }

    dp::PolicySnapshot* compile_geo(const std::string& text) {
        ctl::PolicyConfig cfg;
        std::vector<ctl::PolicyError> errors;
        EXPECT_TRUE(ctl::load_policy_text(text, "policy.yaml", ctl::PolicyFormat::Auto, cfg, errors));
        ctl::CompileContext ctx{names_, geoip(), &reasons_, 1, 1};
        ctx.shaper_slots = &slots_;
        auto snap = ctl::compile_policy(cfg, ctx, errors);
        for (const ctl::PolicyError& e : errors) {
            ADD_FAILURE() << e.message;
        }
        snaps_.push_back(std::move(snap));
        return snaps_.back().get();
    }

    // Fills the 64-entry table with a SYN flood from 198.18.2.x (DE) to 198.18.0.2 (IT), then
    // sends one SYN each from the blocked host, to the CN address, to the dropped prefix and to
    // an allowed address; returns which of the four were forwarded.
    std::vector<bool> flood_then_four() {
        for (uint32_t i = 0; i < 64; ++i) {
            EXPECT_TRUE(forwarded(seg({198, 18, 2, static_cast<uint8_t>(i)}, 2000, {198, 18, 0, 2}, 443, kSyn)));
        }
        const Ip4 src = {198, 18, 3, 1};
        std::vector<bool> out;
        out.push_back(forwarded(seg(kBlockedHost, 3000, kIt, 443, kSyn)));
        out.push_back(forwarded(seg(src, 3001, kCn, 443, kSyn)));
        out.push_back(forwarded(seg(src, 3002, kBadPrefix, 443, kSyn)));
        out.push_back(forwarded(seg(src, 3003, kIt, 443, kSyn)));
        return out;
    }

    uint64_t flowless(dp::Flowless o) const { return w_->counters().flowless[static_cast<size_t>(o)].get(); }
    uint64_t reason_packets(const std::string& r) { return w_->counters().reason_packets[reasons_.id(r)].get(); }

    std::vector<std::unique_ptr<dp::PolicySnapshot>> snaps_;
};

// ---- point 1 ------------------------------------------------------------------------------

std::string flowless_policy(bool l7_marker) {
    return std::string("version: 1\ndefault_policy: p\npolicies:\n  p:\n    default: pass\n"
                       "    ips: {198.19.7.0/24: drop}\n    countries: {CN: drop}\n") +
           (l7_marker ? "    protocols: {Telnet: drop}\n" : "");
}

struct FlowlessCase {
    bool l7_marker;        // an L7 marker (protocols: {Telnet: drop}) makes allowed traffic undecided
    bool table_full_drop;  // --on-flow-table-full
};

class FlowlessVerdicts : public Flowless, public ::testing::WithParamInterface<FlowlessCase> {};

TEST_P(FlowlessVerdicts, FlowIndependentVerdictsApplyWithoutAnEntry) {
    const FlowlessCase c = GetParam();
    make_worker(64, c.table_full_drop);
    publish(compile_geo(flowless_policy(c.l7_marker)), 1, true, 1);
    const std::vector<bool> out = flood_then_four();
    const auto& k = w_->counters();
    ASSERT_EQ(k.flows_created.get(), 64u);
    ASSERT_EQ(k.table_full.get(), 4u) << "the four packets after the flood had no entry";
    EXPECT_FALSE(out[0]) << "from an auto-blocked host";
    EXPECT_FALSE(out[1]) << "to a dropped country";
    EXPECT_FALSE(out[2]) << "to a dropped prefix";
    // Allowed traffic: certain (no L7 marker) it passes whatever the option; undecided, the
    // option decides.
    const bool allowed = !c.l7_marker || !c.table_full_drop;
    EXPECT_EQ(out[3], allowed) << "allowed traffic";
    EXPECT_EQ(flowless(dp::Flowless::Drop), 3u);
    EXPECT_EQ(flowless(dp::Flowless::Pass), c.l7_marker ? 0u : 1u);
    EXPECT_EQ(flowless(dp::Flowless::UndecidedPass), c.l7_marker && !c.table_full_drop ? 1u : 0u);
    EXPECT_EQ(flowless(dp::Flowless::UndecidedDrop), c.l7_marker && c.table_full_drop ? 1u : 0u);
    EXPECT_EQ(k.drops[static_cast<unsigned>(dp::DropReason::Policy)].get(), 3u);
    EXPECT_EQ(k.drops[static_cast<unsigned>(dp::DropReason::TableFull)].get(), allowed ? 0u : 1u);
    EXPECT_EQ(reason_packets("hosts/auto_block"), 1u);
    EXPECT_EQ(reason_packets("p/countries/CN"), 1u);
    EXPECT_EQ(reason_packets("p/ips/198.19.7.0/24"), 1u);
}

INSTANTIATE_TEST_SUITE_P(Cases, FlowlessVerdicts,
                         ::testing::Values(FlowlessCase{false, false}, FlowlessCase{false, true},
                                           FlowlessCase{true, false}, FlowlessCase{true, true}),
                         [](const ::testing::TestParamInfo<FlowlessCase>& i) {
                             return std::string(i.param.l7_marker ? "L7Marker" : "NoL7Marker") +
                                    (i.param.table_full_drop ? "OptionDrop" : "OptionPass");
                         });

// ---- point 9 ------------------------------------------------------------------------------

enum class V { Pass, Shape, Police, Drop, Reject };
int rank(V v) { return static_cast<int>(v); }  // README's strictness order

struct Shape {
    const char* name;
    const char* office;          // the office policy's markers (its parent root: `root`)
    const char* root;
    std::vector<V> reachable;    // every verdict a flow office -> CN can still get
    const char* reason;          // the reason of the expected first-packet verdict
};

// The rule: the least strict reachable verdict; pass (pending) when one of them passes.
V expected(const Shape& s) {
    V v = V::Reject;
    for (const V r : s.reachable) {
        v = rank(r) < rank(v) ? r : v;
    }
    return v;
}

const std::vector<Shape>& shapes() {
    static const std::vector<Shape> s = {
        {"country drop, only drop markers besides (the issue's case)",
         "default: pass\n    countries: {CN: drop}\n    hostnames: {\"*.example.com\": drop}\n    protocols: {BitTorrent: drop}\n",
         "default: pass\n", {V::Drop, V::Drop, V::Drop}, "office/countries/CN"},
        {"country drop, an L7 pass marker", "default: pass\n    countries: {CN: drop}\n    protocols: {HTTP: pass, BitTorrent: drop}\n",
         "default: pass\n", {V::Drop, V::Pass, V::Drop}, "pending"},
        {"country drop, no L7 marker", "default: pass\n    countries: {CN: drop}\n", "default: pass\n", {V::Drop},
         "office/countries/CN"},
        {"country drop, an L7 pass marker only on the parent (after it)", "default: pass\n    countries: {CN: drop}\n",
         "default: pass\n    hostnames: {\"www.example.com\": pass}\n", {V::Drop}, "office/countries/CN"},
        {"country drop on the parent, an L7 pass marker on the leaf (before it)",
         "default: pass\n    hostnames: {\"www.example.com\": pass}\n", "default: pass\n    countries: {CN: drop}\n",
         {V::Pass, V::Drop}, "pending"},
        {"ips drop, L7 drop markers before it", "default: pass\n    ips: {198.18.1.0/24: drop}\n    hostnames: {\"*.example.com\": drop}\n",
         "default: pass\n", {V::Drop, V::Drop}, "office/ips/198.18.1.0/24"},
        {"ips drop, an L7 pass marker before it", "default: pass\n    ips: {198.18.1.0/24: drop}\n    hostnames: {\"*.example.com\": pass}\n",
         "default: pass\n", {V::Drop, V::Pass}, "pending"},
        {"default drop, L7 drop markers", "default: drop\n    protocols: {BitTorrent: drop}\n    categories: {Game: reject}\n",
         "default: pass\n", {V::Drop, V::Drop, V::Reject}, "office/default"},
        {"default drop, an L7 pass marker", "default: drop\n    protocols: {HTTP: pass}\n", "default: pass\n",
         {V::Drop, V::Pass}, "pending"},
        {"default drop inherited, L7 pass marker on the parent", "categories: {Game: drop}\n",
         "default: drop\n    protocols: {HTTP: pass}\n", {V::Drop, V::Drop, V::Pass}, "pending"},
        {"risk markers only, default pass", "default: pass\n    risks: {any: drop}\n", "default: pass\n    score: {at_least: 10, marker: drop}\n",
         {V::Pass, V::Drop}, "office/default"},
        {"risk markers only, default drop", "default: drop\n    risks: {any: drop}\n", "default: pass\n", {V::Drop},
         "office/default"},
        {"country reject, L7 reject markers", "default: pass\n    countries: {CN: reject}\n    hostnames: {\"*.example.com\": reject}\n",
         "default: pass\n", {V::Reject, V::Reject}, "office/countries/CN"},
        {"country reject, an L7 drop marker", "default: pass\n    countries: {CN: reject}\n    hostnames: {\"*.example.com\": drop}\n",
         "default: pass\n", {V::Reject, V::Drop}, "office/hostnames/*.example.com"},
        {"country police, an L7 drop marker", "default: pass\n    countries: {CN: \"police:slow\"}\n    protocols: {BitTorrent: drop}\n",
         "default: pass\n", {V::Police, V::Drop}, "office/countries/CN"},
        {"country drop, an L7 shape marker", "default: pass\n    countries: {CN: drop}\n    protocols: {BitTorrent: \"shape:slow\"}\n",
         "default: pass\n", {V::Drop, V::Shape}, "office/protocols/BitTorrent"},
        {"country shape, an L7 pass marker", "default: pass\n    countries: {CN: \"shape:slow\"}\n    protocols: {HTTP: pass}\n",
         "default: pass\n", {V::Shape, V::Pass}, "pending"},
    };
    return s;
}

std::string shape_policy(const Shape& s) {
    return std::string("version: 1\ndefault_policy: root\nshapers:\n  slow: {rate: 1gbit, burst: 1mb}\n"
                       "pools:\n  - {name: office, ip: [192.168.1.0/24], policy: office}\npolicies:\n  root:\n    ") +
           s.root + "  office:\n    parent: root\n    " + s.office;
}

TEST_F(Flowless, FirstPacketTakesTheVerdictEveryOutcomeShares) {
    make_worker(4096, false);
    uint16_t port = 10000;
    uint64_t gen = 1;
    for (const Shape& s : shapes()) {
        SCOPED_TRACE(s.name);
        publish(compile_geo(shape_policy(s)), ++gen, false, 0);
        const V want = expected(s);
        const auto& k = w_->counters();
        const uint64_t drops = k.drops[static_cast<unsigned>(dp::DropReason::Policy)].get();
        const uint64_t shaped = k.shaper[0].sent.get();
        const uint64_t reasoned = k.reason_flows[reasons_.id(s.reason)].get();
        // The handshake, from the office host to the CN address.
        ++port;
        const bool f0 = forwarded(seg(kOffice, port, kCn, 443, kSyn, 100));
        const bool f1 = forwarded(seg(kCn, 443, kOffice, port, kSyn | kAck, 500, 101));
        const bool f2 = forwarded(seg(kOffice, port, kCn, 443, kAck, 101, 501));
        const bool drops_it = want == V::Drop || want == V::Reject;
        EXPECT_EQ(f0, !drops_it) << "first packet";
        EXPECT_EQ(f1, !drops_it) << "SYN-ACK";
        EXPECT_EQ(f2, !drops_it) << "third packet of the handshake";
        EXPECT_EQ(k.drops[static_cast<unsigned>(dp::DropReason::Policy)].get(), drops + (drops_it ? 3 : 0));
        EXPECT_EQ(k.shaper[0].sent.get(), shaped + (want == V::Shape || want == V::Police ? 3 : 0))
            << "shaped / policed from the first packet";
        EXPECT_EQ(k.reason_flows[reasons_.id(s.reason)].get(), reasoned + 1) << "first verdict's reason " << s.reason;
    }
}

} // namespace
} // namespace l7gate::test
