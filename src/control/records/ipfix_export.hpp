#pragma once
// IPFIX export (RFC 7011) of the flow-record stream: a RecordSink (record_sink.hpp) that
// encodes every finished flow as one biflow record (RFC 5103: forward = client to server,
// reverse* elements for server to client) with the standard elements, ntop's L7 elements
// (PEN 35632, as nProbe exports them) and l7gate's own (PEN 32473, see docs/export.md).
//
// Encoding is CERT's libfixbuf (one fbSession per observation domain, i.e. per worker:
// domain = --ipfix-domain + worker index). Its exporter writes each message into a buffer of
// --ipfix-mtu bytes (fbExporterAllocBuffer), so every message fits the path MTU; the sink
// sends it itself on a connected, non-blocking UDP socket:
//   - offer() sends the messages it completes (at most kSendSlice of sending per call) and
//     flush() the rest; a message that cannot be sent now (EAGAIN) waits in a bounded queue of
//     messages; when the queue is full offer() refuses and the stream counts the records lost
//     (sink_full);
//   - a send error (ECONNREFUSED after the collector's ICMP port unreachable, ENETUNREACH...)
//     loses that message: its records count as write_errors, the socket stays; nothing waits;
//   - templates go out in the first message of every domain, then again every
//     --ipfix-template-refresh seconds and every --ipfix-template-messages messages of the
//     domain (UDP has no session: a collector that starts late learns them then);
//   - a message with records goes out when it is full or kMaxDelay after its first record.
// Long flows (--ipfix-active-timeout): the workers' interim records (FlowEnd::Active) go out
// with flowEndReason 2 and every record's counters are deltas since the flow's previous one
// (FlowRecord::reported_*), so a collector that adds them up gets the flow log's totals.
// Sequence numbers are libfixbuf's: per domain, the count of data records exported before
// the message (lost messages included, so a collector sees the loss).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "control/records/record_sink.hpp"
#include "dataplane/flow_record.hpp"
#include "dataplane/policy_snapshot.hpp"

struct ndpi_detection_module_struct;

namespace l7gate::ctl {

class ReasonRegistry;

struct IpfixConfig {
    std::string target;                 // HOST:PORT (UDP); [v6]:PORT for IPv6
    uint32_t domain_base = 1;           // observation domain of worker w = domain_base + w
    uint16_t mtu = 1400;                // bytes of IPFIX message (IP and UDP headers not counted)
    double template_refresh_s = 30;     // templates resent at least this often (seconds)
    uint32_t template_messages = 100;   // ... and every this many messages of a domain
};

// IPFIX element numbers l7gate uses (docs/export.md has the table).
namespace ipfix {
constexpr uint32_t kPenNtop = 35632;    // ntop
constexpr uint32_t kPenL7gate = 32473;  // RFC 5612 documentation PEN: l7gate's own, experimental
constexpr uint16_t kTidV4 = 256;
constexpr uint16_t kTidV6 = 257;
} // namespace ipfix

class IpfixExporter final : public RecordSink {
public:
    static constexpr size_t kMaxQueuedMessages = 4096;
    static constexpr std::chrono::milliseconds kMaxDelay{200};
    static constexpr std::chrono::microseconds kSendSlice{500};  // sending per offer(), at most

    IpfixExporter();
    IpfixExporter(const IpfixExporter&) = delete;
    IpfixExporter& operator=(const IpfixExporter&) = delete;
    ~IpfixExporter() override;

    // Resolves the collector, opens the socket and one session per worker. "" or an error.
    std::string open(const IpfixConfig& cfg, unsigned workers, ndpi_detection_module_struct* names);
    void set_names(const VerdictNames& names) { verdict_names_ = names; }

    // RecordSink
    const char* name() const override { return "ipfix"; }
    size_t offer(const dp::FlowRecord* recs, size_t n) override;
    void flush(Clock::time_point deadline) override;
    std::string reopen() override { return {}; }  // a socket: nothing to rotate
    void close(Clock::time_point deadline) override;
    SinkCounters counters() const override { return c_; }
    bool wants_interim() const override { return true; }  // --ipfix-active-timeout: deltas

    uint64_t messages_sent() const { return messages_sent_; }
    uint64_t send_errors() const { return send_errors_; }

    struct Domain;  // one observation domain (worker): session, buffer, message state

private:
    struct Message {
        std::vector<uint8_t> bytes;
        uint32_t records;
    };
    bool append(Domain& d, const dp::FlowRecord& r, Clock::time_point now);
    bool emit(Domain& d);  // the message in progress into the queue; false when it is full
    void send_queued(Clock::time_point deadline);
    bool maybe_templates(Domain& d, Clock::time_point now);

    IpfixConfig cfg_;
    int fd_ = -1;
    std::vector<std::unique_ptr<Domain>> domains_;
    void* model_ = nullptr;  // fbInfoModel_t
    ndpi_detection_module_struct* names_ = nullptr;
    VerdictNames verdict_names_;
    std::deque<Message> queue_;
    uint64_t messages_sent_ = 0;
    uint64_t send_errors_ = 0;
    int last_errno_ = 0;
    SinkCounters c_;
};

} // namespace l7gate::ctl
