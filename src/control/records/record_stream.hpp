#pragma once
/// RecordStream: the flow-record service of the control thread. It drains the workers'
/// finished-flow rings (one SP/SC rte_ring per worker, dp::FlowRecord by value) and offers
/// each record to every registered RecordSink (record_sink.hpp).
///
/// Bounded work: one poll() takes at most Budget::records records and spends at most
/// Budget::time (checked after each batch of kBatch records, so it may overrun by one batch),
/// then lets each sink flush until the same deadline. What it leaves in the rings is its
/// backlog(); when a ring fills, the worker counts the records it cannot queue (flow_log_lost,
/// cause ring_full). A record taken from a ring is offered to every sink at once, so the
/// accounting below holds exactly, per sink, at any quiet moment (and at exit):
///
///   produced = ring_full + backlog + skipped + refused(sink_full) + sent + write_errors + abandoned + queued
///
/// (skipped: interim records of long flows, --ipfix-active-timeout, that a sink does not want;
/// a batch without any costs one pass over its end bytes.)
///
/// Reopen (log rotation): set the flag given to set_reopen_flag() (SIGUSR1's handler does) and
/// the next poll() reopens every sink and output; reopen() does it at once (prompt command).

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "control/records/record_sink.hpp"

struct rte_ring;

namespace l7gate::ctl {

struct StatsSnapshot;

class RecordStream {
public:
    using Clock = std::chrono::steady_clock;

    static constexpr size_t kBatch = 32;                     // records per dequeue and offer
    static constexpr size_t kMaxRecordsPerPoll = 4096;
    static constexpr std::chrono::microseconds kMaxTimePerPoll{2000};
    static constexpr std::chrono::milliseconds kShutdownBound{200};  // close(): the last flush

    struct Budget {
        size_t records = kMaxRecordsPerPoll;
        std::chrono::microseconds time = kMaxTimePerPoll;
    };

    struct SinkStats {
        std::string name;
        bool records = true;     // false: an output of events only (--event-log)
        uint64_t offered = 0;    // records taken from the rings while it was registered
        uint64_t refused = 0;    // of them, refused by offer(): lost, cause sink_full
        SinkCounters c;
        uint64_t skipped = 0;    // interim records taken from the rings, not for it (not offered)
    };

    RecordStream() = default;
    RecordStream(const RecordStream&) = delete;
    RecordStream& operator=(const RecordStream&) = delete;

    void add_ring(rte_ring* r) {
        rings_.push_back(r);
        ring_taken_.push_back(0);
    }
    /// A sink of records (not owned; it outlives the stream's use).
    void add_sink(RecordSink& s) { sinks_.push_back({&s, true, 0, 0, s.wants_interim(), 0}); }
    /// A sink that gets no records but is flushed, reopened and closed with the others (the
    /// --event-log file, written to by HostScores).
    void add_output(RecordSink& s) { sinks_.push_back({&s, false, 0, 0, false, 0}); }
    /// Polls reopen the sinks when *flag was set (exchanged to false); async-signal-safe to set.
    void set_reopen_flag(std::atomic<bool>* flag) { reopen_flag_ = flag; }

    /// Control-loop tick: bounded drain and flush. Returns the records taken from the rings.
    size_t poll(const Budget& b);
    size_t poll() { return poll(Budget{}); }
    /// Records waiting in the workers' rings.
    size_t backlog() const;
    /// Reopens every sink and output now; returns one line per sink for the prompt.
    std::string reopen();
    /// Shutdown, once the workers have stopped: drains the rings (every record offered), then
    /// closes the sinks within `bound`; what they still hold is counted abandoned.
    void finish(std::chrono::milliseconds bound = kShutdownBound);

    std::vector<SinkStats> stats() const;
    uint64_t taken() const { return taken_; }
    /// Records taken from the ring added i-th (every one of them offered to the sinks).
    uint64_t taken(size_t ring) const { return ring < ring_taken_.size() ? ring_taken_[ring] : 0; }

private:
    struct Entry {
        RecordSink* sink;
        bool records;
        uint64_t offered;
        uint64_t refused;
        bool interim;      // wants_interim()
        uint64_t skipped;  // interim records not offered to it
    };
    std::vector<rte_ring*> rings_;
    std::vector<Entry> sinks_;
    std::atomic<bool>* reopen_flag_ = nullptr;
    size_t next_ring_ = 0;  // round robin: a busy worker's ring does not starve the others
    uint64_t taken_ = 0;
    std::vector<uint64_t> ring_taken_;  // by ring
};

/// Copies the stream's per-sink figures and backlog into s (metrics, summary, --stats-json).
void fill_record_stats(StatsSnapshot& s, const RecordStream* stream);

} // namespace l7gate::ctl
