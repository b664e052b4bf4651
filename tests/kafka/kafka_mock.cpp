// A Kafka broker for the tests: librdkafka's in-process mock cluster (rdkafka_mock.h) on
// 127.0.0.1, kept up until standard input ends.
//
//   kafka_mock [TOPIC[:PARTITIONS]...]
//       creates each TOPIC with one partition (a consumer reads the messages in the order they
//       were produced) or PARTITIONS (the mock keeps only the last few MB of each partition),
//       prints the bootstrap address on a line of its own, then reads commands, one a line:
//     down   every broker closes its connections and refuses new ones
//     up     the brokers accept connections again
//   Each command is answered "ok" or "error ..." on stdout.

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

int main(int argc, char** argv) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    // The mock cluster lives in a producer handle's threads; this handle produces nothing.
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (rk == nullptr) {
        std::fprintf(stderr, "kafka_mock: %s\n", err);
        return 1;
    }
    rd_kafka_mock_cluster_t* mc = rd_kafka_mock_cluster_new(rk, 1);
    if (mc == nullptr) {
        std::fprintf(stderr, "kafka_mock: cannot start the mock cluster\n");
        return 1;
    }
    for (int i = 1; i < argc; ++i) {
        std::string topic = argv[i];
        int partitions = 1;
        if (const size_t colon = topic.find(':'); colon != std::string::npos) {
            partitions = std::atoi(topic.c_str() + colon + 1);
            topic.resize(colon);
        }
        if (partitions < 1) {
            std::fprintf(stderr, "kafka_mock: %s: expected TOPIC or TOPIC:PARTITIONS\n", argv[i]);
            return 1;
        }
        if (rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, topic.c_str(), partitions, 1);
            e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            std::fprintf(stderr, "kafka_mock: topic %s: %s\n", argv[i], rd_kafka_err2str(e));
            return 1;
        }
    }
    std::printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    std::fflush(stdout);
    std::string line;
    while (std::getline(std::cin, line)) {
        rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
        if (line == "down") {
            e = rd_kafka_mock_broker_set_down(mc, -1);
        } else if (line == "up") {
            e = rd_kafka_mock_broker_set_up(mc, -1);
        } else if (!line.empty()) {
            std::printf("error: unknown command %s\n", line.c_str());
            std::fflush(stdout);
            continue;
        }
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            std::printf("error %s\n", rd_kafka_err2str(e));
        } else {
            std::printf("ok\n");
        }
        std::fflush(stdout);
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
