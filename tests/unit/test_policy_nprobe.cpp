#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "control/policy/config.hpp"
#include "control/policy/loader.hpp"
#include "policy_inputs.hpp"

namespace l7gate::ctl {
// Defined in policy/nprobe.cpp; policy/loader.cpp declares it for itself only.
bool load_nprobe_text(const std::string& text, const std::string& name, PolicyConfig& out,
                      std::vector<PolicyError>& errors);
} // namespace l7gate::ctl

namespace l7gate::test {
namespace {

using ctl::MarkerEntry;
using ctl::PolicyConfig;
using ctl::PolicyError;
using ctl::PolicyFormat;
using ctl::PolicySpec;

std::string all(const std::vector<PolicyError>& errors) {
    std::string s;
    for (const PolicyError& e : errors) {
        s += e.str() + "\n";
    }
    return s;
}

bool load_nprobe(const std::string& text, PolicyConfig& cfg, std::vector<PolicyError>& errors) {
    return ctl::load_nprobe_text(text, "ips.conf", cfg, errors);
}

using Table = std::vector<std::pair<std::string, std::string>>;

Table table(const std::vector<MarkerEntry>& v) {
    Table t;
    for (const MarkerEntry& e : v) {
        t.emplace_back(e.key, e.marker.text);
    }
    return t;
}

// Everything the YAML format can express; positions are not compared (they differ by
// design between the source file and its conversion).
void expect_same(const PolicyConfig& a, const PolicyConfig& b) {
    EXPECT_EQ(a.version, b.version);
    EXPECT_EQ(a.default_policy, b.default_policy);
    ASSERT_EQ(a.shapers.size(), b.shapers.size());
    for (size_t i = 0; i < a.shapers.size(); ++i) {
        SCOPED_TRACE("shaper " + a.shapers[i].name);
        EXPECT_EQ(a.shapers[i].name, b.shapers[i].name);
        EXPECT_EQ(a.shapers[i].rate_bps, b.shapers[i].rate_bps);
        EXPECT_EQ(a.shapers[i].burst_bytes, b.shapers[i].burst_bytes);
        EXPECT_EQ(a.shapers[i].queue_packets, b.shapers[i].queue_packets);
        EXPECT_EQ(a.shapers[i].max_delay_us, b.shapers[i].max_delay_us);
        EXPECT_EQ(a.shapers[i].per_host, b.shapers[i].per_host);
    }
    ASSERT_EQ(a.lists.size(), b.lists.size());
    for (size_t i = 0; i < a.lists.size(); ++i) {
        EXPECT_EQ(a.lists[i].name, b.lists[i].name);
        EXPECT_EQ(a.lists[i].kind, b.lists[i].kind);
        EXPECT_EQ(a.lists[i].items, b.lists[i].items);
    }
    ASSERT_EQ(a.pools.size(), b.pools.size());
    for (size_t i = 0; i < a.pools.size(); ++i) {
        EXPECT_EQ(a.pools[i].name, b.pools[i].name);
        EXPECT_EQ(a.pools[i].ips, b.pools[i].ips);
        EXPECT_EQ(a.pools[i].macs, b.pools[i].macs);
        EXPECT_EQ(a.pools[i].policy, b.pools[i].policy);
    }
    ASSERT_EQ(a.policies.size(), b.policies.size());
    for (size_t i = 0; i < a.policies.size(); ++i) {
        const PolicySpec& x = a.policies[i];
        const PolicySpec& y = b.policies[i];
        SCOPED_TRACE("policy " + x.name);
        EXPECT_EQ(x.name, y.name);
        EXPECT_EQ(x.parent, y.parent);
        ASSERT_EQ(x.default_marker.has_value(), y.default_marker.has_value());
        if (x.default_marker) {
            EXPECT_EQ(x.default_marker->text, y.default_marker->text);
        }
        EXPECT_EQ(table(x.risks), table(y.risks));
        EXPECT_EQ(x.score_at_least, y.score_at_least);
        ASSERT_EQ(x.score_marker.has_value(), y.score_marker.has_value());
        if (x.score_marker) {
            EXPECT_EQ(x.score_marker->text, y.score_marker->text);
        }
        EXPECT_EQ(table(x.protocols), table(y.protocols));
        EXPECT_EQ(table(x.categories), table(y.categories));
        EXPECT_EQ(table(x.countries), table(y.countries));
        EXPECT_EQ(table(x.continents), table(y.continents));
        EXPECT_EQ(table(x.hostnames), table(y.hostnames));
        EXPECT_EQ(table(x.ips), table(y.ips));
        ASSERT_EQ(x.risk_exceptions.size(), y.risk_exceptions.size());
        for (size_t j = 0; j < x.risk_exceptions.size(); ++j) {
            EXPECT_EQ(x.risk_exceptions[j].risks, y.risk_exceptions[j].risks);
            EXPECT_EQ(x.risk_exceptions[j].hostnames, y.risk_exceptions[j].hostnames);
            EXPECT_EQ(x.risk_exceptions[j].ips, y.risk_exceptions[j].ips);
            EXPECT_EQ(x.risk_exceptions[j].protocols, y.risk_exceptions[j].protocols);
        }
    }
}

// Converts to YAML, loads that back and expects the same configuration.
void expect_round_trip(const PolicyConfig& cfg) {
    const std::string yaml = ctl::policy_to_yaml(cfg);
    PolicyConfig back;
    std::vector<PolicyError> errors;
    EXPECT_TRUE(ctl::load_policy_text(yaml, "conv.yaml", PolicyFormat::Yaml, back, errors))
        << all(errors) << yaml;
    EXPECT_EQ(errors.size(), 0u);
    expect_same(cfg, back);
}

TEST(NprobePolicy, ExampleLoadsPoolsPoliciesAndParents) {
    PolicyConfig cfg;
    std::vector<PolicyError> errors;
    ASSERT_TRUE(load_nprobe(kNprobeExample, cfg, errors)) << all(errors);
    EXPECT_TRUE(errors.empty());
    EXPECT_EQ(cfg.file, "ips.conf");
    EXPECT_EQ(cfg.version, 1);
    EXPECT_EQ(cfg.default_policy, "root rule");
    EXPECT_EQ(cfg.default_policy_pos.line, 4);

    ASSERT_EQ(cfg.pools.size(), 3u);
    EXPECT_EQ(cfg.pools[0].name, "my pool 1");
    EXPECT_EQ(cfg.pools[0].ips, (std::vector<std::string>{"192.168.0.1/24", "10.0.0.0/8",
                                                          "2a03:b0c0:2:d0::360:4001/48"}));
    EXPECT_TRUE(cfg.pools[0].macs.empty());
    EXPECT_EQ(cfg.pools[0].policy, "my rule 1");
    EXPECT_EQ(cfg.pools[0].pos.line, 1);
    EXPECT_EQ(cfg.pools[1].name, "my pool 2");
    EXPECT_EQ(cfg.pools[1].macs, (std::vector<std::string>{"e8:06:88:ff:fe:e4", "02:81:27:b5:f9:f3",
                                                           "00:01:01:e4:ba:2c"}));
    EXPECT_EQ(cfg.pools[1].ips, std::vector<std::string>{"172.16.0.0/16"});
    EXPECT_EQ(cfg.pools[1].policy, "my subrule 2 (son of rule 1)");
    EXPECT_EQ(cfg.pools[1].mac_pos.size(), 3u);
    EXPECT_EQ(cfg.pools[2].name, "my pool 3");
    EXPECT_EQ(cfg.pools[2].policy, "my rule 3");

    // File order, with the parent of policy 2 resolved although policy 3 stands between.
    ASSERT_EQ(cfg.policies.size(), 4u);
    EXPECT_EQ(cfg.policies[0].name, "root rule");
    EXPECT_EQ(cfg.policies[1].name, "my rule 1");
    EXPECT_EQ(cfg.policies[2].name, "my rule 3");
    EXPECT_EQ(cfg.policies[3].name, "my subrule 2 (son of rule 1)");
    EXPECT_EQ(cfg.policies[0].parent, "");
    EXPECT_EQ(cfg.policies[1].parent, "root rule");
    EXPECT_EQ(cfg.policies[2].parent, "root rule");
    EXPECT_EQ(cfg.policies[3].parent, "my rule 1");
    EXPECT_EQ(cfg.policies[3].pos.line, 7);

    const PolicySpec& root = cfg.policies[0];
    ASSERT_TRUE(root.default_marker);
    EXPECT_EQ(root.default_marker->text, "pass");
    EXPECT_EQ(table(root.risks), (Table{{"12", "drop"}}));
    EXPECT_EQ(table(root.categories), (Table{{"Video", "drop"}}));
    EXPECT_EQ(table(root.protocols), (Table{{"TLS", "pass"}}));

    const PolicySpec& r1 = cfg.policies[1];
    EXPECT_EQ(table(r1.protocols), (Table{{"HTTP", "pass"}}));
    EXPECT_EQ(table(r1.countries), (Table{{"IT", "pass"}, {"CN", "drop"}}));
    EXPECT_EQ(table(r1.continents), (Table{{"Asia", "drop"}}));

    const PolicySpec& sub = cfg.policies[3];
    ASSERT_TRUE(sub.default_marker);
    EXPECT_EQ(sub.default_marker->text, "drop");
    EXPECT_EQ(table(sub.protocols), (Table{{"53", "pass"}}));
    EXPECT_EQ(table(sub.hostnames), (Table{{"fundingchoicesmessages.google.com", "pass"},
                                           {"www.gstatic.com", "drop"},
                                           {"www.youtube.com", "pass"}}));
    EXPECT_EQ(sub.hostnames[1].pos.file, "ips.conf");
    EXPECT_EQ(sub.hostnames[1].pos.line, 7);
    EXPECT_EQ(sub.hostnames[1].pos.column, 1);
}

TEST(NprobePolicy, AutoDetectsNprobeAfterComments) {
    const std::string text = "# nProbe IPS rules\n\n   # indented comment\n" + kNprobeExample;
    PolicyConfig cfg;
    std::vector<PolicyError> errors;
    ASSERT_TRUE(ctl::load_policy_text(text, "ips.conf", PolicyFormat::Auto, cfg, errors))
        << all(errors);
    EXPECT_EQ(cfg.pools.size(), 3u);
    ASSERT_EQ(cfg.policies.size(), 4u);
    // Line numbers count the comment and blank lines.
    EXPECT_EQ(cfg.policies[0].pos.line, 7);
    EXPECT_EQ(cfg.pools[0].pos.line, 4);

    // And a YAML file is not mistaken for nProbe's format.
    PolicyConfig y;
    errors.clear();
    EXPECT_TRUE(ctl::load_policy_text("# rules\nversion: 1\npolicies:\n  all: {default: pass}\n",
                                      "p.yaml", PolicyFormat::Auto, y, errors))
        << all(errors);
    EXPECT_EQ(y.policies.size(), 1u);
}

TEST(NprobePolicy, CrlfAndByteOrderMarkAreAccepted) {
    std::string text = "\xEF\xBB\xBF# exported on Windows\r\n";
    for (char c : kNprobeExample) {
        text += c == '\n' ? std::string("\r\n") : std::string(1, c);
    }
    PolicyConfig cfg;
    std::vector<PolicyError> errors;
    ASSERT_TRUE(load_nprobe(text, cfg, errors)) << all(errors);
    EXPECT_EQ(cfg.policies.size(), 4u);
    EXPECT_EQ(cfg.policies[3].pos.line, 8);
}

TEST(NprobePolicy, JsonEscapesBeyondTheBasicPlaneAreDecoded) {
    // yaml-cpp refuses JSON's surrogate pairs on its own; brackets inside strings are text.
    const std::string text =
        R"({"policy": {"id": 0, "name": "smile \ud83d\ude00 [{", )"
        R"("hostnames": {"caf\u00e9.example": "drop", "a\\ud83d": "pass"}}})"
        "\n";
    PolicyConfig cfg;
    std::vector<PolicyError> errors;
    ASSERT_TRUE(load_nprobe(text, cfg, errors)) << all(errors);
    ASSERT_EQ(cfg.policies.size(), 1u);
    EXPECT_EQ(cfg.policies[0].name, "smile \xF0\x9F\x98\x80 [{");
    EXPECT_EQ(table(cfg.policies[0].hostnames),
              (Table{{"caf\xC3\xA9.example", "drop"}, {"a\\ud83d", "pass"}}));
    expect_round_trip(cfg);

    // A lone half of a pair is not a character.
    errors.clear();
    EXPECT_FALSE(load_nprobe(R"({"policy": {"id": 0, "name": "\ud83d"}})", cfg, errors));
    ASSERT_FALSE(errors.empty());
    EXPECT_EQ(errors[0].pos.line, 1);
    EXPECT_NE(errors[0].message.find("invalid JSON"), std::string::npos) << all(errors);
}

TEST(NprobePolicy, ExampleRoundTripsThroughYaml) {
    PolicyConfig cfg;
    std::vector<PolicyError> errors;
    ASSERT_TRUE(load_nprobe(kNprobeExample, cfg, errors)) << all(errors);
    const std::string yaml = ctl::policy_to_yaml(cfg);
    EXPECT_EQ(yaml.rfind("# converted from ips.conf\n", 0), 0u) << yaml;
    // Empty sections are left out.
    EXPECT_EQ(yaml.find("shapers"), std::string::npos) << yaml;
    EXPECT_EQ(yaml.find("lists"), std::string::npos) << yaml;
    const size_t mac = yaml.find("mac:");
    EXPECT_NE(mac, std::string::npos) << yaml;
    EXPECT_EQ(yaml.find("mac:", mac + 1), std::string::npos) << yaml;  // pool 2 only
    EXPECT_NE(yaml.find("default_policy: root rule"), std::string::npos) << yaml;
    expect_round_trip(cfg);
}

TEST(NprobePolicy, HandWrittenYamlRoundTrips) {
    const std::string text = R"(# hand written
version: 1
default_policy: office
shapers:
  video: {rate: 20mbit, burst: 256kb}
  guests: {rate: 1.5m, burst: 64k, per: host, queue: 128, max_delay: 20ms}
lists:
  ads: {hostnames: [doubleclick.net, "*.ads.example.com"]}
  bad-nets: {ips: [198.51.100.0/24, "2001:db8::/32"]}
pools:
  - {name: office, ip: [10.0.0.0/8, "fd00::/8"], mac: ["02:00:00:00:00:01"], policy: office}
  - {name: "guests: wifi", mac: ["02:00:00:00:00:02"], policy: "guest #1"}
policies:
  office:
    default: pass
    risks: {12: drop, NDPI_TLS_SELFSIGNED_CERTIFICATE: drop}
    score: {at_least: 250, marker: drop}
    protocols: {BitTorrent: drop, "53": pass, YouTube: "shape:video"}
    categories: {Video: "shape:video"}
    countries: {NO: pass, "yes": drop}
    continents: {Asia: drop}
    hostnames: {"@ads": drop, "*.example.org": pass}
    ips: {"@bad-nets": drop, 192.0.2.1: pass}
    risk_exceptions:
      - {risks: [12, 15], hostnames: [update.example.com], protocols: [TLS]}
      - {risks: [NDPI_BINARY_APPLICATION_TRANSFER], ips: [10.1.2.3]}
  "guest #1":
    parent: office
    default: drop
  empty-one:
)";
    PolicyConfig cfg;
    std::vector<PolicyError> errors;
    ASSERT_TRUE(ctl::load_policy_text(text, "hand.yaml", PolicyFormat::Auto, cfg, errors))
        << all(errors);
    ASSERT_EQ(cfg.shapers.size(), 2u);
    EXPECT_EQ(cfg.shapers[1].rate_bps, 1500000u);
    EXPECT_TRUE(cfg.shapers[1].per_host);
    ASSERT_EQ(cfg.lists.size(), 2u);
    ASSERT_EQ(cfg.policies.size(), 3u);
    ASSERT_EQ(cfg.policies[0].risk_exceptions.size(), 2u);
    const std::string yaml = ctl::policy_to_yaml(cfg);
    EXPECT_EQ(yaml.rfind("# converted from hand.yaml\n", 0), 0u) << yaml;
    expect_round_trip(cfg);
}

TEST(NprobePolicy, HostnamesInsideAndBesideMarkersMerge) {
    const std::string text =
        R"({"policy": {"id": 0, "name": "p", "hostnames": {"a.com": "drop"}, )"
        R"("markers": {"hostnames": {"b.com": "pass", "a.com": "drop"}}, )"
        R"("flow_risk": {"risks": [3, 12, 3], "marker": "drop"}}})"
        "\n";
    PolicyConfig cfg;
    std::vector<PolicyError> errors;
    ASSERT_TRUE(load_nprobe(text, cfg, errors)) << all(errors);
    ASSERT_EQ(cfg.policies.size(), 1u);
    // Written order; the repeat with the same marker is not an error and not kept twice.
    EXPECT_EQ(table(cfg.policies[0].hostnames), (Table{{"a.com", "drop"}, {"b.com", "pass"}}));
    EXPECT_EQ(table(cfg.policies[0].risks), (Table{{"3", "drop"}, {"12", "drop"}}));

    // The same hostname with two different markers is a contradiction.
    const std::string clash =
        R"({"policy": {"id": 0, "hostnames": {"a.com": "drop"}, )"
        R"("markers": {"hostnames": {"a.com": "pass"}}}})";
    errors.clear();
    EXPECT_FALSE(load_nprobe(clash, cfg, errors));
    ASSERT_EQ(errors.size(), 1u) << all(errors);
    EXPECT_NE(errors[0].message.find("a.com"), std::string::npos);
}

TEST(NprobePolicy, MissingAndSharedNamesBecomeIds) {
    const std::string text = R"({"pool": {"id": 7, "ip": ["10.0.0.0/8"]}, "policy": {"id": 4}}
{"pool": {"id": 8, "name": "lab", "ip": ["10.1.0.0/16"]}, "policy": {"id": 5}}
{"pool": {"id": 9, "name": "lab", "ip": ["10.2.0.0/16"]}, "policy": {"id": 6}}
{"policy": {"id": 4, "default_marker": "pass"}}
{"policy": {"id": 5, "name": "same", "root": 4}}
{"policy": {"id": 6, "name": "same", "root": 4}}
{"policy": {"id": 9, "name": "policy_4", "root": 4}}
)";
    PolicyConfig cfg;
    std::vector<PolicyError> errors;
    ASSERT_TRUE(load_nprobe(text, cfg, errors)) << all(errors);
    ASSERT_EQ(cfg.policies.size(), 4u);
    // Policy 4 has no name, and its fallback is taken by policy 9's real name.
    EXPECT_EQ(cfg.policies[0].name, "policy_4_2");
    EXPECT_EQ(cfg.policies[1].name, "policy_5");
    EXPECT_EQ(cfg.policies[2].name, "policy_6");
    EXPECT_EQ(cfg.policies[3].name, "policy_4");
    EXPECT_EQ(cfg.policies[1].parent, "policy_4_2");
    EXPECT_EQ(cfg.policies[3].parent, "policy_4_2");
    // No policy 0: the first root policy in file order is the default.
    EXPECT_EQ(cfg.default_policy, "policy_4_2");
    ASSERT_EQ(cfg.pools.size(), 3u);
    EXPECT_EQ(cfg.pools[0].name, "pool_7");
    EXPECT_EQ(cfg.pools[1].name, "pool_8");
    EXPECT_EQ(cfg.pools[2].name, "pool_9");
    EXPECT_EQ(cfg.pools[0].policy, "policy_4_2");
    EXPECT_EQ(cfg.pools[2].policy, "policy_6");
    expect_round_trip(cfg);
}

TEST(NprobePolicy, DefaultIsPolicyZeroWhereverItIs) {
    const std::string text = R"({"policy": {"id": 3, "name": "first"}}
{"policy": {"id": 0, "name": "zero", "root": 3}}
)";
    PolicyConfig cfg;
    std::vector<PolicyError> errors;
    ASSERT_TRUE(load_nprobe(text, cfg, errors)) << all(errors);
    EXPECT_EQ(cfg.default_policy, "zero");
    EXPECT_EQ(cfg.default_policy_pos.line, 2);
}

struct BadCase {
    const char* what;
    std::string text;
    int line;
    const char* message;  // a part of the expected message
};

TEST(NprobePolicy, EveryErrorHasItsLine) {
    // Line 1 of every case (unless the case says otherwise) is this valid root policy.
    const std::string ok = R"({"policy": {"id": 0, "name": "root", "default_marker": "pass"}})";
    const auto two = [&ok](const std::string& line2) { return ok + "\n" + line2 + "\n"; };
    const std::vector<BadCase> cases = {
        {"unclosed object", two("{"), 2, "invalid JSON"},
        {"yaml syntax error", two(R"({"a": [})"), 2, "invalid JSON"},
        {"array", two("[]"), 2, "expected a JSON object"},
        {"string", two(R"("just a string")"), 2, "expected a JSON object"},
        {"yaml mapping", two("policy: {id: 1}"), 2, "expected a JSON object"},
        {"trailing text", ok + " {}\n", 1, "after the object"},
        {"empty object", "# c\n" + two("{}"), 3, "must hold \"pool\""},
        {"unknown top key", two(R"({"policy": {"id": 1, "root": 0}, "extra": 1})"), 2,
         "unknown key 'extra'"},
        {"unknown pool key",
         two(R"({"pool": {"id": 1, "nmae": "x", "ip": ["1.2.3.4"]}, "policy": {"id": 0}})"), 2,
         "did you mean 'name'"},
        {"unknown policy key", ok + "\n\n" + R"({"policy": {"id": 1, "root": 0, "colour": 1}})",
         3, "allowed: id, name, root"},
        {"unknown markers key", two(R"({"policy": {"id": 1, "markers": {"apps": {}}}})"), 2,
         "unknown key 'apps' in markers"},
        {"unknown flow_risk key",
         two(R"({"policy": {"id": 1, "flow_risk": {"risks": [1], "marker": "drop", "s": 3}}})"),
         2, "unknown key 's' in flow_risk"},
        {"extra key in pool's policy",
         two(R"({"pool": {"id": 1, "ip": ["1.2.3.4"]}, "policy": {"id": 0, "name": "x"}})"), 2,
         "unknown key 'name' in the policy of a pool line"},
        {"repeated key", two(R"({"policy": {"id": 1, "id": 2}})"), 2, "appears twice"},
        {"ip not a list", two(R"({"pool": {"id": 1, "ip": "1.2.3.4"}, "policy": {"id": 0}})"), 2,
         "pool ip must be a list"},
        {"ip item not a string",
         two(R"({"pool": {"id": 1, "ip": ["1.2.3.4", 5]}, "policy": {"id": 0}})"), 2,
         "every item must be a string"},
        {"empty pool", two(R"({"pool": {"id": 1, "ip": [], "mac": []}, "policy": {"id": 0}})"), 2,
         "no ip and no mac"},
        {"pool without policy", two(R"({"pool": {"id": 1, "ip": ["1.2.3.4"]}})"), 2,
         "needs \"policy\""},
        {"pool is a list", two(R"({"pool": [1], "policy": {"id": 0}})"), 2,
         "pool must be an object"},
        {"markers is a list", two(R"({"policy": {"id": 1, "markers": []}})"), 2,
         "markers must be an object"},
        {"protocols is a list",
         two(R"({"policy": {"id": 1, "markers": {"protocols": ["HTTP"]}}})"), 2,
         "protocols must be an object"},
        {"name is a number", two(R"({"policy": {"id": 1, "name": 5}})"), 2,
         "policy name must be a string"},
        {"marker is a number", two(R"({"policy": {"id": 1, "default_marker": 1}})"), 2,
         "default_marker: a marker must be a string"},
        {"marker is null",
         two(R"({"policy": {"id": 1, "markers": {"protocols": {"HTTP": null}}}})"), 2,
         "must be a string"},
        {"unknown marker",
         two(R"({"policy": {"id": 1, "markers": {"protocols": {"HTTP": "block"}}}})"), 2,
         "unknown marker 'block'"},
        {"shape without name", two(R"({"policy": {"id": 1, "default_marker": "shape:"}})"), 2,
         "unknown marker"},
        {"risks not a list",
         two(R"({"policy": {"id": 1, "flow_risk": {"risks": 12, "marker": "drop"}}})"), 2,
         "risks must be a list"},
        {"risk id is a string",
         two(R"({"policy": {"id": 1, "flow_risk": {"risks": ["12"], "marker": "drop"}}})"), 2,
         "risk id must be an integer"},
        {"flow_risk without marker", two(R"({"policy": {"id": 1, "flow_risk": {"risks": [1]}}})"),
         2, "needs a \"marker\""},
        {"policy without id", two(R"({"policy": {"name": "x"}})"), 2, "needs an \"id\""},
        {"id is a string", two(R"({"policy": {"id": "1"}})"), 2, "policy id must be an integer"},
        {"negative id", two(R"({"policy": {"id": -1}})"), 2, "policy id must be an integer"},
        {"fractional id", two(R"({"policy": {"id": 1.5}})"), 2, "policy id must be an integer"},
        {"huge id", two(R"({"policy": {"id": 99999999999999999999999999999}})"), 2,
         "policy id must be an integer"},
        {"id above 32 bits", two(R"({"policy": {"id": 4294967296}})"), 2,
         "policy id must be an integer"},
        {"huge pool id", two(R"({"pool": {"id": 1e400, "ip": ["1.2.3.4"]}, "policy": {"id": 0}})"),
         2, "pool id must be an integer"},
        {"negative root", two(R"({"policy": {"id": 1, "root": -3}})"), 2,
         "policy root must be an integer"},
        {"duplicate policy id", two("# c\n" R"({"policy": {"id": 0, "name": "again"}})"), 3,
         "policy id 0 is already defined on line 1"},
        {"duplicate pool id",
         two(R"({"pool": {"id": 1, "ip": ["1.2.3.4"]}, "policy": {"id": 0}})" "\n"
             R"({"pool": {"id": 1, "ip": ["1.2.3.5"]}, "policy": {"id": 0}})"),
         3, "pool id 1 is already defined on line 2"},
        {"pool to unknown policy",
         R"({"pool": {"id": 1, "ip": ["1.2.3.4"]}, "policy": {"id": 42}})" "\n" + ok, 1,
         "policy 42 is not a policy id"},
        {"unknown root", ok + "\n\n\n" + R"({"policy": {"id": 1, "root": 7}})", 4,
         "root 7 is not a policy id"},
        {"root loop", two(R"({"policy": {"id": 1, "root": 1}})"), 2, "its own ancestor"},
        {"too deep", two(R"({"policy": )" + std::string(40, '[') + std::string(40, ']') + "}"), 2,
         "nested more than"},
    };
    for (const BadCase& c : cases) {
        SCOPED_TRACE(c.what);
        PolicyConfig cfg;
        std::vector<PolicyError> errors;
        EXPECT_FALSE(load_nprobe(c.text, cfg, errors));
        ASSERT_FALSE(errors.empty());
        bool found = false;
        for (const PolicyError& e : errors) {
            if (e.message.find(c.message) != std::string::npos) {
                found = true;
                EXPECT_EQ(e.pos.file, "ips.conf");
                EXPECT_EQ(e.pos.line, c.line) << e.str();
                EXPECT_EQ(e.pos.column, 1);
            }
        }
        EXPECT_TRUE(found) << "expected '" << c.message << "' among:\n" << all(errors);
    }
}

TEST(NprobePolicy, NothingToLoadIsOneError) {
    for (const std::string text : {"", "\n\n", "# only\n  # comments\n", "   \t  "}) {
        SCOPED_TRACE("text: '" + text + "'");
        PolicyConfig cfg;
        std::vector<PolicyError> errors;
        EXPECT_FALSE(load_nprobe(text, cfg, errors));
        ASSERT_EQ(errors.size(), 1u) << all(errors);
        EXPECT_NE(errors[0].message.find("no policy"), std::string::npos);
        EXPECT_EQ(errors[0].pos.line, 0);
    }
}

TEST(NprobePolicy, ErrorsAreAppendedNotReplaced) {
    // Filled field by field: GCC 12 at -O3 misreports a braced PolicyError as uninitialized.
    std::vector<PolicyError> errors(1);
    errors[0].pos.file = "other";
    errors[0].pos.line = 1;
    errors[0].message = "earlier problem";
    PolicyConfig cfg;
    EXPECT_TRUE(load_nprobe(kNprobeExample, cfg, errors));
    EXPECT_EQ(errors.size(), 1u);
    EXPECT_FALSE(load_nprobe("[]", cfg, errors));
    EXPECT_GT(errors.size(), 1u);
    EXPECT_EQ(errors[0].message, "earlier problem");
}

// Mutated copies of the example: the loader must neither throw nor crash, and whatever it
// accepts must convert to YAML that l7gate loads without a single error.
TEST(NprobePolicy, MutatedInputNeverThrowsAndConvertsWhenAccepted) {
    std::mt19937 rng(20240611);
    std::string alphabet = "{}[]\":,#\\ \n\t0123456789-.eE_aZ\xC3\xA9";
    alphabet.push_back('\0');
    size_t accepted = 0;
    for (int round = 0; round < 3000; ++round) {
        const std::string text = mutated(kNprobeExample, rng, alphabet);
        PolicyConfig cfg;
        std::vector<PolicyError> errors;
        bool ok = false;
        ASSERT_NO_THROW(ok = load_nprobe(text, cfg, errors)) << text;
        EXPECT_EQ(ok, errors.empty());
        for (const PolicyError& e : errors) {
            EXPECT_EQ(e.pos.file, "ips.conf");
        }
        if (ok) {
            ++accepted;
            const std::string yaml = ctl::policy_to_yaml(cfg);
            PolicyConfig back;
            std::vector<PolicyError> yerrors;
            EXPECT_TRUE(ctl::load_policy_text(yaml, "conv.yaml", PolicyFormat::Yaml, back, yerrors))
                << all(yerrors) << "input:\n" << text << "yaml:\n" << yaml;
        }
    }
    // Some edits land in names and values and keep the file valid.
    EXPECT_GT(accepted, 0u);
}

} // namespace
} // namespace l7gate::test
