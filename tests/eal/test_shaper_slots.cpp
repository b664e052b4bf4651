// Shaper counters are keyed by shaper name (issue 18, point 8a): a reload that lists the same
// shapers in another order (or drops one) relabels nothing. Each name keeps one slot for the
// life of the process (ctl::ShaperSlots), and the slot indexes the cached verdict, the
// counters, the queues and the buckets; the metrics and the stats JSON name a slot after the
// snapshot's shaper there. Driven directly: one worker, two policies with the same shapers in
// swapped order, a reload between them.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "policy_worker.hpp"

namespace l7gate::test {
namespace {

// police: at rates no test packet reaches, so every packet is counted as sent.
const char* const kSlowFirst = R"(version: 1
shapers:
  slow: {rate: 9gbit, burst: 1mb}
  fast: {rate: 10gbit, burst: 1mb}
default_policy: p
policies:
  p:
    default: pass
    ips: {198.19.1.0/24: police:slow, 198.19.2.0/24: police:fast}
)";
const char* const kFastFirst = R"(version: 1
shapers:
  fast: {rate: 10gbit, burst: 1mb}
  slow: {rate: 9gbit, burst: 1mb}
default_policy: p
policies:
  p:
    default: pass
    ips: {198.19.1.0/24: police:slow, 198.19.2.0/24: police:fast}
)";
const char* const kFastOnly = R"(version: 1
shapers:
  fast: {rate: 10gbit, burst: 1mb}
default_policy: p
policies:
  p:
    default: pass
    ips: {198.19.2.0/24: police:fast}
)";

class ShaperNames : public PolicyWorker {
protected:
    // A UDP datagram from 198.18.0.1 to 198.19.<net>.1 (net 1: slow, 2: fast), flow `flow`.
    static std::vector<uint8_t> to(uint8_t net, uint16_t flow) {
        Ipv4Spec ip;
        ip.src = {198, 18, 0, 1};
        ip.dst = {198, 19, net, 1};
        UdpSpec u;
        u.sport = static_cast<uint16_t>(20000 + flow);
        u.dport = 7000;
        return ipv4_frame(ip, udp(u, pattern(100)));
    }
    void send(uint8_t net, unsigned packets) {
        for (unsigned i = 0; i < packets; ++i) {
            EXPECT_TRUE(forwarded(to(net, static_cast<uint16_t>(i % 3))));
        }
    }
    // Per-name counts as the metrics and the stats JSON report them: each slot's counters
    // under the name of the shaper at that slot in the policy in force.
    std::map<std::string, uint64_t> by_name(const dp::PolicySnapshot& pol) const {
        std::map<std::string, uint64_t> out;
        for (size_t i = 0; i < pol.shapers.size(); ++i) {
            const dp::ShaperCounters& c = w_->counters().shaper[i];
            out[pol.shapers[i].name] += c.sent.get() + c.delayed.get() + c.dropped.get();
        }
        return out;
    }
};

TEST_F(ShaperNames, ReorderingTheShapersInAReloadRelabelsNothing) {
    std::unique_ptr<dp::PolicySnapshot> a = compile(kSlowFirst);
    std::unique_ptr<dp::PolicySnapshot> b = compile(kFastFirst);
    ASSERT_TRUE(a && b);
    publish(a.get(), 1, false, 0);
    send(1, 5);  // slow
    send(2, 9);  // fast
    EXPECT_EQ(by_name(*a), (std::map<std::string, uint64_t>{{"slow", 5}, {"fast", 9}}));

    publish(b.get(), 2, false, 0);  // the same shapers, the other way round
    EXPECT_EQ(by_name(*b), (std::map<std::string, uint64_t>{{"slow", 5}, {"fast", 9}}))
        << "the reload relabelled the counters";
    send(1, 3);
    send(2, 4);
    EXPECT_EQ(by_name(*b), (std::map<std::string, uint64_t>{{"slow", 8}, {"fast", 13}}));
    // Both policies give every name the same slot, so either one names the counters alike.
    EXPECT_EQ(by_name(*a), by_name(*b));
}

TEST_F(ShaperNames, ARemovedShaperKeepsItsNameAndCounts) {
    std::unique_ptr<dp::PolicySnapshot> a = compile(kSlowFirst);
    std::unique_ptr<dp::PolicySnapshot> c = compile(kFastOnly);
    ASSERT_TRUE(a && c);
    publish(a.get(), 1, false, 0);
    send(1, 5);
    send(2, 9);
    publish(c.get(), 2, false, 0);
    send(1, 2);  // no longer shaped
    send(2, 1);
    ASSERT_EQ(c->shapers.size(), 2u);
    EXPECT_EQ(by_name(*c), (std::map<std::string, uint64_t>{{"slow", 5}, {"fast", 10}}));
    size_t defined = 0;
    for (const dp::ShaperProfile& p : c->shapers) {
        defined += p.defined ? 1 : 0;
    }
    EXPECT_EQ(defined, 1u);
}

} // namespace
} // namespace l7gate::test
