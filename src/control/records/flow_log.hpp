#pragma once
// Flow log: the JSON Lines sink of the flow-record stream (record_stream.hpp) writes one
// JSON object per line per flow. Names (protocols, categories, risks) come from an nDPI
// module owned by the control thread, never from a worker's.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <string>

#include "control/records/record_sink.hpp"
#include "dataplane/flow_record.hpp"
#include "dataplane/policy_snapshot.hpp"

struct ndpi_detection_module_struct;

namespace l7gate::ctl {

class ReasonRegistry;

// "pass", "drop", "reject", "shape:NAME" or "police:NAME" for a cached verdict (shaper names
// from `policy`, their index when it is null or no longer has it).
std::string verdict_name(uint8_t verdict, const dp::PolicySnapshot* policy);

// Formats one record as a JSON line (with the trailing newline). reasons/policy may be null.
std::string format_flow_record(const dp::FlowRecord& r, ndpi_detection_module_struct* names,
                               const ReasonRegistry* reasons, const dp::PolicySnapshot* policy);

// The JSON Lines flow log (--flow-log, and --event-log for host events): the first
// RecordSink. Formats each record into a bounded byte buffer and writes it out with
// write(2) on a descriptor that never blocks:
//   - a file is opened O_WRONLY|O_APPEND|O_CREAT (a restart never truncates it) and
//     O_NONBLOCK (a FIFO then never blocks: EAGAIN leaves the bytes in the buffer);
//   - a FIFO with no reader yet (ENXIO) or whose reader went away (EPIPE) is opened again
//     every kRetryOpen, each failure counted (open_failures); records wait in the buffer;
//   - to a FIFO, socket or terminal each write() ends on a line end and is at most PIPE_BUF
//     bytes (atomic for pipes), so a reader never sees a torn line;
//   - "-" is stdout, not ours to make non-blocking: a write is tried only when poll(2) says
//     it can take PIPE_BUF bytes;
//   - when a record does not fit in the buffer (kBufferBytes of unwritten lines), offer()
//     refuses it and the stream counts it lost (sink_full). Whole lines only.
// Reopen (logrotate): the path is opened anew once the line being written is complete.
class FlowLog final : public RecordSink, public EventSink {
public:
    static constexpr size_t kBufferBytes = size_t{1} << 20;
    static constexpr std::chrono::milliseconds kRetryOpen{100};

    explicit FlowLog(const char* name = "flow_log") : name_(name) {}
    FlowLog(const FlowLog&) = delete;
    FlowLog& operator=(const FlowLog&) = delete;
    ~FlowLog() override;

    // Opens the output ("-" = stdout). Returns "" or an error; a FIFO without a reader is no
    // error (opened once one comes).
    std::string open(const std::string& path, ndpi_detection_module_struct* names,
                     size_t buffer_bytes = kBufferBytes);
    bool is_open() const { return configured_; }
    // Verdict names: reason ids and the current snapshot's shapers.
    void set_names(const VerdictNames& names) { verdict_names_ = names; }

    // Queues one pre-formatted line (events such as host blocks; counted apart from records);
    // no-op when closed. Written by the next flush.
    void write_line(const std::string& line) override;

    // RecordSink
    const char* name() const override { return name_; }
    size_t offer(const dp::FlowRecord* recs, size_t n) override;
    void flush(Clock::time_point deadline) override;
    std::string reopen() override;
    void close(Clock::time_point deadline) override;
    SinkCounters counters() const override;

    // Closes at once (what is queued is abandoned); the destructor does it too.
    void close() { close(Clock::now()); }
    uint64_t written() const { return c_.sent; }

private:
    struct Line {
        uint64_t end;  // offset in the output stream just past its newline
        bool record;   // a flow record (else an event line)
    };
    bool append_line(const std::string& line, bool record);
    void write_some(Clock::time_point deadline, bool to_line_end);
    std::string open_fd(bool first);
    void close_fd();
    void drop_partial_line();
    void pop_written();
    bool partial() const { return written_ != done_; }

    const char* name_;
    std::string path_;
    bool configured_ = false;
    bool stdout_ = false;
    int fd_ = -1;
    bool chunked_ = false;       // not a regular file: writes of at most PIPE_BUF, at line ends
    bool reopen_pending_ = false;
    Clock::time_point next_open_{};
    int last_errno_ = 0;         // logged once until a write succeeds again
    size_t cap_ = kBufferBytes;
    ndpi_detection_module_struct* names_ = nullptr;
    VerdictNames verdict_names_;
    // Output stream offsets: buf_ holds bytes [base_, base_ + buf_.size()); written_ bytes are
    // out; done_ is the end of the last line out in full (== written_ between lines).
    std::string buf_;
    uint64_t base_ = 0, written_ = 0, done_ = 0;
    std::deque<Line> lines_;     // lines not out in full, oldest first
    SinkCounters c_;
};

} // namespace l7gate::ctl
