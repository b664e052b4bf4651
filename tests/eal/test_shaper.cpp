// The shaper (shape:/police: markers) on real mbufs with a simulated clock: offered loads of
// 2x, 5x and 10x the rate, one and two workers sharing one aggregate bucket, per-host
// buckets, policing, max_delay, and exact accounting of every packet.

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <vector>

#include <rte_mbuf.h>

#include "dataplane/memory.hpp"
#include "dataplane/shaper.hpp"
#include "eal_env.hpp"

namespace l7gate::test {
namespace {

constexpr uint32_t kLen = 1000;            // bytes per packet
constexpr uint64_t kRateBps = 8000000;     // 8 Mbit/s = 1,000,000 bytes/s
constexpr uint64_t kTickNs = 50000;        // drain every 50 us of simulated time
constexpr uint64_t kT0 = 1700000000ull * 1000000000ull;

dp::ShaperProfile profile(uint32_t queue = 512, uint32_t max_delay_us = 100000, bool per_host = false) {
    dp::ShaperProfile p;
    p.name = "t";
    p.rate_bps = kRateBps;
    p.burst_bytes = 16 * 1024;
    p.queue_packets = queue;
    p.max_delay_us = max_delay_us;
    p.per_host = per_host;
    dp::shaper_derive(p);
    return p;
}

struct Departure {
    uint64_t t;
    uint32_t seq;
    uint32_t flow;
    uint64_t waited;
};

// Simulated workers: each has its own Shaper, all share one ShaperBuckets.
class ShaperSim {
public:
    ShaperSim(unsigned workers, const dp::ShaperProfile& p) : p_(p), shapers_(workers) {
        void* mem = dp::table_alloc(sizeof(dp::ShaperBuckets), 0);
        buckets_ = new (mem) dp::ShaperBuckets();
        for (auto& s : shapers_) {
            s = new dp::Shaper();
            EXPECT_EQ(s->init(buckets_, 0), nullptr);
        }
        pol_.shapers.push_back(p_);
    }
    ~ShaperSim() {
        for (auto* s : shapers_) {
            s->flush([](rte_mbuf* m) { rte_pktmbuf_free(m); });
            delete s;
        }
        buckets_->~ShaperBuckets();
        dp::table_free(buckets_);
    }

    // Offers `flows` flows (flow f on worker f % workers, host f when per-host), each at
    // load_each times the rate, for `seconds` of simulated time.
    void run(unsigned flows, double load_each, double seconds, bool police = false) {
        const uint64_t gap = static_cast<uint64_t>(kLen * 8 * 1e9 / (kRateBps * load_each));
        const uint64_t end = kT0 + static_cast<uint64_t>(seconds * 1e9);
        std::vector<uint64_t> next(flows, kT0);
        std::vector<uint32_t> seq(flows, 0);
        for (uint64_t now = kT0; now < end; now += kTickNs) {
            for (unsigned f = 0; f < flows; ++f) {
                while (next[f] <= now) {
                    offer(f, seq[f]++, next[f], police);
                    next[f] += gap;
                }
            }
            for (unsigned w = 0; w < shapers_.size(); ++w) {
                drain(w, now);
            }
        }
        end_ns_ = end;
    }

    // Bytes that left in [from_s, end) of simulated time, per second.
    double rate_after(double from_s, int flow = -1) const {
        const uint64_t from = kT0 + static_cast<uint64_t>(from_s * 1e9);
        uint64_t bytes = 0;
        for (const Departure& d : out_) {
            if (d.t >= from && (flow < 0 || d.flow == static_cast<uint32_t>(flow))) {
                bytes += kLen;
            }
        }
        return static_cast<double>(bytes) * 8e9 / static_cast<double>(end_ns_ - from);
    }

    bool in_order() const {
        std::vector<int64_t> last(1024, -1);
        for (const Departure& d : out_) {
            if (static_cast<int64_t>(d.seq) <= last[d.flow]) {
                return false;
            }
            last[d.flow] = d.seq;
        }
        return true;
    }

    void drain_all(const dp::PolicySnapshot* pol, uint64_t now) {
        for (unsigned w = 0; w < shapers_.size(); ++w) {
            drain(w, now, pol);
        }
    }

    uint64_t backlog() const {
        uint64_t n = 0;
        for (auto* s : shapers_) {
            n += s->backlog();
        }
        return n;
    }

    uint64_t offered = 0, sent = 0, queued = 0, delayed = 0, dropped = 0, expired = 0, overflow = 0, policed = 0;
    uint64_t max_waited = 0;
    std::vector<Departure> out_;

private:
    void offer(unsigned f, uint32_t s, uint64_t t, bool police) {
        rte_mbuf* m = rte_pktmbuf_alloc(eal_pool());
        ASSERT_NE(m, nullptr);
        char* d = rte_pktmbuf_append(m, kLen);
        std::memset(d, 0, kLen);
        std::memcpy(d, &s, 4);
        std::memcpy(d + 4, &f, 4);
        std::memcpy(d + 8, &t, 8);
        ++offered;
        uint64_t key = 0;
        if (p_.per_host) {
            uint8_t addr[16] = {198, 18, 0, static_cast<uint8_t>(f)};
            key = dp::shaper_host_key(dp::HashKey{0x1234, 0x5678}, 0, 1, addr);
        }
        dp::DropReason why = dp::DropReason::None;
        dp::Shaper& sh = *shapers_[f % shapers_.size()];
        switch (sh.admit(m, p_, 0, police, 1, 1, key, t, why)) {
        case dp::Admit::Send:
            ++sent;
            depart(m, t);
            break;
        case dp::Admit::Queued:
            ++queued;
            break;
        case dp::Admit::Drop:
            ++dropped;
            (why == dp::DropReason::Police ? policed : overflow) += 1;
            rte_pktmbuf_free(m);
            break;
        }
    }
    void drain(unsigned w, uint64_t now, const dp::PolicySnapshot* pol = nullptr) {
        shapers_[w]->drain(
            pol != nullptr ? pol : &pol_, now,
            [&](uint8_t shaper, uint8_t out, rte_mbuf* m) {
                EXPECT_EQ(shaper, 0);
                EXPECT_EQ(out, 1);
                ++delayed;
                depart(m, now);
            },
            [&](uint8_t, rte_mbuf* m) {
                ++expired;
                rte_pktmbuf_free(m);
            });
    }
    void depart(rte_mbuf* m, uint64_t now) {
        Departure d{};
        const char* p = rte_pktmbuf_mtod(m, const char*);
        uint64_t t = 0;
        std::memcpy(&d.seq, p, 4);
        std::memcpy(&d.flow, p + 4, 4);
        std::memcpy(&t, p + 8, 8);
        d.t = now;
        d.waited = now - t;
        max_waited = d.waited > max_waited ? d.waited : max_waited;
        out_.push_back(d);
        rte_pktmbuf_free(m);
    }

    dp::ShaperProfile p_;
    dp::PolicySnapshot pol_;
    dp::ShaperBuckets* buckets_ = nullptr;
    std::vector<dp::Shaper*> shapers_;
    uint64_t end_ns_ = 0;
};

class ShaperTest : public ::testing::TestWithParam<std::tuple<unsigned, double>> {
protected:
    static void SetUpTestSuite() { ASSERT_NE(eal_pool(), nullptr); }
};

TEST(ShaperDerive, ChunksAreAMillisecondAndAtMostAQuarterOfTheBurst) {
    dp::ShaperProfile p = profile();
    EXPECT_EQ(p.chunk_bytes, 1000u);             // 1 ms of 1,000,000 B/s
    EXPECT_EQ(p.chunk_ns, 1000000u);
    EXPECT_EQ(p.tau_ns, 16u * 1024u * 1000u);  // 16 KiB at 1 byte/us
    p.rate_bps = 10'000'000'000ull;
    p.burst_bytes = 64 * 1024;
    dp::shaper_derive(p);
    EXPECT_EQ(p.chunk_bytes, 16u * 1024u);
}

TEST(ShaperBucket, GcraGivesTheBurstThenTheRate) {
    dp::SharedBucket b;
    const uint64_t chunk_ns = 1000, tau_ns = 10000;  // 10 chunks of burst
    uint64_t retry = 0;
    unsigned got = 0;
    while (dp::bucket_take(b, kT0, chunk_ns, tau_ns, retry)) {
        ++got;
    }
    EXPECT_EQ(got, 10u);
    EXPECT_EQ(retry, kT0 + 1000);
    EXPECT_FALSE(dp::bucket_take(b, kT0 + 999, chunk_ns, tau_ns, retry));
    EXPECT_TRUE(dp::bucket_take(b, kT0 + 1000, chunk_ns, tau_ns, retry));
    // Idle for a long time: full again, never fuller.
    got = 0;
    while (dp::bucket_take(b, kT0 + 1000000, chunk_ns, tau_ns, retry)) {
        ++got;
    }
    EXPECT_EQ(got, 10u);
}

TEST_P(ShaperTest, AchievedRateWithinFivePercentInOrderAndEveryPacketCounted) {
    const auto [workers, load] = GetParam();
    ShaperSim sim(workers, profile());
    // One flow per worker; together they offer `load` times the rate.
    sim.run(workers, load / workers, 4.0);
    const double rate = sim.rate_after(1.0);
    RecordProperty("achieved_bps", std::to_string(rate));
    EXPECT_NEAR(rate, kRateBps, kRateBps * 0.05) << workers << " worker(s), " << load << "x";
    EXPECT_TRUE(sim.in_order());
    // Above the rate, the queue fills to max_delay (100 ms, 100 packets here): expired at
    // the head, or overflowed when a shorter queue is full first.
    EXPECT_GT(sim.expired + sim.overflow, 0u);
    EXPECT_EQ(sim.offered, sim.sent + sim.delayed + sim.dropped + sim.expired + sim.backlog());
    EXPECT_EQ(sim.queued, sim.delayed + sim.expired + sim.backlog());
    EXPECT_GT(sim.delayed, sim.sent);  // shaping delays, not only drops
}

INSTANTIATE_TEST_SUITE_P(Loads, ShaperTest,
                         ::testing::Combine(::testing::Values(1u, 2u), ::testing::Values(2.0, 5.0, 10.0)));

TEST_F(ShaperTest, UnderTheRateNothingWaitsOrDrops) {
    ShaperSim sim(1, profile());
    sim.run(1, 0.5, 2.0);
    EXPECT_EQ(sim.dropped + sim.expired, 0u);
    EXPECT_EQ(sim.sent, sim.offered);
    EXPECT_NEAR(sim.rate_after(0.5), kRateBps * 0.5, kRateBps * 0.5 * 0.05);
}

TEST_F(ShaperTest, PerHostGivesEachHostItsOwnRate) {
    ShaperSim sim(2, profile(512, 100000, true));
    sim.run(3, 5.0, 4.0);  // three hosts, each at 5x; hosts 0 and 2 share worker 0
    for (int f = 0; f < 3; ++f) {
        EXPECT_NEAR(sim.rate_after(1.0, f), kRateBps, kRateBps * 0.05) << "host " << f;
    }
    EXPECT_TRUE(sim.in_order());
}

TEST_F(ShaperTest, PoliceDropsOutOfProfileAndQueuesNothing) {
    ShaperSim sim(2, profile());
    sim.run(2, 2.5, 4.0, true);
    EXPECT_NEAR(sim.rate_after(1.0), kRateBps, kRateBps * 0.05);
    EXPECT_EQ(sim.queued, 0u);
    EXPECT_GT(sim.policed, 0u);
    EXPECT_EQ(sim.overflow, 0u);
    EXPECT_EQ(sim.offered, sim.sent + sim.policed);
    EXPECT_EQ(sim.max_waited, 0u);
}

TEST_F(ShaperTest, MaxDelayBoundsTheWait) {
    ShaperSim sim(1, profile(65536, 20000));  // a queue far longer than 20 ms of the rate
    sim.run(1, 10.0, 2.0);
    EXPECT_GT(sim.expired, 0u);
    EXPECT_EQ(sim.overflow, 0u);
    EXPECT_LE(sim.max_waited, 20000000u + kTickNs);
    EXPECT_NEAR(sim.rate_after(0.5), kRateBps, kRateBps * 0.05);
}

TEST_F(ShaperTest, ARemovedShaperReleasesItsQueue) {
    ShaperSim sim(1, profile());
    sim.run(1, 5.0, 0.2);
    const uint64_t waiting = sim.backlog();
    ASSERT_GT(waiting, 0u);
    // A reload removed the shaper: its queue leaves unshaped, nothing is lost.
    const uint64_t before = sim.delayed;
    dp::PolicySnapshot empty;
    sim.drain_all(&empty, kT0 + 300000000);
    EXPECT_EQ(sim.backlog(), waiting - dp::Shaper::kDrainBudget);  // a bounded batch per call
    sim.drain_all(&empty, kT0 + 300000000);
    sim.drain_all(&empty, kT0 + 300000000);
    EXPECT_EQ(sim.backlog(), 0u);
    EXPECT_EQ(sim.delayed - before, waiting);
}

} // namespace
} // namespace l7gate::test

namespace l7gate::test {
namespace {

// Issue 18, point 2: a shaper's limits beyond its own queue. Driven directly, one worker's
// Shaper, packets that all find the bucket empty (the first of each key takes the burst).
class ShaperLimits : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_NE(eal_pool(), nullptr);  // EAL up (the mbuf dynamic field)
        void* mem = dp::table_alloc(sizeof(dp::ShaperBuckets), 0);
        buckets_ = new (mem) dp::ShaperBuckets();
        p_ = profile(512, 100000, true);
        p_.burst_bytes = 2000;  // two packets, then the queue
        dp::shaper_derive(p_);
    }
    void TearDown() override {
        if (shaper_ != nullptr) {
            shaper_->flush([](rte_mbuf* m) { rte_pktmbuf_free(m); });
            delete shaper_;
        }
        buckets_->~ShaperBuckets();
        dp::table_free(buckets_);
    }
    dp::Admit offer(uint64_t key, dp::DropReason& why) {
        rte_mbuf* m = rte_pktmbuf_alloc(eal_pool());
        EXPECT_NE(m, nullptr);
        rte_pktmbuf_append(m, kLen);
        const dp::Admit a = shaper_->admit(m, p_, 0, false, 1, 1, key, kT0, why);
        if (a != dp::Admit::Queued) {
            rte_pktmbuf_free(m);
        }
        return a;
    }
    dp::ShaperBuckets* buckets_ = nullptr;
    dp::Shaper* shaper_ = nullptr;
    dp::ShaperProfile p_;
};

TEST_F(ShaperLimits, TheBacklogCapDropsWhatTheQueuesCannotHoldTogether) {
    shaper_ = new dp::Shaper();
    ASSERT_EQ(shaper_->init(buckets_, 0, 40), nullptr);
    std::map<dp::Admit, unsigned> got;
    dp::DropReason last = dp::DropReason::None;
    for (uint64_t host = 1; host <= 10; ++host) {  // 10 hosts, 10 packets each
        for (int k = 0; k < 10; ++k) {
            dp::DropReason why = dp::DropReason::None;
            ++got[offer(host << 32 | 1, why)];
            if (why != dp::DropReason::None) {
                last = why;
            }
        }
    }
    EXPECT_EQ(shaper_->backlog(), 40u);
    EXPECT_EQ(got[dp::Admit::Queued], 40u);
    EXPECT_EQ(got[dp::Admit::Drop] + got[dp::Admit::Send] + got[dp::Admit::Queued], 100u);
    EXPECT_GT(got[dp::Admit::Drop], 0u);
    EXPECT_EQ(last, dp::DropReason::ShaperBacklog);
}

TEST_F(ShaperLimits, AHostBeyondItsQueueSlotsIsCountedAsSuch) {
    shaper_ = new dp::Shaper();
    ASSERT_EQ(shaper_->init(buckets_, 0, 4096), nullptr);
    // Keys whose queue slots start at the same index: the first kProbe hosts take them.
    auto key = [](uint64_t i) { return uint64_t{5} << 32 | (2 * i + 1); };
    for (uint64_t i = 0; i < dp::Shaper::kProbe; ++i) {
        dp::DropReason why = dp::DropReason::None;
        offer(key(i), why);  // the burst
        while (offer(key(i), why) == dp::Admit::Send) {
        }
        ASSERT_EQ(why, dp::DropReason::None) << "host " << i << " got no queue";
    }
    dp::DropReason why = dp::DropReason::None;
    EXPECT_EQ(offer(key(dp::Shaper::kProbe), why), dp::Admit::Drop);
    EXPECT_EQ(why, dp::DropReason::ShaperHosts);
}

TEST(ShaperDefaultQueue, RateTimesMaxDelayInFullSizeFrames) {
    EXPECT_EQ(dp::shaper_default_queue(1000000, 100000), 9u);      // 12,500 bytes
    EXPECT_EQ(dp::shaper_default_queue(20000000, 100000), 167u);   // 250,000 bytes
    EXPECT_EQ(dp::shaper_default_queue(64000, 100000), dp::kShaperMinQueue);
    EXPECT_EQ(dp::shaper_default_queue(100000000000ull, 10000000), dp::kShaperMaxQueue);
}

} // namespace
} // namespace l7gate::test
