#pragma once
// Kafka sink of the flow-record stream (--kafka BROKERS --kafka-topic TOPIC): every flow record
// as one message, the flow log's JSON line (format_flow_record(), the same function) without its
// newline; host block / release events to --kafka-events-topic the same way.
//
// Asynchronous, never blocking (RecordSink contract): offer() hands each message to librdkafka
// with rd_kafka_produce(RD_KAFKA_MSG_F_COPY), which queues it in librdkafka's own bounded queue
// (queue.buffering.max.messages / queue.buffering.max.kbytes) and returns; librdkafka's threads
// send it. flush() is rd_kafka_poll(0): it only serves the delivery reports that arrived.
//   - queue full (RD_KAFKA_RESP_ERR__QUEUE_FULL, the broker slow or away): offer() refuses the
//     record, the stream counts it lost (cause sink_full);
//   - a produce error or a delivery report with an error (message timed out, broker refused):
//     counted in write_errors (cause write_error);
//   - acked by the broker: sent. Produced and not yet reported: queued (the queue depth);
//   - close(): rd_kafka_flush() until the shutdown bound, then what is left is purged and
//     counted abandoned (cause shutdown).
// Per sink: offered = refused + sent + write_errors + abandoned + queued, as for every sink.

#include <atomic>
#include <string>
#include <utility>
#include <vector>

#include "control/records/record_sink.hpp"
#include "dataplane/flow_record.hpp"
#include "dataplane/policy_snapshot.hpp"

struct ndpi_detection_module_struct;
struct rd_kafka_s;
struct rd_kafka_topic_s;
struct rd_kafka_message_s;

namespace l7gate::ctl {

class ReasonRegistry;

struct KafkaConfig {
    std::string brokers;        // --kafka: bootstrap servers, host:port[,host:port...]
    std::string topic;          // --kafka-topic: flow records
    std::string events_topic;   // --kafka-events-topic: host events ("" = none)
    std::vector<std::pair<std::string, std::string>> properties;  // --kafka-config K=V, in order
};

class KafkaSink final : public RecordSink, public EventSink {
public:
    // l7gate's defaults (a --kafka-config property of the same name replaces them): a bounded
    // queue of 100000 messages or 64 MiB, whichever fills first.
    static constexpr const char* kDefaultMaxMessages = "100000";
    static constexpr const char* kDefaultMaxKbytes = "65536";

    explicit KafkaSink(const char* name = "kafka") : name_(name) {}
    KafkaSink(const KafkaSink&) = delete;
    KafkaSink& operator=(const KafkaSink&) = delete;
    ~KafkaSink() override;

    // Creates the producer (no connection is waited for: librdkafka connects in the
    // background). "" or why it cannot (a bad property, an empty broker list).
    std::string open(const KafkaConfig& cfg, ndpi_detection_module_struct* names);
    bool is_open() const { return rk_ != nullptr; }
    bool has_events() const { return events_ != nullptr; }
    void set_names(const VerdictNames& names) { verdict_names_ = names; }

    // EventSink: a host event line to the events topic (no-op without one).
    void write_line(const std::string& line) override;

    // RecordSink
    const char* name() const override { return name_; }
    size_t offer(const dp::FlowRecord* recs, size_t n) override;
    void flush(Clock::time_point deadline) override;
    std::string reopen() override;
    void close(Clock::time_point deadline) override;
    SinkCounters counters() const override { return c_; }

    uint64_t events_queued() const { return events_queued_; }

private:
    static void delivered(rd_kafka_s* rk, const rd_kafka_message_s* m, void* opaque);
    void on_delivery(const rd_kafka_message_s* m);
    // 0 taken, 1 queue full (not taken), 2 refused for another reason (taken, counted).
    int produce(rd_kafka_topic_s* t, const std::string& line, bool record);

    const char* name_;
    rd_kafka_s* rk_ = nullptr;
    rd_kafka_topic_s* topic_ = nullptr;
    rd_kafka_topic_s* events_ = nullptr;
    bool closing_ = false;
    int last_error_ = 0;  // logged once until a delivery succeeds again
    ndpi_detection_module_struct* names_ = nullptr;
    VerdictNames verdict_names_;
    uint64_t events_queued_ = 0;
    SinkCounters c_;
};

} // namespace l7gate::ctl
