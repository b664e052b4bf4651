// Commands to workers through their command and reply rings (dataplane/command_channel.hpp,
// control/worker_queries.hpp) under ThreadSanitizer: two "worker" threads serve their
// channels as Worker::housekeeping() does (a bounded chunk per round), worker 1 stalls (stops
// serving its ring) for a while, and the control thread asks from the prompt path
// (top_flows() with a callback, answers taken in by poll()) while a "telemetry" thread asks
// through the inbox. TSan fails the test on any data race or use after free; the test checks
// that the stalled worker is named, that its late (stale) replies never mix into later
// answers, and that once it serves again every later question gets both workers' flows.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "control/observe/worker_queries.hpp"
#include "dataplane/command_channel.hpp"

namespace l7gate::test {
namespace {

using namespace std::chrono_literals;

// A worker's side of the channel: answers TopFlows(n) with n flows marked with the worker
// (host "w<k>") and n (packets = n, so an answer mixed with another question's shows), one
// flow per round, as the real worker answers a chunk per housekeeping.
void serve(dp::CommandChannel& ch, unsigned worker, const std::atomic<bool>& stalled, const std::atomic<bool>& stop) {
    while (!stop.load(std::memory_order_relaxed)) {
        if (stalled.load(std::memory_order_relaxed)) {
            std::this_thread::sleep_for(1ms);
            continue;
        }
        const dp::Command* c = ch.current();
        if (c == nullptr) {
            std::this_thread::yield();
            continue;
        }
        dp::CommandSlot& s = ch.current_slot();
        uint32_t& i = ch.cursor();
        if (i < c->arg) {
            dp::FlowSummary& f = s.top[s.count++];
            f = dp::FlowSummary{};
            f.packets = c->arg;
            f.bytes = 100 * (i + 1) + worker;  // the largest flows interleave both workers
            std::snprintf(f.host, sizeof(f.host), "w%u", worker);
            ++i;
        }
        if (i >= c->arg) {
            ch.finish();
        }
        std::this_thread::sleep_for(200us);  // the next housekeeping round
    }
}

// The answer is what was asked: every flow answers question n, comes from a worker not
// reported missing, and the list is sorted.
void check_answer(const ctl::TopFlowsAnswer& a, unsigned n, bool expect_w1) {
    ASSERT_FALSE(a.stopping);
    ASSERT_FALSE(a.no_control);
    bool saw[2] = {false, false};
    for (size_t k = 0; k < a.flows.size(); ++k) {
        const dp::FlowSummary& f = a.flows[k];
        EXPECT_EQ(f.packets, n) << "a flow from another question's reply (host " << f.host << ")";
        saw[f.host[1] == '1' ? 1 : 0] = true;
        if (k != 0) {
            EXPECT_GE(a.flows[k - 1].bytes, f.bytes);
        }
    }
    EXPECT_EQ(a.flows.size(), n);
    EXPECT_TRUE(saw[0]);
    if (expect_w1) {
        EXPECT_TRUE(saw[1]) << "worker 1's flows are missing";
        EXPECT_TRUE(a.timed_out.empty());
        EXPECT_TRUE(a.busy.empty());
    } else {
        EXPECT_FALSE(saw[1]) << "worker 1 is stalled: its flows cannot be in the answer";
        EXPECT_EQ(a.timed_out.size() + a.busy.size(), 1u);
    }
}

TEST(Queries, StalledWorkerPromptAndTelemetry) {
    dp::CommandChannel ch[2];
    ASSERT_TRUE(ch[0].init(0));
    ASSERT_TRUE(ch[1].init(0));
    std::atomic<bool> stop{false};
    std::atomic<bool> stalled[2] = {false, true};
    std::vector<std::thread> workers;
    for (unsigned w = 0; w < 2; ++w) {
        workers.emplace_back([&, w] { serve(ch[w], w, stalled[w], stop); });
    }
    ctl::WorkerQueries q({&ch[0], &ch[1]}, 150ms);

    // Control thread: polls every millisecond until pred() holds (10 s at most).
    const auto run_until = [&](auto&& pred) {
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (!pred() && std::chrono::steady_clock::now() < deadline) {
            q.poll();
            std::this_thread::sleep_for(1ms);
        }
        return pred();
    };

    // Worker 1 stalled: the prompt path and the telemetry path, 6 questions in all, more
    // than worker 1 has slots: it is reported timed out, then busy.
    std::atomic<int> tele_done{0};
    std::vector<ctl::TopFlowsAnswer> tele(3);
    std::thread telemetry([&] {
        for (unsigned k = 0; k < 3; ++k) {
            tele[k] = q.inbox()->ask(4, 5s);
            tele_done.fetch_add(1);
        }
    });
    for (unsigned k = 0; k < 3; ++k) {
        bool got = false;
        ctl::TopFlowsAnswer a;
        q.top_flows(3, [&](ctl::TopFlowsAnswer&& x) {
            a = std::move(x);
            got = true;
        });
        ASSERT_TRUE(run_until([&] { return got; }));
        check_answer(a, 3, false);
    }
    ASSERT_TRUE(run_until([&] { return tele_done.load() == 3; }));
    telemetry.join();
    unsigned timed_out = 0;
    for (const auto& a : tele) {
        check_answer(a, 4, false);
        timed_out += static_cast<unsigned>(a.timed_out.size());
    }
    EXPECT_GE(q.timeouts(), 4u);
    EXPECT_EQ(q.held_slots(1), dp::CommandChannel::kSlots) << "late answers keep their slots";
    EXPECT_EQ(q.held_slots(0), 0u);
    EXPECT_EQ(q.stale_replies(), 0u);

    // Worker 1 serves again: its late replies are recognised as stale and their slots come
    // back; every later question gets both workers' flows, and only its own. The first one
    // is asked as soon as a slot is back, so it queues behind the other late commands.
    stalled[1].store(false);
    ASSERT_TRUE(run_until([&] { return q.held_slots(1) < dp::CommandChannel::kSlots; }));
    EXPECT_GT(q.held_slots(1), 0u) << "every late reply came at once: the next question is not behind them";
    {
        bool got = false;
        ctl::TopFlowsAnswer a;
        q.top_flows(5, [&](ctl::TopFlowsAnswer&& x) {
            a = std::move(x);
            got = true;
        });
        ASSERT_TRUE(run_until([&] { return got; }));
        check_answer(a, 5, true);
    }
    ASSERT_TRUE(run_until([&] { return q.held_slots(1) == 0; }));
    EXPECT_EQ(q.stale_replies(), dp::CommandChannel::kSlots);
    std::thread telemetry2([&] {
        for (unsigned k = 0; k < 3; ++k) {
            tele[k] = q.inbox()->ask(6, 5s);
        }
        tele_done.fetch_add(1);
    });
    for (unsigned k = 0; k < 3; ++k) {
        bool got = false;
        ctl::TopFlowsAnswer a;
        q.top_flows(5, [&](ctl::TopFlowsAnswer&& x) {
            a = std::move(x);
            got = true;
        });
        ASSERT_TRUE(run_until([&] { return got; }));
        check_answer(a, 5, true);
    }
    ASSERT_TRUE(run_until([&] { return tele_done.load() == 4; }));
    telemetry2.join();
    check_answer(tele[2], 6, true);

    // Shutdown: a question open at close() ends "stopping", later ones too, and the inbox
    // answers at once.
    stalled[1].store(true);
    bool got = false;
    ctl::TopFlowsAnswer last;
    q.top_flows(2, [&](ctl::TopFlowsAnswer&& x) {
        last = std::move(x);
        got = true;
    });
    q.close();
    EXPECT_TRUE(got);
    EXPECT_TRUE(last.stopping);
    EXPECT_TRUE(q.inbox()->ask(2, 5s).stopping);
    stop.store(true);
    for (auto& t : workers) {
        t.join();
    }
}

} // namespace
} // namespace l7gate::test
