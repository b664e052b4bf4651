#pragma once
// HostScores: every host's risk score over a sliding window, and auto-block.
//
// Workers queue ScoreEvents (a host's part of a classified flow's nDPI risk score). The
// control thread adds them up per host over the policy's hosts.auto_block.window; a host
// whose windowed score reaches hosts.auto_block.score is blocked for block_for: the set of
// blocked hosts is published to the workers as an immutable BlockedSet (one pointer, old
// sets freed after an RCU grace period, as policies), which drops every new and existing
// flow of the host with reason hosts/auto_block. Each block and release is logged and
// written to the flow log as a JSON event line. A block resets the host's score: when it is
// released it is blocked again only if it earned the threshold anew in the meantime.
//
// Time is the workers' clock as seen in the events under --clock capture (replays), else
// the wall clock.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/host_block.hpp"

struct rte_ring;
struct rte_rcu_qsbr;

namespace l7gate::dp {
class PolicySnapshot;
}

namespace l7gate::ctl {

class EventSink;
class ReasonRegistry;

struct HostInfo {
    std::string host;              // address text
    uint64_t score = 0;            // over the window
    uint64_t client_score = 0;     // parts of it earned as client / as server
    uint64_t server_score = 0;
    bool blocked = false;
    double blocked_for_s = 0;      // remaining
};

class HostScores {
public:
    static constexpr size_t kMaxHosts = 65536;

    HostScores(rte_rcu_qsbr* qsbr, ReasonRegistry& reasons, bool capture_clock);
    ~HostScores();
    HostScores(const HostScores&) = delete;
    HostScores& operator=(const HostScores&) = delete;

    void add_ring(rte_ring* r) { rings_.push_back(r); }
    const std::atomic<const dp::BlockedSet*>& slot() const { return slot_; }

    // Control-loop tick: take at most max_events events (round robin over the workers' rings,
    // stopping at `deadline` too), apply the policy's auto_block (if any), free retired sets.
    // `events` (may be null) receives block/release lines. What is left waits in the rings
    // (backlog()); a worker whose ring is full counts the events it could not queue
    // (WorkerCounters::score_events_lost). Returns the events taken.
    using Clock = std::chrono::steady_clock;
    static constexpr size_t kEventsPerTick = 4096;
    size_t poll(const dp::PolicySnapshot* policy, EventSink* events, size_t max_events = SIZE_MAX,
                Clock::time_point deadline = Clock::time_point::max());
    // Events waiting in the rings.
    uint64_t backlog() const;
    // Blocked sets replaced but not yet freed (a worker has not passed a quiescent state).
    size_t retired_pending() const { return retired_.size(); }
    // The same without rings, for tests: feed events directly, `now_ns` explicit.
    void add(const dp::ScoreEvent& ev);
    //
    // decide() costs what changed, not the table: releases walk the blocked hosts; only the
    // hosts heard from since the last call (and those just released) can reach the threshold,
    // so only they are checked; the rest of the table is trimmed to the window and forgotten
    // when idle kSweepPerCall hosts per call (a full walk over 65,536 hosts took 10-18 ms).
    // A new policy, or another threshold or window, checks every host once. Scores that
    // top() reports for hosts not heard from lately may lag the window by a sweep round
    // (65,536 / kSweepPerCall calls, 32 ticks).
    static constexpr size_t kSweepPerCall = 2048;
    void decide(const dp::PolicySnapshot* policy, uint64_t now_ns, EventSink* events);

    std::vector<HostInfo> top(size_t n) const;
    size_t blocked_count() const { return blocked_.size(); }
    size_t host_count() const { return hosts_.size(); }
    size_t visited_last_decide() const { return visited_; }  // hosts the last decide() looked at
    uint64_t blocks_total() const { return blocks_total_; }
    uint64_t generation() const { return generation_; }

private:
    struct Host {
        std::deque<std::pair<uint64_t, uint32_t>> events;  // (time, score), oldest first
        std::deque<uint8_t> roles;
        uint64_t sum = 0;
        uint64_t client_sum = 0;
        uint64_t last_ns = 0;
        std::list<dp::HostKey>::iterator lru;  // its place in lru_
    };
    void trim(Host& h, uint64_t now_ns, uint64_t window_ns);
    void publish();
    // decide(): trims h; forgets it (false: erased, `it` moved on) when idle and not blocked;
    // blocks it when at the threshold.
    bool visit(std::map<dp::HostKey, Host>::iterator& it, const dp::PolicySnapshot* policy, bool on,
               uint64_t now_ns, uint64_t window, EventSink* events, bool& changed);

    rte_rcu_qsbr* qsbr_;
    ReasonRegistry& reasons_;
    bool capture_clock_;
    std::vector<rte_ring*> rings_;
    size_t next_ring_ = 0;  // poll(): the ring served first, so a busy one cannot starve the rest
    std::map<dp::HostKey, Host> hosts_;
    std::vector<dp::HostKey> touched_;  // heard from since the last decide() (may repeat)
    dp::HostKey sweep_next_{};          // where the incremental sweep resumes
    bool sweep_started_ = false;
    // What the last decide() ran under: another one checks every host.
    const dp::PolicySnapshot* last_policy_ = nullptr;
    uint64_t last_policy_gen_ = 0, last_score_ = 0, last_window_ = 0;
    bool last_on_ = false, decided_ = false;
    size_t visited_ = 0;
    std::list<dp::HostKey> lru_;  // hosts_' keys, the one heard from least recently first
    std::map<dp::HostKey, uint64_t> blocked_;   // host -> blocked until (ns)
    uint64_t latest_event_ns_ = 0;
    uint64_t blocks_total_ = 0;
    uint64_t generation_ = 0;
    std::atomic<const dp::BlockedSet*> slot_{nullptr};  // cp: rw, dp: ro
    std::unique_ptr<dp::BlockedSet> current_;
    struct Retired {
        uint64_t token;
        std::unique_ptr<dp::BlockedSet> set;
    };
    std::deque<Retired> retired_;
};

} // namespace l7gate::ctl
