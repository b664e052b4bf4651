#include "control/hosts/host_scores.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cinttypes>
#include <ctime>

#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "control/records/flow_log.hpp"
#include "control/base/log.hpp"
#include "control/policy/compiler.hpp"
#include "dataplane/policy_snapshot.hpp"

namespace l7gate::ctl {

namespace {

std::string key_text(const dp::HostKey& k) {
    char b[INET6_ADDRSTRLEN];
    inet_ntop(k[0] == 4 ? AF_INET : AF_INET6, k.data() + 1, b, sizeof(b));
    return b;
}

uint64_t wall_ns() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

std::string ts_text(uint64_t ns) {
    char b[32];
    std::snprintf(b, sizeof(b), "%" PRIu64 ".%06" PRIu64, ns / 1000000000u, (ns / 1000u) % 1000000u);
    return b;
}

} // namespace

HostScores::HostScores(rte_rcu_qsbr* qsbr, ReasonRegistry& reasons, bool capture_clock)
    : qsbr_(qsbr), reasons_(reasons), capture_clock_(capture_clock) {
    publish();  // an empty set, so workers always have one
}

HostScores::~HostScores() { slot_.store(nullptr, std::memory_order_release); }

void HostScores::add(const dp::ScoreEvent& ev) {
    const dp::HostKey k = dp::host_key(ev.ip_version, ev.addr);
    auto it = hosts_.find(k);
    if (it == hosts_.end()) {
        if (hosts_.size() >= kMaxHosts) {
            // Bounded memory: forget the host heard from least recently (blocked ones stay
            // blocked: the blocked set is separate). The front of the LRU list, not a scan:
            // a flood of scored flows from new addresses arrives once per event, and a scan
            // of 65,536 hosts each time stalled the control thread (and with it l7gate's stop).
            hosts_.erase(lru_.front());
            lru_.pop_front();
        }
        it = hosts_.emplace(k, Host{}).first;
        it->second.lru = lru_.insert(lru_.end(), k);
    } else {
        lru_.splice(lru_.end(), lru_, it->second.lru);
    }
    Host& h = it->second;
    touched_.push_back(k);
    h.events.emplace_back(ev.time_ns, ev.score);
    h.roles.push_back(ev.role);
    h.sum += ev.score;
    h.client_sum += ev.role == 0 ? ev.score : 0;
    h.last_ns = std::max(h.last_ns, ev.time_ns);
    latest_event_ns_ = std::max(latest_event_ns_, ev.time_ns);
}

void HostScores::trim(Host& h, uint64_t now_ns, uint64_t window_ns) {
    while (!h.events.empty() && h.events.front().first + window_ns <= now_ns) {
        h.sum -= h.events.front().second;
        h.client_sum -= h.roles.front() == 0 ? h.events.front().second : 0;
        h.events.pop_front();
        h.roles.pop_front();
    }
}

void HostScores::publish() {
    auto next = std::make_unique<dp::BlockedSet>();
    next->generation = ++generation_;
    next->reason = reasons_.id("hosts/auto_block");
    for (const auto& [k, until] : blocked_) {
        next->hosts.push_back(k);
    }
    std::sort(next->hosts.begin(), next->hosts.end());
    // release: the set is complete before a worker can load its pointer.
    slot_.store(next.get(), std::memory_order_release);
    if (current_ != nullptr) {
        retired_.push_back({qsbr_ != nullptr ? rte_rcu_qsbr_start(qsbr_) : 0, std::move(current_)});
    }
    current_ = std::move(next);
}

bool HostScores::visit(std::map<dp::HostKey, Host>::iterator& it, const dp::PolicySnapshot* policy, bool on,
                       uint64_t now_ns, uint64_t window, EventSink* events, bool& changed) {
    ++visited_;
    trim(it->second, now_ns, window);
    if (it->second.events.empty() && blocked_.count(it->first) == 0 && it->second.last_ns + window <= now_ns) {
        lru_.erase(it->second.lru);
        it = hosts_.erase(it);
        return false;
    }
    if (on && it->second.sum >= policy->auto_block_score && blocked_.count(it->first) == 0) {
        blocked_[it->first] = now_ns + policy->auto_block_for_ns;
        ++blocks_total_;
        changed = true;
        const std::string line = "{\"event\":\"host_blocked\",\"ts\":" + ts_text(now_ns) + ",\"host\":\"" +
                                 key_text(it->first) + "\",\"score\":" + std::to_string(it->second.sum) +
                                 ",\"threshold\":" + std::to_string(policy->auto_block_score) +
                                 ",\"until\":" + ts_text(now_ns + policy->auto_block_for_ns) +
                                 ",\"reason\":\"hosts/auto_block\"}\n";
        log_info("ctl.hosts", "blocked " + key_text(it->first) + ": score " + std::to_string(it->second.sum));
        if (events != nullptr) {
            events->write_line(line);
        }
        // The score starts again from zero: at release the host is blocked again only if
        // it earned the threshold anew meanwhile (it kept attacking).
        it->second.events.clear();
        it->second.roles.clear();
        it->second.sum = 0;
        it->second.client_sum = 0;
    }
    return true;
}

void HostScores::decide(const dp::PolicySnapshot* policy, uint64_t now_ns, EventSink* events) {
    const bool on = policy != nullptr && policy->auto_block;
    const uint64_t window = on ? policy->auto_block_window_ns : 60ull * 1000000000u;
    bool changed = false;
    visited_ = 0;
    // Releases first, so a host that earned the threshold again while blocked is blocked
    // again in the same round (it is checked below with the hosts heard from).
    for (auto it = blocked_.begin(); it != blocked_.end();) {
        if (now_ns >= it->second || !on) {
            const std::string line = "{\"event\":\"host_released\",\"ts\":" + ts_text(now_ns) + ",\"host\":\"" +
                                     key_text(it->first) + "\"}\n";
            log_info("ctl.hosts", "released " + key_text(it->first));
            if (events != nullptr) {
                events->write_line(line);
            }
            touched_.push_back(it->first);
            it = blocked_.erase(it);
            changed = true;
        } else {
            ++it;
        }
    }
    const uint64_t gen = policy != nullptr ? policy->generation : 0;
    const uint64_t score = on ? policy->auto_block_score : 0;
    const bool full = !decided_ || policy != last_policy_ || gen != last_policy_gen_ || on != last_on_ ||
                      score != last_score_ || window != last_window_;
    decided_ = true;
    last_policy_ = policy;
    last_policy_gen_ = gen;
    last_on_ = on;
    last_score_ = score;
    last_window_ = window;
    if (full) {
        // Another policy or threshold: every host once.
        for (auto it = hosts_.begin(); it != hosts_.end();) {
            if (visit(it, policy, on, now_ns, window, events, changed)) {
                ++it;
            }
        }
        sweep_started_ = false;
    } else {
        for (const dp::HostKey& k : touched_) {
            if (auto it = hosts_.find(k); it != hosts_.end()) {
                visit(it, policy, on, now_ns, window, events, changed);
            }
        }
        // The rest of the table, a slice per call: trimmed to the window, idle hosts forgotten.
        auto it = sweep_started_ ? hosts_.lower_bound(sweep_next_) : hosts_.begin();
        for (size_t n = 0; n < kSweepPerCall && it != hosts_.end(); ++n) {
            if (visit(it, policy, on, now_ns, window, events, changed)) {
                ++it;
            }
        }
        sweep_started_ = it != hosts_.end();
        if (sweep_started_) {
            sweep_next_ = it->first;
        }
    }
    touched_.clear();
    if (changed) {
        publish();
    }
}

size_t HostScores::poll(const dp::PolicySnapshot* policy, EventSink* events, size_t max_events,
                        Clock::time_point deadline) {
    constexpr unsigned kBatch = 64;
    dp::ScoreEvent evs[kBatch];
    size_t taken = 0;
    // One batch per ring in turn until every ring is empty, max_events are taken or the
    // deadline passed (checked once per batch).
    for (size_t empty = 0; empty < rings_.size() && taken < max_events;) {
        rte_ring* r = rings_[next_ring_];
        next_ring_ = next_ring_ + 1 < rings_.size() ? next_ring_ + 1 : 0;
        const unsigned want = static_cast<unsigned>(std::min<size_t>(kBatch, max_events - taken));
        const unsigned n = rte_ring_sc_dequeue_burst_elem(r, evs, sizeof(dp::ScoreEvent), want, nullptr);
        empty = n == 0 ? empty + 1 : 0;
        for (unsigned i = 0; i < n; ++i) {
            add(evs[i]);
        }
        taken += n;
        if (n != 0 && deadline != Clock::time_point::max() && Clock::now() >= deadline) {
            break;
        }
    }
    decide(policy, capture_clock_ ? latest_event_ns_ : wall_ns(), events);
    while (!retired_.empty() && (qsbr_ == nullptr || rte_rcu_qsbr_check(qsbr_, retired_.front().token, false) == 1)) {
        retired_.pop_front();
    }
    return taken;
}

uint64_t HostScores::backlog() const {
    uint64_t n = 0;
    for (rte_ring* r : rings_) {
        n += rte_ring_count(r);
    }
    return n;
}

std::vector<HostInfo> HostScores::top(size_t n) const {
    std::vector<HostInfo> v;
    const uint64_t now = capture_clock_ ? latest_event_ns_ : wall_ns();
    for (const auto& [k, h] : hosts_) {
        HostInfo i;
        i.host = key_text(k);
        i.score = h.sum;
        i.client_score = h.client_sum;
        i.server_score = h.sum - h.client_sum;
        if (auto b = blocked_.find(k); b != blocked_.end()) {
            i.blocked = true;
            i.blocked_for_s = b->second > now ? static_cast<double>(b->second - now) / 1e9 : 0;
        }
        v.push_back(i);
    }
    std::sort(v.begin(), v.end(), [](const HostInfo& a, const HostInfo& b) {
        return a.blocked != b.blocked ? a.blocked : a.score != b.score ? a.score > b.score : a.host < b.host;
    });
    if (v.size() > n) {
        v.resize(n);
    }
    return v;
}

} // namespace l7gate::ctl
