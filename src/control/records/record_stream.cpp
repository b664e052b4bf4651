#include "control/records/record_stream.hpp"

#include <algorithm>

#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "control/base/log.hpp"
#include "control/observe/stats_report.hpp"

namespace l7gate::ctl {

size_t RecordStream::poll(const Budget& b) {
    const Clock::time_point start = Clock::now();
    const Clock::time_point deadline = start + b.time;
    if (reopen_flag_ != nullptr && reopen_flag_->load(std::memory_order_relaxed) &&
        reopen_flag_->exchange(false)) {
        log_info("ctl.records", "reopening the logs (SIGUSR1)");
        reopen();
    }
    dp::FlowRecord recs[kBatch];
    dp::FlowRecord finals[kBatch];
    size_t total = 0;
    // Round robin over the rings, one batch each, until the budget or every ring is empty.
    size_t empty_in_a_row = 0;
    while (!rings_.empty() && total < b.records && empty_in_a_row < rings_.size()) {
        const size_t ri = next_ring_;
        rte_ring* ring = rings_[ri];
        next_ring_ = (next_ring_ + 1) % rings_.size();
        const unsigned want = static_cast<unsigned>(std::min(kBatch, b.records - total));
        const unsigned n = rte_ring_sc_dequeue_burst_elem(ring, recs, sizeof(dp::FlowRecord), want, nullptr);
        if (n == 0) {
            ++empty_in_a_row;
            continue;
        }
        empty_in_a_row = 0;
        total += n;
        ring_taken_[ri] += n;
        size_t interim = 0;
        for (unsigned i = 0; i < n; ++i) {
            interim += recs[i].end == static_cast<uint8_t>(dp::FlowEnd::Active);
        }
        size_t nfinal = 0;  // the batch without interim records, made once if a sink needs it
        bool compacted = interim == 0;
        for (Entry& e : sinks_) {
            if (!e.records) {
                continue;
            }
            const dp::FlowRecord* give = recs;
            size_t m = n;
            if (interim != 0 && !e.interim) {
                if (!compacted) {
                    for (unsigned i = 0; i < n; ++i) {
                        if (recs[i].end != static_cast<uint8_t>(dp::FlowEnd::Active)) {
                            finals[nfinal++] = recs[i];
                        }
                    }
                    compacted = true;
                }
                give = finals;
                m = nfinal;
                e.skipped += interim;
            }
            const size_t k = m != 0 ? e.sink->offer(give, m) : 0;
            e.offered += m;
            e.refused += m - std::min<size_t>(k, m);
        }
        if (Clock::now() >= deadline) {
            break;
        }
    }
    taken_ += total;
    for (Entry& e : sinks_) {
        e.sink->flush(deadline);
    }
    return total;
}

size_t RecordStream::backlog() const {
    size_t n = 0;
    for (const rte_ring* r : rings_) {
        n += rte_ring_count(r);
    }
    return n;
}

std::string RecordStream::reopen() {
    std::string out;
    for (Entry& e : sinks_) {
        const std::string err = e.sink->reopen();
        out += std::string(e.sink->name()) + ": " + (err.empty() ? "reopened" : err) + "\n";
    }
    return out.empty() ? "no log to reopen\n" : out;
}

void RecordStream::finish(std::chrono::milliseconds bound) {
    // The workers have stopped: what is in the rings is all there will be. Every record is
    // offered (a sink that cannot take it refuses at once, and it is counted), so this ends.
    while (backlog() != 0) {
        poll();
    }
    const Clock::time_point deadline = Clock::now() + bound;
    for (Entry& e : sinks_) {
        e.sink->close(deadline);
    }
}

std::vector<RecordStream::SinkStats> RecordStream::stats() const {
    std::vector<SinkStats> v;
    for (const Entry& e : sinks_) {
        v.push_back({e.sink->name(), e.records, e.offered, e.refused, e.sink->counters(), e.skipped});
    }
    return v;
}

void fill_record_stats(StatsSnapshot& s, const RecordStream* stream) {
    if (stream == nullptr) {
        return;
    }
    s.record_backlog = stream->backlog();
    s.record_sinks.clear();
    for (const RecordStream::SinkStats& st : stream->stats()) {
        StatsSnapshot::RecordSinkStats r;
        r.name = st.name;
        r.records = st.records;
        r.written = st.c.sent;
        r.sink_full = st.refused;
        r.write_error = st.c.write_errors;
        r.shutdown = st.c.abandoned;
        r.queued = st.c.queued;
        r.skipped = st.skipped;
        r.reopens = st.c.reopens;
        r.open_failures = st.c.open_failures;
        r.events_written = st.c.events_sent;
        r.events_lost = st.c.events_lost;
        s.record_sinks.push_back(std::move(r));
    }
}

} // namespace l7gate::ctl
