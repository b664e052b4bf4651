#pragma once
/// RecordSink: where finished-flow records leave l7gate (the JSON Lines flow log today; IPFIX
/// or Kafka exporters next). The RecordStream (record_stream.hpp) drains the workers' rings on
/// the control thread and offers every record to every sink; a sink formats or encodes it,
/// queues the result in memory it bounds, and moves it out without ever blocking.
///
/// Contract (every call on the control thread, none may block):
///   - offer() takes a prefix of the batch and returns its length. What it does not take is
///     lost for this sink: the stream counts it (cause sink_full). A sink refuses rather than
///     waits: a slow consumer of one sink never holds up the workers' rings or the others.
///   - flush() moves queued output on until `deadline`, at least one attempt per call.
///   - reopen() reopens the output (log rotation); records queued stay queued and go to the
///     new output, a record never goes out half in the old one and half in the new one.
///   - close() is the last flush, bounded by `deadline`; what is still queued then is counted
///     in `abandoned` (cause shutdown), never waited for.
/// Accounting, exact for every sink: records offered = refused (counted by the stream) + sent
/// + write_errors + abandoned + queued.
///   - Interim records (dp::FlowEnd::Active, --ipfix-active-timeout) reach only sinks whose
///     wants_interim() is true; the stream never offers them to the others and counts them
///     there as `skipped` (neither offered, written nor lost).
///
/// Adding an exporter: a new file with a RecordSink, and one RecordStream::add_sink() line
/// where l7gate is composed (main.cpp). Workers never change.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/flow_record.hpp"
#include "dataplane/policy_snapshot.hpp"

namespace l7gate::ctl {

class ReasonRegistry;

// What a sink needs to name a record's verdict: the reason ids and the current snapshot (its
// shapers). One for every sink that formats verdicts, set where l7gate is composed.
struct VerdictNames {
    const ReasonRegistry* reasons = nullptr;
    const std::atomic<const dp::PolicySnapshot*>* policy = nullptr;

    const dp::PolicySnapshot* snapshot() const {
        return policy != nullptr ? policy->load(std::memory_order_acquire) : nullptr;
    }
};

struct SinkCounters {
    uint64_t sent = 0;           // records out in full
    uint64_t write_errors = 0;   // records lost to an output error (a line cut by a failed write)
    uint64_t abandoned = 0;      // records still queued when close() gave up (shutdown bound)
    uint64_t queued = 0;         // records taken, not yet out (a gauge)
    uint64_t reopens = 0;        // outputs reopened (rotation, or after the reader went away)
    uint64_t open_failures = 0;  // attempts to open the output that failed (a FIFO without reader)
    uint64_t events_sent = 0;    // non-record lines (host block events), out in full
    uint64_t events_lost = 0;    // non-record lines refused, cut or abandoned
};

class RecordSink {
public:
    using Clock = std::chrono::steady_clock;

    virtual ~RecordSink() = default;

    /// Label of its metrics ("flow_log").
    virtual const char* name() const = 0;
    /// Takes recs[0..k) for some k <= n and returns k; never blocks.
    virtual size_t offer(const dp::FlowRecord* recs, size_t n) = 0;
    /// Moves queued output on until `deadline` (one attempt at least); never blocks.
    virtual void flush(Clock::time_point deadline) = 0;
    /// Reopens the output; "" or why it failed (the sink retries on its own).
    virtual std::string reopen() = 0;
    /// Final flush until `deadline`; the rest is counted abandoned and the output closed.
    virtual void close(Clock::time_point deadline) = 0;
    virtual SinkCounters counters() const = 0;
    /// True: it takes interim records of long flows (FlowEnd::Active) too. False (the flow log):
    /// one record per flow, when it ends, with its totals.
    virtual bool wants_interim() const { return false; }
};

/// Where host block / release events go (HostScores): one JSON line each, with its newline.
/// The flow log (or --event-log) writes it as it is; the Kafka sink sends it to its events
/// topic. Same contract as a sink: never blocks, a line it cannot take is counted lost
/// (SinkCounters::events_lost).
class EventSink {
public:
    virtual ~EventSink() = default;
    virtual void write_line(const std::string& line) = 0;
};

/// Every event to each of several EventSinks (the log and the Kafka events topic).
class EventTee final : public EventSink {
public:
    void add(EventSink& s) { outs_.push_back(&s); }
    bool empty() const { return outs_.empty(); }
    void write_line(const std::string& line) override {
        for (EventSink* s : outs_) {
            s->write_line(line);
        }
    }

private:
    std::vector<EventSink*> outs_;
};

} // namespace l7gate::ctl
