#pragma once
// Questions to the workers, asked on the control thread through each worker's command and
// reply rings (dataplane/command_channel.hpp), never waited for there:
//   - the prompt ("show flows") calls top_flows() with a callback and returns to the control
//     loop; poll(), once per tick, takes the replies in and runs the callback when every
//     worker answered or the timeout passed (the answer then names the workers that did not);
//   - other threads (DPDK telemetry) call ask() on the inbox(): it queues the question for
//     the control thread and blocks the calling thread (never the control thread) until the
//     answer or its own deadline.
// A worker that has not answered keeps the reply slot its command named until its reply
// comes, however late; that stale reply is then recognised by its sequence number, dropped
// and the slot reused. A worker with every slot still held by stalled commands is reported
// busy at once. Nothing here frees memory a worker may write: the slots belong to the worker.
//
// Threads: everything but ask() and QueryInbox runs on the control thread only.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "dataplane/command_channel.hpp"

namespace l7gate::ctl {

struct TopFlowsAnswer {
    std::vector<dp::FlowSummary> flows;  // every answering worker's, by bytes descending, at most n
    std::vector<unsigned> timed_out;     // workers (indexes) that did not answer in time
    std::vector<unsigned> busy;          // workers whose reply slots all wait on late answers
    bool stopping = false;               // l7gate is stopping: no worker was (or will be) asked
    bool no_control = false;             // ask(): the control thread did not answer in time
};

using TopFlowsDone = std::function<void(TopFlowsAnswer&&)>;

// What other threads share with the control thread: questions in, answers out. Held by
// shared_ptr by each asker for as long as it waits, so it outlives the WorkerQueries.
class QueryInbox {
public:
    // Any thread but the control thread: queues the question and waits up to `wait` for the
    // answer. After close() it answers `stopping` at once.
    TopFlowsAnswer ask(unsigned n, std::chrono::milliseconds wait);

private:
    friend class WorkerQueries;
    struct Request {
        unsigned n = 0;
        bool done = false;
        TopFlowsAnswer answer;
    };
    std::mutex mutex_;
    std::condition_variable cv_;
    bool closed_ = false;
    std::deque<std::shared_ptr<Request>> queued_;
};

class WorkerQueries {
public:
    using Clock = std::chrono::steady_clock;
    static constexpr std::chrono::milliseconds kDefaultTimeout{2000};

    // channels[i]: worker i's (they outlive this object or close() runs first).
    explicit WorkerQueries(std::vector<dp::CommandChannel*> channels,
                           std::chrono::milliseconds timeout = kDefaultTimeout);
    ~WorkerQueries();
    WorkerQueries(const WorkerQueries&) = delete;
    WorkerQueries& operator=(const WorkerQueries&) = delete;

    // Control thread: asks every worker for its n largest flows; `done` runs later, from
    // poll() (or close()), on the control thread, exactly once.
    void top_flows(unsigned n, TopFlowsDone done);
    // Control thread, every tick: replies in, finished or timed-out queries out, then the
    // inbox's questions (at most kInboxPerPoll). Bounded: a few replies per worker.
    void poll(Clock::time_point now = Clock::now());
    // Control thread, at shutdown before the workers are freed: every open query ends
    // `stopping`, the inbox answers `stopping` from now on, and the channels are never
    // touched again. Idempotent.
    void close();

    std::shared_ptr<QueryInbox> inbox() const { return inbox_; }
    std::chrono::milliseconds timeout() const { return timeout_; }
    // Counters (control thread): queries whose answer left a worker out, stale replies
    // dropped, queries open now, slots of worker w held by commands not yet answered.
    uint64_t timeouts() const { return timeouts_; }
    uint64_t stale_replies() const { return stale_; }
    size_t open() const { return open_.size(); }
    unsigned held_slots(unsigned w) const;

    static constexpr unsigned kInboxPerPoll = 8;

private:
    void close_inbox();
    struct Lane {
        dp::CommandChannel* channel = nullptr;
        uint64_t next_seq = 1;
        uint64_t slot_seq[dp::CommandChannel::kSlots] = {};  // 0: free, else the command holding it
    };
    struct Open {
        unsigned n = 0;
        Clock::time_point deadline;
        std::vector<uint64_t> seq;  // per worker: the command awaited, 0: none
        unsigned waiting = 0;
        TopFlowsAnswer answer;
        TopFlowsDone done;
    };
    void finish(Open& q);

    std::vector<Lane> lanes_;
    std::chrono::milliseconds timeout_;
    std::vector<std::unique_ptr<Open>> open_;
    std::shared_ptr<QueryInbox> inbox_ = std::make_shared<QueryInbox>();
    bool closed_ = false;
    uint64_t timeouts_ = 0;
    uint64_t stale_ = 0;
};

} // namespace l7gate::ctl
