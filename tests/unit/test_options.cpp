#include <gtest/gtest.h>

#include <cctype>

#include <string>
#include <vector>

#include "control/ops/options.hpp"

namespace l7gate::test {
namespace {

struct Argv {
    std::vector<std::string> s;
    std::vector<char*> p;
    explicit Argv(std::vector<std::string> a) : s(std::move(a)) {
        for (auto& x : s) {
            p.push_back(x.data());
        }
    }
};

std::string parse(std::vector<std::string> args, ctl::Options& o) {
    args.insert(args.begin(), "l7gate");
    Argv a(args);
    return ctl::parse_options(static_cast<int>(a.p.size()), a.p.data(), 1, o);
}

TEST(Options, DefaultsAreOnePairOneQueue) {
    ctl::Options o;
    ASSERT_EQ(parse({}, o), "");
    ASSERT_EQ(o.pairs.size(), 1u);
    EXPECT_EQ(o.pairs[0].first, 0);
    EXPECT_EQ(o.pairs[0].second, 1);
    EXPECT_EQ(o.rxq, 1u);
    EXPECT_TRUE(o.malformed_drop);
    EXPECT_FALSE(o.table_full_drop);
}

TEST(Options, ParsesEveryValueForm) {
    ctl::Options o;
    ASSERT_EQ(parse({"--pairs", "0:1,2:3", "--rxq=2", "--rss", "driver", "--flows", "1000",
                     "--timeouts", "tcp=100,udp=20,frag=3", "--on-flow-table-full", "drop",
                     "--malformed", "pass", "--idle-exit", "250", "--duration", "1.5",
                     "--stats-json", "/tmp/x.json", "--mbufs", "4096"},
                    o),
              "");
    ASSERT_EQ(o.pairs.size(), 2u);
    EXPECT_EQ(o.pairs[1].first, 2);
    EXPECT_EQ(o.pairs[1].second, 3);
    EXPECT_EQ(o.rxq, 2u);
    EXPECT_FALSE(o.rss_symmetric);
    EXPECT_EQ(o.flows, 1000u);
    EXPECT_EQ(o.timeouts.seconds[static_cast<unsigned>(dp::TimeoutClass::Tcp)], 100u);
    EXPECT_EQ(o.timeouts.seconds[static_cast<unsigned>(dp::TimeoutClass::Udp)], 20u);
    EXPECT_EQ(o.timeouts.seconds[static_cast<unsigned>(dp::TimeoutClass::TcpSyn)], 30u);
    EXPECT_EQ(o.frag_timeout_s, 3u);
    EXPECT_TRUE(o.table_full_drop);
    EXPECT_FALSE(o.malformed_drop);
    EXPECT_EQ(o.idle_exit_ms, 250u);
    EXPECT_DOUBLE_EQ(o.duration_s, 1.5);
    EXPECT_EQ(o.stats_json, "/tmp/x.json");
    EXPECT_EQ(o.mbufs, 4096u);
}

TEST(Options, RejectsBadValuesWithOneLineNamingTheOption) {
    const std::vector<std::vector<std::string>> bad = {
        {"--pairs", "0:0"},      {"--pairs", "0:1,1:2"}, {"--pairs", "0-1"},
        {"--pairs", "0:99"},     {"--rxq", "0"},         {"--rxq", "abc"},
        {"--flows", "-5"},       {"--flows", "12x"},     {"--timeouts", "tcp=0"},
        {"--timeouts", "foo=3"}, {"--malformed", "maybe"}, {"--rss", "asym"},
        {"--duration", "-1"},    {"--idle-exit"},        {"--bogus"},
        {"stray"},               {"--help=yes"},
    };
    for (const auto& args : bad) {
        ctl::Options o;
        const std::string err = parse(args, o);
        EXPECT_FALSE(err.empty()) << args[0];
        EXPECT_EQ(err.find('\n'), std::string::npos) << err;
    }
}

TEST(Options, PolicyMetricsAndClassificationOptions) {
    ctl::Options o;
    ASSERT_EQ(parse({"--policy", "p.yaml", "--policy-format", "nprobe", "--geoip", "g.mmdb",
                     "--metrics", "off", "--clock", "capture", "--dpi-max-packets", "10,5,3",
                     "--dpi-flows", "2048", "--meta-records", "4096", "--flow-log", "-"},
                    o),
              "");
    EXPECT_EQ(o.policy, "p.yaml");
    EXPECT_EQ(o.policy_format, "nprobe");
    EXPECT_EQ(o.geoip, "g.mmdb");
    EXPECT_EQ(o.metrics, "");
    EXPECT_TRUE(o.capture_clock);
    EXPECT_EQ(o.dpi_max_tcp, 10);
    EXPECT_EQ(o.dpi_max_udp, 5);
    EXPECT_EQ(o.dpi_max_other, 3);
    EXPECT_EQ(o.dpi_flows, 2048u);
    EXPECT_EQ(o.meta_records, 4096u);
    EXPECT_EQ(o.flow_log, "-");
    for (const std::vector<std::string>& bad : std::vector<std::vector<std::string>>{
             {"--policy-format", "xml"}, {"--clock", "gps"}, {"--dpi-max-packets", "0"},
             {"--dpi-max-packets", "1,2,3,4"}, {"--dpi-flows", "3"}, {"--metrics", ""},
             {"--meta-records", "8"}, {"--meta-records", "x"}}) {
        ctl::Options b;
        EXPECT_FALSE(parse(bad, b).empty()) << bad[0] << " " << bad[1];
    }
}

TEST(Options, FreshSynsNeedFreshFlows) {
    ctl::Options a;
    EXPECT_NE(parse({"--bench-fresh-syns"}, a), "");
    ctl::Options b;
    ASSERT_EQ(parse({"--bench-fresh-flows", "1000", "--bench-fresh-syns"}, b), "");
    EXPECT_TRUE(b.bench_fresh_syns);
    EXPECT_EQ(b.bench_fresh_flows, 1000u);
    ctl::Options c;
    ASSERT_EQ(parse({"--bench-fresh-flows", "1000"}, c), "");
    EXPECT_FALSE(c.bench_fresh_syns);
}

TEST(Options, FlowLogRingIsAPowerOfTwo) {
    ctl::Options a;
    EXPECT_EQ(a.flow_log_ring, 65536u);
    ASSERT_EQ(parse({"--flow-log-ring", "262144"}, a), "");
    EXPECT_EQ(a.flow_log_ring, 262144u);
    for (const char* bad : {"1000", "512", "0", "33554432", "x"}) {
        ctl::Options b;
        EXPECT_NE(parse({"--flow-log-ring", bad}, b), "") << bad;
    }
    EXPECT_NE(ctl::usage("l7gate").find("--flow-log-ring"), std::string::npos);
}

TEST(Options, KafkaBrokersTopicsAndLibrdkafkaProperties) {
    ctl::Options a;
    EXPECT_EQ(a.kafka, "");
    EXPECT_EQ(a.kafka_topic, "l7gate-flows");
    ASSERT_EQ(parse({"--kafka", "k1:9092,k2:9092", "--kafka-topic", "flows", "--kafka-events-topic", "events",
                     "--kafka-config", "acks=all,linger.ms=10", "--kafka-config", "security.protocol=ssl"}, a), "");
    EXPECT_EQ(a.kafka, "k1:9092,k2:9092");
    EXPECT_EQ(a.kafka_topic, "flows");
    EXPECT_EQ(a.kafka_events_topic, "events");
    const std::vector<std::pair<std::string, std::string>> want = {
        {"acks", "all"}, {"linger.ms", "10"}, {"security.protocol", "ssl"}};
    EXPECT_EQ(a.kafka_config, want);
    for (const char* bad : {"acks", "=1", "acks=all,", ""}) {
        ctl::Options b;
        EXPECT_NE(parse({"--kafka-config", bad}, b), "") << bad;
    }
    ctl::Options c;
    EXPECT_NE(parse({"--kafka", ""}, c), "");
    for (const char* opt : {"--kafka", "--kafka-topic", "--kafka-events-topic", "--kafka-config"}) {
        EXPECT_NE(ctl::usage("l7gate").find(opt), std::string::npos) << opt;
    }
}

TEST(Options, IpfixActiveTimeoutInSeconds) {
    ctl::Options a;
    EXPECT_EQ(a.ipfix_active_s, 120u);  // nProbe's default lifetime timeout
    ASSERT_EQ(parse({"--ipfix-active-timeout", "0"}, a), "");
    EXPECT_EQ(a.ipfix_active_s, 0u);
    ASSERT_EQ(parse({"--ipfix-active-timeout", "86400"}, a), "");
    EXPECT_EQ(a.ipfix_active_s, 86400u);
    for (const char* bad : {"86401", "-1", "1.5", "x", ""}) {
        ctl::Options b;
        EXPECT_NE(parse({"--ipfix-active-timeout", bad}, b), "") << bad;
    }
    EXPECT_NE(ctl::usage("l7gate").find("--ipfix-active-timeout"), std::string::npos);
}

TEST(Options, StopAtEndIsForBenchmarksOnly) {
    ctl::Options a;
    ASSERT_EQ(parse({"--bench-stop-at-end"}, a), "");
    EXPECT_TRUE(a.bench_stop_at_end);
    ctl::Options b;
    EXPECT_FALSE(b.bench_stop_at_end);
    ctl::Options c;
    EXPECT_NE(parse({"--bench-stop-at-end", "--fail-open"}, c), "");
    EXPECT_NE(ctl::usage("l7gate").find("--bench-stop-at-end"), std::string::npos);
}

// --mtu: 68 to 9000 (0: not given); beyond 9000 refused with one line saying so.
TEST(Options, MtuUpTo9000) {
    ctl::Options o;
    EXPECT_EQ(o.mtu, 0u);
    ASSERT_EQ(parse({"--mtu", "9000"}, o), "");
    EXPECT_EQ(o.mtu, 9000u);
    for (const char* v : {"9001", "67", "0", "1500x", "-1"}) {
        ctl::Options b;
        const std::string err = parse({"--mtu", v}, b);
        EXPECT_NE(err.find("--mtu"), std::string::npos) << v << ": " << err;
        EXPECT_NE(err.find("68 to 9000"), std::string::npos) << v << ": " << err;
    }
    EXPECT_NE(ctl::usage("l7gate").find("--mtu"), std::string::npos);
}

TEST(Options, HelpDocumentsEveryOption) {
    const std::string u = ctl::usage("l7gate");
    for (const char* opt : {"--pairs", "--rxq", "--rss", "--flows", "--frags", "--timeouts",
                            "--on-flow-table-full", "--malformed", "--mbufs", "--duration",
                            "--idle-exit", "--stats-interval", "--stats-json", "--help", "--flow-log",
                            "--clock", "--ndpi-protos", "--ndpi-categories", "--dpi-max-packets",
                            "--dpi-flows", "--meta-records", "--policy", "--policy-format", "--geoip", "--check",
                            "--convert-policy", "--metrics", "--rxd", "--txd"}) {
        EXPECT_NE(u.find(opt), std::string::npos) << opt;
    }
    ctl::Options o;
    EXPECT_EQ(parse({"-h"}, o), "");
    EXPECT_TRUE(o.help);
}

// The man page comes from the same table as --help: every option --help lists is in it,
// in roff's escaped form (\-\-name), with its argument.
TEST(Options, ManPageListsEveryHelpOption) {
    const std::string help = ctl::usage("l7gate");
    const std::string man = ctl::man_page();
    auto roff = [](const std::string& s) {
        std::string o;
        for (char c : s) {
            o += c == '-' ? std::string("\\-") : std::string(1, c);
        }
        return o;
    };
    size_t count = 0;
    for (size_t pos = help.find("\n  "); pos != std::string::npos; pos = help.find("\n  ", pos + 1)) {
        const size_t start = pos + 3;
        if (help.compare(start, 2, "--") != 0 && help.compare(start, 1, "-") != 0) {
            continue;  // a wrapped help line
        }
        const std::string head = help.substr(start, help.find('\n', start) - start);
        std::string name = head.substr(head.rfind("--"));
        name = name.substr(0, name.find(' '));
        EXPECT_NE(man.find("\\fB" + roff(name) + "\\fR"), std::string::npos) << name;
        ++count;
    }
    EXPECT_GE(count, 35u);
    EXPECT_NE(man.find(".TH L7GATE 8"), std::string::npos);
    EXPECT_NE(man.find(std::string("l7gate ") + ctl::version()), std::string::npos);
    EXPECT_NE(man.find("\\fB\\-\\-preflight\\fR"), std::string::npos);
}

TEST(Options, VersionIsTheProjectVersion) {
    const std::string v = ctl::version();
    ASSERT_FALSE(v.empty());
    EXPECT_TRUE(std::isdigit(static_cast<unsigned char>(v[0]))) << v;
    ctl::Options o;
    ASSERT_EQ(parse({"--version"}, o), "");
    EXPECT_TRUE(o.version);
}

} // namespace
} // namespace l7gate::test
