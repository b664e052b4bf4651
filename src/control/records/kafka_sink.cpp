#include "control/records/kafka_sink.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>

#include <librdkafka/rdkafka.h>

#include "control/base/log.hpp"
#include "control/records/flow_log.hpp"

namespace l7gate::ctl {

namespace {

// Each message's opaque tells a record from an event in its delivery report.
char kRecordTag;
char kEventTag;

// librdkafka's log lines, served on the control thread by rd_kafka_poll() (log.queue).
void kafka_log(const rd_kafka_t*, int level, const char* fac, const char* buf) {
    if (level <= 4) {  // syslog levels: warning and worse
        log_warning("ctl.kafka", std::string(fac) + ": " + buf);
    }
}

} // namespace

KafkaSink::~KafkaSink() { close(Clock::now()); }

std::string KafkaSink::open(const KafkaConfig& cfg, ndpi_detection_module_struct* names) {
    names_ = names;
    if (cfg.brokers.empty()) {
        return "--kafka: an empty broker list";
    }
    if (cfg.topic.empty()) {
        return "--kafka-topic: an empty topic name";
    }
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    std::vector<std::pair<std::string, std::string>> props = {
        {"bootstrap.servers", cfg.brokers},
        {"client.id", "l7gate"},
        {"queue.buffering.max.messages", kDefaultMaxMessages},
        {"queue.buffering.max.kbytes", kDefaultMaxKbytes},
        {"log.queue", "true"},
    };
    props.insert(props.end(), cfg.properties.begin(), cfg.properties.end());
    for (const auto& [k, v] : props) {
        if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            return "--kafka-config " + k + "=" + v + ": " + err;
        }
    }
    rd_kafka_conf_set_opaque(conf, this);
    rd_kafka_conf_set_dr_msg_cb(conf, &KafkaSink::delivered);
    rd_kafka_conf_set_log_cb(conf, kafka_log);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (rk == nullptr) {
        rd_kafka_conf_destroy(conf);  // rd_kafka_new() takes it only on success
        return std::string("--kafka: ") + err;
    }
    rd_kafka_set_log_queue(rk, nullptr);  // logs to the main queue: served by flush()
    rk_ = rk;
    topic_ = rd_kafka_topic_new(rk_, cfg.topic.c_str(), nullptr);
    if (topic_ == nullptr) {
        const std::string e = rd_kafka_err2str(rd_kafka_last_error());
        close(Clock::now());
        return "--kafka-topic " + cfg.topic + ": " + e;
    }
    if (!cfg.events_topic.empty()) {
        events_ = rd_kafka_topic_new(rk_, cfg.events_topic.c_str(), nullptr);
        if (events_ == nullptr) {
            const std::string e = rd_kafka_err2str(rd_kafka_last_error());
            close(Clock::now());
            return "--kafka-events-topic " + cfg.events_topic + ": " + e;
        }
    }
    closing_ = false;
    log_info("ctl.kafka", "producing flow records to " + cfg.brokers + " topic " + cfg.topic +
                              (cfg.events_topic.empty() ? "" : ", host events to topic " + cfg.events_topic));
    return {};
}

void KafkaSink::delivered(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    static_cast<KafkaSink*>(opaque)->on_delivery(m);
}

void KafkaSink::on_delivery(const rd_kafka_message_t* m) {
    if (rk_ == nullptr) {
        return;  // closed: every message was counted
    }
    const bool record = m->_private == &kRecordTag;
    if (record) {
        --c_.queued;
    } else {
        --events_queued_;
    }
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        ++(record ? c_.sent : c_.events_sent);
        if (last_error_ != 0) {
            log_info("ctl.kafka", std::string(name_) + ": delivering again");
        }
        last_error_ = 0;
        return;
    }
    if (!record) {
        ++c_.events_lost;
    } else if (closing_ && (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)) {
        ++c_.abandoned;  // still queued when the shutdown bound passed
    } else {
        ++c_.write_errors;
    }
    if (m->err != last_error_ && !closing_) {
        log_warning("ctl.kafka", std::string(name_) + ": delivery failed: " + rd_kafka_err2str(m->err) +
                                     " (counted as lost, cause write_error; logged once until a delivery succeeds)");
    }
    last_error_ = m->err;
}

int KafkaSink::produce(rd_kafka_topic_t* t, const std::string& line, bool record) {
    // The flow log's line without its newline: one JSON object per message.
    const size_t len = !line.empty() && line.back() == '\n' ? line.size() - 1 : line.size();
    void* tag = record ? &kRecordTag : &kEventTag;
    if (rd_kafka_produce(t, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, const_cast<char*>(line.data()), len,
                         nullptr, 0, tag) == 0) {
        ++(record ? c_.queued : events_queued_);
        return 0;
    }
    const rd_kafka_resp_err_t e = rd_kafka_last_error();
    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        return 1;
    }
    if (e != last_error_) {
        log_warning("ctl.kafka", std::string(name_) + ": produce failed: " + rd_kafka_err2str(e));
    }
    last_error_ = e;
    return 2;
}

size_t KafkaSink::offer(const dp::FlowRecord* recs, size_t n) {
    if (rk_ == nullptr) {
        return 0;
    }
    const dp::PolicySnapshot* policy = verdict_names_.snapshot();
    for (size_t i = 0; i < n; ++i) {
        const int r = produce(topic_, format_flow_record(recs[i], names_, verdict_names_.reasons, policy), true);
        if (r == 1) {
            return i;  // librdkafka's queue is full: the rest is refused (the stream counts it)
        }
        if (r == 2) {
            ++c_.write_errors;
        }
    }
    return n;
}

void KafkaSink::write_line(const std::string& line) {
    if (rk_ == nullptr || events_ == nullptr) {
        return;
    }
    if (produce(events_, line, false) != 0) {
        ++c_.events_lost;
    }
}

void KafkaSink::flush(Clock::time_point) {
    if (rk_ != nullptr) {
        rd_kafka_poll(rk_, 0);  // delivery reports and logs that arrived; never waits
    }
}

std::string KafkaSink::reopen() { return rk_ != nullptr ? "Kafka, nothing to reopen" : "not open"; }

void KafkaSink::close(Clock::time_point deadline) {
    if (rk_ == nullptr) {
        return;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    rd_kafka_flush(rk_, static_cast<int>(std::clamp<int64_t>(left, 0, 60000)));  // the shutdown bound
    // What is still queued or in flight is given up: its reports come with a purge error.
    closing_ = true;
    rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(rk_, 0);
    c_.abandoned += c_.queued;  // reports that did not come back
    c_.queued = 0;
    c_.events_lost += events_queued_;
    events_queued_ = 0;
    if (topic_ != nullptr) {
        rd_kafka_topic_destroy(topic_);
        topic_ = nullptr;
    }
    if (events_ != nullptr) {
        rd_kafka_topic_destroy(events_);
        events_ = nullptr;
    }
    rd_kafka_t* rk = rk_;
    rk_ = nullptr;  // reports from here on are not counted again
    rd_kafka_destroy(rk);
}

} // namespace l7gate::ctl
