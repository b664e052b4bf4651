#include "control/observe/worker_queries.hpp"

#include <algorithm>

namespace l7gate::ctl {

TopFlowsAnswer QueryInbox::ask(unsigned n, std::chrono::milliseconds wait) {
    auto req = std::make_shared<Request>();
    req->n = n;
    std::unique_lock<std::mutex> lk(mutex_);
    if (closed_) {
        TopFlowsAnswer a;
        a.stopping = true;
        return a;
    }
    queued_.push_back(req);
    if (!cv_.wait_for(lk, wait, [&] { return req->done; })) {
        // Still queued: withdraw it. Already taken: the control thread answers into `req`,
        // which its callback keeps alive, and nobody reads it.
        const auto it = std::find(queued_.begin(), queued_.end(), req);
        if (it != queued_.end()) {
            queued_.erase(it);
        }
        TopFlowsAnswer a;
        a.no_control = true;
        return a;
    }
    return std::move(req->answer);
}

WorkerQueries::WorkerQueries(std::vector<dp::CommandChannel*> channels, std::chrono::milliseconds timeout)
    : timeout_(timeout) {
    lanes_.resize(channels.size());
    for (size_t w = 0; w < channels.size(); ++w) {
        lanes_[w].channel = channels[w];
    }
}

WorkerQueries::~WorkerQueries() {
    // The open queries' callbacks may name objects already gone: they are dropped. Threads
    // still waiting in ask() get `stopping`.
    close_inbox();
}

// Later ask() calls, and those still waiting, get `stopping`.
void WorkerQueries::close_inbox() {
    std::lock_guard<std::mutex> g(inbox_->mutex_);
    inbox_->closed_ = true;
    for (const auto& r : inbox_->queued_) {
        r->answer.stopping = true;
        r->done = true;
    }
    inbox_->queued_.clear();
    inbox_->cv_.notify_all();
}

unsigned WorkerQueries::held_slots(unsigned w) const {
    unsigned n = 0;
    for (uint64_t s : lanes_.at(w).slot_seq) {
        n += s != 0 ? 1 : 0;
    }
    return n;
}

void WorkerQueries::top_flows(unsigned n, TopFlowsDone done) {
    auto q = std::make_unique<Open>();
    q->n = n == 0 ? 1 : std::min(n, dp::kTopFlowsMax);
    q->deadline = Clock::now() + timeout_;
    q->seq.assign(lanes_.size(), 0);
    q->done = std::move(done);
    if (closed_) {
        q->answer.stopping = true;
        q->done(std::move(q->answer));
        return;
    }
    for (unsigned w = 0; w < lanes_.size(); ++w) {
        Lane& l = lanes_[w];
        unsigned s = 0;
        while (s < dp::CommandChannel::kSlots && l.slot_seq[s] != 0) {
            ++s;
        }
        dp::Command c;
        c.seq = l.next_seq;
        c.slot = s;
        c.type = dp::CommandType::TopFlows;
        c.arg = static_cast<uint16_t>(q->n);
        if (s == dp::CommandChannel::kSlots || !l.channel->send(c)) {
            q->answer.busy.push_back(w);
            continue;
        }
        ++l.next_seq;
        l.slot_seq[s] = c.seq;
        q->seq[w] = c.seq;
        ++q->waiting;
    }
    open_.push_back(std::move(q));
}

void WorkerQueries::finish(Open& q) {
    auto& f = q.answer.flows;
    std::stable_sort(f.begin(), f.end(), [](const auto& a, const auto& b) { return a.bytes > b.bytes; });
    if (f.size() > q.n) {
        f.resize(q.n);
    }
    std::sort(q.answer.timed_out.begin(), q.answer.timed_out.end());
    std::sort(q.answer.busy.begin(), q.answer.busy.end());
}

void WorkerQueries::poll(Clock::time_point now) {
    if (closed_) {
        return;
    }
    for (unsigned w = 0; w < lanes_.size(); ++w) {
        Lane& l = lanes_[w];
        dp::Reply r;
        // At most kSlots replies can be there (one per held slot).
        for (unsigned k = 0; k < dp::CommandChannel::kSlots && l.channel->receive(r); ++k) {
            if (r.slot >= dp::CommandChannel::kSlots || l.slot_seq[r.slot] != r.seq) {
                ++stale_;  // cannot happen (one writer each side); counted, never trusted
                continue;
            }
            bool awaited = false;
            for (const auto& q : open_) {
                if (q->seq[w] == r.seq) {
                    if (r.status == 0) {
                        const dp::CommandSlot& s = l.channel->slot(r.slot);
                        const uint32_t c = std::min<uint32_t>(s.count, dp::kTopFlowsMax);
                        q->answer.flows.insert(q->answer.flows.end(), s.top, s.top + c);
                    }
                    q->seq[w] = 0;
                    --q->waiting;
                    awaited = true;
                    break;
                }
            }
            if (!awaited) {
                ++stale_;  // its query timed out: the slot is free again from here
            }
            l.slot_seq[r.slot] = 0;
        }
    }
    std::vector<std::unique_ptr<Open>> ended;
    for (auto it = open_.begin(); it != open_.end();) {
        Open& q = **it;
        if (q.waiting != 0 && now < q.deadline) {
            ++it;
            continue;
        }
        if (q.waiting != 0) {
            for (unsigned w = 0; w < q.seq.size(); ++w) {
                if (q.seq[w] != 0) {
                    q.answer.timed_out.push_back(w);  // its slot stays held until the reply
                    q.seq[w] = 0;
                }
            }
            ++timeouts_;
        }
        finish(q);
        ended.push_back(std::move(*it));
        it = open_.erase(it);
    }
    // Callbacks last: one may start the next query.
    for (auto& q : ended) {
        q->done(std::move(q->answer));
    }
    std::vector<std::shared_ptr<QueryInbox::Request>> reqs;
    {
        std::lock_guard<std::mutex> g(inbox_->mutex_);
        while (!inbox_->queued_.empty() && reqs.size() < kInboxPerPoll) {
            reqs.push_back(std::move(inbox_->queued_.front()));
            inbox_->queued_.pop_front();
        }
    }
    for (auto& req : reqs) {
        top_flows(req->n, [inbox = inbox_, req](TopFlowsAnswer&& a) {
            std::lock_guard<std::mutex> g(inbox->mutex_);
            req->answer = std::move(a);
            req->done = true;
            inbox->cv_.notify_all();
        });
    }
}

void WorkerQueries::close() {
    if (closed_) {
        return;
    }
    closed_ = true;
    close_inbox();
    std::vector<std::unique_ptr<Open>> ended;
    ended.swap(open_);
    for (auto& q : ended) {
        TopFlowsAnswer a;
        a.stopping = true;
        q->done(std::move(a));
    }
}

} // namespace l7gate::ctl
