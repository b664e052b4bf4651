// Policy engine: YAML loader + compiler errors (PolicyCompiler) and snapshot evaluation
// (PolicyEval) against the semantics stated in src/dataplane/policy_snapshot.hpp. No EAL.

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <stdlib.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <ndpi_api.h>

#include "control/policy/geoip.hpp"
#include "control/base/ndpi_names.hpp"
#include "control/policy/compiler.hpp"
#include "control/policy/config.hpp"
#include "control/policy/loader.hpp"
#include "dataplane/policy_snapshot.hpp"
#include "policy_inputs.hpp"

namespace l7gate::test {
namespace {

using ctl::PolicyError;
using dp::Action;
using dp::Verdict;

// ---------------------------------------------------------------------------------------------
// Shared fixtures

// One nDPI names module for every test (creating one is the slow part of a compile).
const ctl::NdpiNames& names() {
    static ctl::NdpiNames n;
    static const std::string err = n.init("", "");
    EXPECT_EQ(err, "");
    return n;
}

std::string test_data_dir() {
    const char* dir = std::getenv("L7GATE_TEST_DATA");
    return dir == nullptr ? std::string() : std::string(dir);
}

// The GeoIP fixture (tests/data/geoip-test.mmdb); nullptr when L7GATE_TEST_DATA is unset.
const ctl::GeoIpDb* geoip() {
    static ctl::GeoIpDb db;
    static const std::string err = [] {
        const std::string dir = test_data_dir();
        return dir.empty() ? std::string("unset") : db.open(dir + "/geoip-test.mmdb");
    }();
    if (!test_data_dir().empty()) {
        EXPECT_EQ(err, "") << "the GeoIP fixture must open when L7GATE_TEST_DATA is set";
    }
    return err.empty() ? &db : nullptr;
}

#define REQUIRE_GEOIP(db)                                                                       \
    const ctl::GeoIpDb* db = geoip();                                                           \
    if (db == nullptr) {                                                                        \
        GTEST_SKIP() << "L7GATE_TEST_DATA is not set (it must name the tests/data directory)"; \
    }

int proto(const std::string& name) {
    const int id = names().protocol_id(name);
    EXPECT_GE(id, 0) << "nDPI has no protocol " << name;
    return id;
}

int category(const std::string& name) {
    const int id = names().category_id(name);
    EXPECT_GE(id, 0) << "nDPI has no category " << name;
    return id;
}

uint64_t risk(const std::string& key) {
    const auto& keys = ctl::NdpiNames::risk_keys();
    for (size_t i = 0; i < keys.size(); ++i) {
        if (keys[i] == key) {
            return uint64_t{1} << i;
        }
    }
    ADD_FAILURE() << "no risk key " << key;
    return 0;
}

uint16_t score_of(uint64_t risks) {
    uint16_t c = 0;
    uint16_t s = 0;
    return ndpi_risk2score(risks, &c, &s);
}

// A temporary directory, removed with its contents.
class TempDir {
public:
    TempDir() {
        std::string tmpl = testing::TempDir() + "l7gate-policy-XXXXXX";
        std::vector<char> buf(tmpl.begin(), tmpl.end());
        buf.push_back('\0');
        const char* d = mkdtemp(buf.data());
        EXPECT_NE(d, nullptr);
        path_ = d != nullptr ? std::string(d) : std::string();
    }
    ~TempDir() {
        if (!path_.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(path_, ec);
        }
    }
    const std::string& path() const { return path_; }
    std::string write(const std::string& name, const std::string& text) const {
        const std::string p = path_ + "/" + name;
        std::ofstream f(p, std::ios::binary | std::ios::trunc);
        f << text;
        return p;
    }

private:
    std::string path_;
};

std::string all(const std::vector<PolicyError>& errors) {
    std::string s;
    for (const PolicyError& e : errors) {
        s += e.str() + "\n";
    }
    return s;
}

// A compiled policy and the registry that names its reasons.
struct Compiled {
    ctl::ReasonRegistry reasons;
    std::vector<PolicyError> errors;
    std::unique_ptr<dp::PolicySnapshot> snap;
};

// Loads (YAML or nProbe, detected) and compiles; on a load error the compiler is not run, as
// in compile_policy_file().
std::unique_ptr<Compiled> compile(const std::string& text, const ctl::GeoIpDb* geo = nullptr,
                                  const std::string& file = "test.yaml") {
    auto c = std::make_unique<Compiled>();
    ctl::PolicyConfig cfg;
    if (!ctl::load_policy_text(text, file, ctl::PolicyFormat::Auto, cfg, c->errors)) {
        return c;
    }
    ctl::CompileContext ctx{&names(), geo, &c->reasons, 1};
    c->snap = ctl::compile_policy(cfg, ctx, c->errors);
    EXPECT_EQ(c->snap == nullptr, !c->errors.empty()) << all(c->errors);
    return c;
}

#define ASSERT_COMPILES(c)                                                \
    ASSERT_NE((c)->snap, nullptr) << "errors:\n" << all((c)->errors); \
    ASSERT_TRUE((c)->errors.empty()) << all((c)->errors)

// A flow as the worker describes it to the snapshot.
class Flow {
public:
    Flow(const std::string& client, const std::string& server) {
        version_ = parse(client, client_);
        EXPECT_EQ(parse(server, server_), version_) << client << " -> " << server;
    }
    // Classified as `app` (nDPI name) over `master` ("" = none, nDPI's master id 0).
    Flow& l7(const std::string& app, const std::string& master = "") {
        known_ = true;
        app_ = static_cast<uint16_t>(proto(app));
        master_ = master.empty() ? 0 : static_cast<uint16_t>(proto(master));
        return *this;
    }
    Flow& ids(uint16_t master, uint16_t app) {
        known_ = true;
        master_ = master;
        app_ = app;
        return *this;
    }
    Flow& unknown() {
        known_ = false;
        return *this;
    }
    Flow& cat(const std::string& name) {
        category_ = static_cast<uint8_t>(category(name));
        return *this;
    }
    Flow& host(const std::string& h) {
        host_ = h;
        return *this;
    }
    Flow& risks(uint64_t r) {
        risk_ |= r;
        return *this;
    }
    Flow& client_mac(const std::string& m) {
        has_cmac_ = mac(m, cmac_);
        return *this;
    }
    Flow& server_mac(const std::string& m) {
        has_smac_ = mac(m, smac_);
        return *this;
    }
    dp::FlowFacts facts() const {
        dp::FlowFacts f;
        f.ip_version = version_;
        f.client_ip = client_.data();
        f.server_ip = server_.data();
        f.client_mac = has_cmac_ ? cmac_.data() : nullptr;
        f.server_mac = has_smac_ ? smac_.data() : nullptr;
        f.l7_known = known_;
        f.master_proto = master_;
        f.app_proto = app_;
        f.category = category_;
        f.host = host_;
        f.risk = risk_;
        return f;
    }

private:
    static uint8_t parse(const std::string& s, std::array<uint8_t, 16>& out) {
        out.fill(0);
        if (inet_pton(AF_INET, s.c_str(), out.data()) == 1) {
            return 4;
        }
        if (inet_pton(AF_INET6, s.c_str(), out.data()) == 1) {
            return 6;
        }
        ADD_FAILURE() << "bad address " << s;
        return 0;
    }
    static bool mac(const std::string& s, std::array<uint8_t, 6>& out) {
        unsigned b[6];
        if (std::sscanf(s.c_str(), "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) !=
            6) {
            ADD_FAILURE() << "bad MAC " << s;
            return false;
        }
        for (int i = 0; i < 6; ++i) {
            out[static_cast<size_t>(i)] = static_cast<uint8_t>(b[i]);
        }
        return true;
    }

    uint8_t version_ = 4;
    std::array<uint8_t, 16> client_{};
    std::array<uint8_t, 16> server_{};
    std::array<uint8_t, 6> cmac_{};
    std::array<uint8_t, 6> smac_{};
    bool has_cmac_ = false;
    bool has_smac_ = false;
    bool known_ = true;
    uint16_t master_ = 0;
    uint16_t app_ = 0;
    uint8_t category_ = 0;
    std::string host_;
    uint64_t risk_ = 0;
};

const char* action_name(Action a) {
    return a == Action::Pass ? "pass" : a == Action::Drop ? "drop" : "shape";
}

Verdict eval(const Compiled& c, const Flow& f) {
    return c.snap->evaluate(f.facts(), 0);
}

// The verdict is final (not pending) with this action and reason ("policy/kind/key").
testing::AssertionResult verdict_is(const Compiled& c, const Flow& f, Action action,
                                    const std::string& reason) {
    const Verdict v = eval(c, f);
    const std::string got = c.reasons.name(v.reason);
    if (v.action == action && got == reason && !v.pending) {
        return testing::AssertionSuccess();
    }
    return testing::AssertionFailure()
           << "expected " << action_name(action) << " by '" << reason << "', got "
           << action_name(v.action) << " by '" << got << "'" << (v.pending ? " (pending)" : "");
}

// Before L7 is known: passes and is pending. (The reason's name is not checked: the code
// says "pending", the README "POLICY/pending".)
testing::AssertionResult is_pending(const Compiled& c, const Flow& f) {
    const Verdict v = eval(c, f);
    if (v.pending && v.action == Action::Pass) {
        return testing::AssertionSuccess();
    }
    return testing::AssertionFailure()
           << "expected pending pass, got " << action_name(v.action) << " by '"
           << c.reasons.name(v.reason) << "'" << (v.pending ? " (pending)" : " (not pending)");
}

#define EXPECT_VERDICT(c, flow, action, reason) \
    EXPECT_TRUE(verdict_is(*(c), (flow), Action::action, (reason)))

// ---------------------------------------------------------------------------------------------
// PolicyCompiler: errors

struct ErrorCase {
    const char* what;
    std::string text;
    int line;
    int column;
    std::string needle;      // must appear in the message (the offending name)
    std::string suggestion;  // "did you mean 'X'?" when not empty
};

// Finds the error that mentions `needle` and checks "test.yaml:LINE:COLUMN: " and the hint.
void expect_error(const std::vector<PolicyError>& errors, int line, int column,
                  const std::string& needle, const std::string& suggestion,
                  const std::string& file = "test.yaml") {
    const PolicyError* found = nullptr;
    for (const PolicyError& e : errors) {
        if (e.message.find(needle) != std::string::npos) {
            found = &e;
            break;
        }
    }
    ASSERT_NE(found, nullptr) << "no error mentions " << needle << " among:\n" << all(errors);
    const std::string prefix =
        file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": ";
    EXPECT_EQ(found->str().rfind(prefix, 0), 0u) << found->str() << "\nexpected prefix " << prefix;
    EXPECT_EQ(found->pos.file, file);
    if (!suggestion.empty()) {
        EXPECT_NE(found->message.find("did you mean '" + suggestion + "'?"), std::string::npos)
            << found->str();
    }
}

const std::string kHead = "version: 1\ndefault_policy: p\npolicies:\n  p:\n";  // lines 1-4

TEST(PolicyCompiler, EachErrorNamesFileLineColumnAndSuggests) {
    TempDir tmp;
    const std::string missing = tmp.path() + "/missing-list.txt";
    const std::string lists = "version: 1\ndefault_policy: p\nlists:\n"
                              "  ads: {hostnames: [ads.example.com]}\n"
                              "  iplist: {ips: [198.51.100.0/24]}\n"
                              "policies:\n  p:\n";  // lines 1-7
    const std::string shaper = "version: 1\ndefault_policy: p\nshapers:\n";
    const std::string pools = "version: 1\ndefault_policy: p\npools:\n";
    const std::string pol = "policies:\n  p: {default: pass}\n";
    const std::vector<ErrorCase> cases = {
        {"unknown top-level key",
         "version: 1\ndefault_policy: p\npolices:\n  p: {}\npolicies:\n  p: {default: pass}\n",
         3, 1, "unknown key 'polices'", "policies"},
        {"unknown policy key", kHead + "    default: pass\n    protocol: {HTTP: drop}\n", 6, 5,
         "unknown key 'protocol'", "protocols"},
        {"unknown protocol", kHead + "    protocols: {HTTPP: drop}\n", 5, 17, "'HTTPP'", "HTTP"},
        {"unknown category", kHead + "    categories: {Vide: drop}\n", 5, 18, "'Vide'", "Video"},
        {"unknown risk", kHead + "    risks: {url_possible_sql_injektion: drop}\n", 5, 13,
         "'url_possible_sql_injektion'", "url_possible_sql_injection"},
        {"bad CIDR in ips", kHead + "    ips: {10.0.0.0/33: drop}\n", 5, 11, "'10.0.0.0/33'", ""},
        {"bad CIDR in a pool",
         pools + "  - {name: a, ip: [10.0.0.0/8, 300.1.1.1], policy: p}\n" + pol, 4, 32,
         "'300.1.1.1'", ""},
        {"bad MAC in a pool",
         pools + "  - {name: a, mac: [\"02:00:00:00:00:0g\"], policy: p}\n" + pol, 4, 21,
         "'02:00:00:00:00:0g'", ""},
        {"unknown parent", kHead + "    parent: roto\n  root: {default: pass}\n", 5, 13,
         "unknown parent policy 'roto'", "root"},
        {"unknown shaper",
         shaper + "  bulk: {rate: 20mbit, burst: 256kb}\n" +
             "policies:\n  p:\n    default: pass\n    categories: {Video: \"shape:blk\"}\n",
         8, 25, "unknown shaper 'blk'", "bulk"},
        {"unknown list", lists + "    hostnames: {\"@adz\": drop}\n", 8, 17, "unknown list '@adz'",
         "@ads"},
        {"ip list in hostnames", lists + "    hostnames: {\"@iplist\": drop}\n", 8, 17,
         "list '@iplist' holds addresses, not hostnames", ""},
        {"hostname list in ips", lists + "    ips: {\"@ads\": drop}\n", 8, 11,
         "list '@ads' holds hostnames, not addresses", ""},
        {"unreadable list file",
         "version: 1\ndefault_policy: p\nlists:\n  bad: {file: " + missing + "}\n" + pol, 4, 15,
         "cannot read list file " + missing, ""},
        {"duplicate pool name",
         pools + "  - {name: a, ip: [10.0.0.0/8], policy: p}\n" +
             "  - {name: a, ip: [10.2.0.0/16], policy: p}\n" + pol,
         5, 5, "duplicate pool name 'a'", ""},
        {"same prefix in two pools",
         pools + "  - {name: a, ip: [10.0.0.0/8], policy: p}\n" +
             "  - {name: b, ip: [10.9.9.9/8], policy: p}\n" + pol,
         5, 20, "prefix 10.9.9.9/8 is already in pool 'a'", ""},
        {"same MAC in two pools",
         pools + "  - {name: a, mac: [\"02:00:00:00:00:01\"], policy: p}\n" +
             "  - {name: b, mac: [\"02:00:00:00:00:01\"], policy: p}\n" + pol,
         5, 21, "is already in pool 'a'", ""},
        {"pool with unknown policy",
         pools + "  - {name: a, ip: [10.0.0.0/8], policy: q}\n" + pol, 4, 5,
         "unknown policy 'q'", ""},
        {"countries without GeoIP", kHead + "    countries: {CN: drop}\n", 5, 17, "GeoIP", ""},
        {"continents without GeoIP", kHead + "    continents: {Asia: drop}\n", 5, 18, "GeoIP", ""},
        {"unknown continent", kHead + "    continents: {Europa: drop}\n", 5, 18,
         "unknown continent 'Europa'", "Europe"},
        {"bad country", kHead + "    countries: {USA: drop}\n", 5, 17, "bad country 'USA'", ""},
        {"bad marker text", kHead + "    default: block\n", 5, 14, "unknown marker 'block'", ""},
        {"shape without a name", kHead + "    protocols: {HTTP: \"shape:\"}\n", 5, 23,
         "needs a shaper name", ""},
        {"police without a name", kHead + "    protocols: {HTTP: \"police:\"}\n", 5, 23,
         "police: needs a shaper name", ""},
        {"zero queue", shaper + "  bulk: {rate: 20mbit, burst: 256kb, queue: 0}\n" + pol, 4, 45,
         "queue must be a packet count", ""},
        {"YAML syntax error", kHead + "    default: pass: drop\n", 5, 18, "YAML syntax error", ""},
        {"YAML flow error", kHead + "    protocols: [HTTP, drop}\n", 5, 27, "YAML syntax error",
         ""},
        {"missing default_policy", "version: 1\npolicies:\n  p: {default: pass}\n", 1, 1,
         "missing 'default_policy'", ""},
        {"unknown default_policy", "version: 1\ndefault_policy: gest\npolicies:\n  guest: {}\n", 2,
         17, "unknown default_policy 'gest'", "guest"},
        {"bad rate", shaper + "  bulk: {rate: fast, burst: 256kb}\n" + pol, 4, 16,
         "bad rate 'fast'", ""},
        {"zero rate", shaper + "  bulk: {rate: 0mbit, burst: 256kb}\n" + pol, 4, 16,
         "bad rate '0mbit'", ""},
        {"bad burst", shaper + "  bulk: {rate: 20mbit, burst: lots}\n" + pol, 4, 31,
         "bad burst 'lots'", ""},
        {"unknown shaper key", shaper + "  bulk: {rate: 20mbit, brust: 1kb}\n" + pol, 4, 24,
         "unknown key 'brust'", "burst"},
        {"bad hostname regex", kHead + "    hostnames: {'~ads(': drop}\n", 5, 17,
         "bad hostname regex '~ads('", ""},
        {"bad hostname", kHead + "    hostnames: {'a b.example': drop}\n", 5, 17,
         "bad hostname 'a b.example'", ""},
        {"duplicate policy",
         "version: 1\ndefault_policy: p\npolicies:\n  p: {default: pass}\n  p: {default: drop}\n",
         5, 3, "duplicate policy 'p'", ""},
        {"unknown risk in an exception",
         kHead + "    risk_exceptions:\n      - {risks: [tls_weak_ciphr], protocols: [TLS]}\n",
         6, 9,
         "unknown nDPI risk 'tls_weak_ciphr'", "tls_weak_cipher"},
        {"unknown protocol in an exception",
         kHead + "    risk_exceptions:\n      - {risks: [tls_weak_cipher], protocols: [TSL]}\n", 6,
         9, "unknown nDPI protocol 'TSL'", ""},
        {"exception without criteria", kHead + "    risk_exceptions:\n      - {risks: [any]}\n", 6,
         9, "which flows", ""},
        {"score without a number", kHead + "    score: {at_least: lots, marker: drop}\n", 5, 12,
         "at_least", ""},
        {"unsupported version", "version: 2\ndefault_policy: p\n" + pol, 1, 10,
         "unsupported version '2'", ""},
    };
    for (const ErrorCase& c : cases) {
        SCOPED_TRACE(std::string(c.what) + "\n" + c.text);
        const auto r = compile(c.text);
        EXPECT_EQ(r->snap, nullptr);
        ASSERT_FALSE(r->errors.empty());
        expect_error(r->errors, c.line, c.column, c.needle, c.suggestion);
    }
}

TEST(PolicyCompiler, ParentCycleIsReportedForEveryPolicyOnIt) {
    const std::string text = "version: 1\ndefault_policy: a\npolicies:\n"
                             "  a:\n    parent: b\n"   // lines 4-5
                             "  b:\n    parent: a\n"   // lines 6-7
                             "  c:\n    parent: c\n";  // lines 8-9, its own parent
    const auto r = compile(text);
    EXPECT_EQ(r->snap, nullptr);
    expect_error(r->errors, 5, 13, "policy 'a' is in a parent cycle", "");
    expect_error(r->errors, 7, 13, "policy 'b' is in a parent cycle", "");
    expect_error(r->errors, 9, 13, "policy 'c' is in a parent cycle", "");
}

TEST(PolicyCompiler, SeveralLoaderErrorsAreAllReported) {
    const std::string text = "version: 1\n"
                             "default_policy: p\n"
                             "polices: {}\n"                     // 3:1 unknown key
                             "shapers:\n"
                             "  bulk: {rate: fast, burst: 1kb}\n"  // 5:16 bad rate
                             "policies:\n"
                             "  p:\n"
                             "    defualt: pass\n"                  // 8:5 unknown key
                             "    protocols: {HTTP: block}\n";      // 9:23 bad marker
    const auto r = compile(text);
    EXPECT_EQ(r->snap, nullptr);
    EXPECT_EQ(r->errors.size(), 4u) << all(r->errors);
    expect_error(r->errors, 3, 1, "unknown key 'polices'", "policies");
    expect_error(r->errors, 5, 16, "bad rate 'fast'", "");
    expect_error(r->errors, 8, 5, "unknown key 'defualt'", "default");
    expect_error(r->errors, 9, 23, "unknown marker 'block'", "");
}

TEST(PolicyCompiler, SeveralCompilerErrorsAreAllReported) {
    // Errors of every compiler stage in one file: a broken tree must not hide the markers'
    // errors, nor the other way round.
    const std::string text = "version: 1\n"
                             "default_policy: gest\n"                              // 2:17
                             "shapers:\n"
                             "  bulk: {rate: 20mbit, burst: 256kb}\n"
                             "lists:\n"
                             "  ads: {hostnames: [ads.example.com]}\n"
                             "pools:\n"
                             "  - {name: lan, ip: [10.0.0.0/33], policy: guest}\n"  // 8:22
                             "policies:\n"
                             "  root:\n"
                             "    default: pass\n"
                             "    protocols: {HTTPP: drop}\n"                       // 12:17
                             "  guest:\n"
                             "    parent: rot\n"                                    // 14:13
                             "    categories: {Vide: drop, Video: \"shape:blk\"}\n"  // 15:18, 15:37
                             "    risks: {tls_weak_ciphr: drop}\n"                  // 16:13
                             "    hostnames: {\"@adz\": drop}\n";                    // 17:17
    const auto r = compile(text);
    EXPECT_EQ(r->snap, nullptr);
    expect_error(r->errors, 2, 17, "unknown default_policy 'gest'", "guest");
    expect_error(r->errors, 8, 22, "'10.0.0.0/33'", "");
    expect_error(r->errors, 12, 17, "unknown nDPI protocol 'HTTPP'", "HTTP");
    expect_error(r->errors, 14, 13, "unknown parent policy 'rot'", "root");
    expect_error(r->errors, 15, 18, "unknown nDPI category 'Vide'", "Video");
    expect_error(r->errors, 15, 37, "unknown shaper 'blk'", "bulk");
    expect_error(r->errors, 16, 13, "unknown nDPI risk 'tls_weak_ciphr'", "tls_weak_cipher");
    expect_error(r->errors, 17, 17, "unknown list '@adz'", "@ads");
    EXPECT_EQ(r->errors.size(), 8u) << all(r->errors);
}

TEST(PolicyCompiler, ValidFileCompilesAndNamesItsParts) {
    const std::string text = "version: 1\n"
                             "default_policy: guest\n"
                             "shapers:\n"
                             "  bulk: {rate: 20mbit, burst: 256kb}\n"
                             "  perhost: {rate: 5m, burst: 64k, per: host, queue: 128, "
                             "max_delay: 20ms}\n"
                             "pools:\n"
                             "  - {name: office, ip: [198.18.1.0/24], policy: office}\n"
                             "policies:\n"
                             "  root: {default: pass}\n"
                             "  office: {parent: root,"
                             " protocols: {BitTorrent: \"shape:perhost\"}}\n"
                             "  guest: {parent: root}\n";
    const auto r = compile(text);
    ASSERT_COMPILES(r);
    const dp::PolicySnapshot& s = *r->snap;
    ASSERT_EQ(s.policies.size(), 3u);
    EXPECT_EQ(s.policies[s.default_policy].name, "guest");
    EXPECT_EQ(s.policies[s.default_policy].depth, 2u);
    ASSERT_EQ(s.shapers.size(), 2u);
    EXPECT_EQ(s.shapers[0].name, "bulk");
    EXPECT_EQ(s.shapers[0].rate_bps, 20000000u);
    EXPECT_EQ(s.shapers[0].burst_bytes, 256u * 1024u);
    EXPECT_FALSE(s.shapers[0].per_host);
    EXPECT_EQ(s.shapers[1].rate_bps, 5000000u);
    EXPECT_EQ(s.shapers[1].burst_bytes, 64u * 1024u);
    EXPECT_TRUE(s.shapers[1].per_host);
    EXPECT_EQ(s.shapers[1].queue_packets, 128u);
    EXPECT_EQ(s.shapers[1].max_delay_us, 20000u);
    EXPECT_EQ(s.pool_names, std::vector<std::string>{"office"});
    EXPECT_EQ(r->reasons.name(s.pending_reason), "pending");
    EXPECT_EQ(s.source, "test.yaml");
}

TEST(PolicyCompiler, RiskKeysFollowNdpiRiskEnum) {
    const auto& keys = ctl::NdpiNames::risk_keys();
    EXPECT_EQ(keys.size(), static_cast<size_t>(NDPI_MAX_RISK));
    EXPECT_EQ(risk("url_possible_xss"), uint64_t{1} << NDPI_URL_POSSIBLE_XSS);
    EXPECT_EQ(risk("url_possible_sql_injection"), uint64_t{1} << NDPI_URL_POSSIBLE_SQL_INJECTION);
    EXPECT_EQ(risk("known_protocol_on_non_standard_port"),
              uint64_t{1} << NDPI_KNOWN_PROTOCOL_ON_NON_STANDARD_PORT);
    EXPECT_EQ(risk("http_numeric_ip_host"), uint64_t{1} << NDPI_HTTP_NUMERIC_IP_HOST);
    EXPECT_EQ(risk("tls_certificate_about_to_expire"),
              uint64_t{1} << NDPI_TLS_CERTIFICATE_ABOUT_TO_EXPIRE);
}

TEST(PolicyCompiler, ReasonIdsAreStableAcrossCompiles) {
    const std::string a = kHead + "    default: pass\n    protocols: {HTTP: drop, DNS: pass}\n";
    const std::string b = kHead + "    default: pass\n    protocols: {DNS: pass, HTTP: drop}\n";
    ctl::ReasonRegistry reasons;
    std::vector<uint16_t> ids;
    for (const std::string& text : {a, b}) {
        ctl::PolicyConfig cfg;
        std::vector<PolicyError> errors;
        ASSERT_TRUE(ctl::load_policy_text(text, "test.yaml", ctl::PolicyFormat::Yaml, cfg, errors));
        ctl::CompileContext ctx{&names(), nullptr, &reasons, 1};
        const auto snap = ctl::compile_policy(cfg, ctx, errors);
        ASSERT_NE(snap, nullptr) << all(errors);
        dp::FlowFacts f;
        const uint8_t c[4] = {10, 0, 0, 1};
        const uint8_t s[4] = {192, 0, 2, 1};
        f.client_ip = c;
        f.server_ip = s;
        f.l7_known = true;
        f.app_proto = static_cast<uint16_t>(proto("HTTP"));
        ids.push_back(snap->evaluate(f, 0).reason);
    }
    EXPECT_EQ(ids[0], ids[1]);
    EXPECT_EQ(reasons.name(ids[0]), "p/protocols/HTTP");
}

TEST(PolicyCompiler, DemoPolicyCompiles) {
    const std::string dir = test_data_dir();
    if (dir.empty()) {
        GTEST_SKIP() << "L7GATE_TEST_DATA is not set (it must name the tests/data directory)";
    }
    auto c = std::make_unique<Compiled>();
    ctl::CompileContext ctx{&names(), nullptr, &c->reasons, 1};
    c->snap = ctl::compile_policy_file(dir + "/../../config/demo-policy.yaml", "auto", ctx, c->errors);
    ASSERT_COMPILES(c);
    // An office host: SSH on a non-standard port is excepted; Tor is dropped by the root; a
    // bad peer from lists/bad-ips.txt is dropped.
    const uint64_t kpnsp = risk("known_protocol_on_non_standard_port");
    const Verdict ssh = eval(*c, Flow("198.18.1.5", "192.0.2.1").l7("SSH").risks(kpnsp));
    EXPECT_EQ(ssh.action, Action::Pass);
    EXPECT_EQ(ssh.excepted_risks, kpnsp);
    EXPECT_VERDICT(c, Flow("198.18.1.5", "192.0.2.1").l7("Tor"), Drop, "root/protocols/Tor");
    EXPECT_VERDICT(c, Flow("198.18.1.5", "198.19.1.21").l7("DNS"), Drop, "office/ips/@badips");
    EXPECT_VERDICT(c, Flow("2001:db8:100::5", "2001:db8:dead::1").l7("DNS"), Drop,
                   "office/ips/@badips");
    EXPECT_VERDICT(c, Flow("198.18.1.5", "192.0.2.1").l7("HTTP").host("x.doubleclick.net"), Drop,
                   "office/hostnames/@ads");
    EXPECT_VERDICT(c, Flow("192.0.2.7", "192.0.2.1").l7("HTTP").cat("Game"), Drop,
                   "guest/categories/Game");
}

// The package's default policy (config/policy.yaml, /etc/l7gate/policy.yaml) runs in monitor
// mode (issue 20, point 2): every policy it defines records its verdicts only.
TEST(PolicyCompiler, ShippedDefaultPolicyIsMonitorMode) {
    const std::string dir = test_data_dir();
    if (dir.empty()) {
        GTEST_SKIP() << "L7GATE_TEST_DATA is not set (it must name the tests/data directory)";
    }
    auto c = std::make_unique<Compiled>();
    ctl::CompileContext ctx{&names(), nullptr, &c->reasons, 1};
    c->snap = ctl::compile_policy_file(dir + "/../../config/policy.yaml", "auto", ctx, c->errors);
    ASSERT_COMPILES(c);
    ASSERT_FALSE(c->snap->policies.empty());
    EXPECT_TRUE(c->snap->any_monitor);
    for (const dp::CompiledPolicy& p : c->snap->policies) {
        EXPECT_FALSE(p.enforce) << p.name;
    }
    // Decided all the same: Tor would be dropped.
    const Verdict tor = eval(*c, Flow("192.0.2.7", "192.0.2.1").l7("Tor"));
    EXPECT_EQ(tor.action, Action::Drop);
    EXPECT_FALSE(tor.enforced);
}

// `enforce`: inherited from the nearest policy on the chain that says, true when none does;
// --mode monitor (CompileContext::monitor) turns every policy to monitor mode.
TEST(PolicyCompiler, EnforceInheritsAndModeMonitorOverrides) {
    const std::string text = "version: 1\ndefault_policy: a\npolicies:\n"
                             "  root: {default: pass, enforce: false}\n"
                             "  a: {parent: root}\n"
                             "  b: {parent: root, enforce: true}\n"
                             "  c: {parent: b}\n"
                             "  solo: {default: drop}\n";
    auto c = compile(text);
    ASSERT_COMPILES(c);
    std::map<std::string, bool> got;
    for (const dp::CompiledPolicy& p : c->snap->policies) {
        got[p.name] = p.enforce;
    }
    EXPECT_EQ(got, (std::map<std::string, bool>{{"root", false}, {"a", false}, {"b", true}, {"c", true}, {"solo", true}}));
    EXPECT_TRUE(c->snap->any_monitor);
    EXPECT_FALSE(eval(*c, Flow("192.0.2.7", "192.0.2.1")).enforced);

    auto m = std::make_unique<Compiled>();
    ctl::PolicyConfig cfg;
    ASSERT_TRUE(ctl::load_policy_text(text, "test.yaml", ctl::PolicyFormat::Auto, cfg, m->errors));
    ctl::CompileContext ctx{&names(), nullptr, &m->reasons, 1};
    ctx.monitor = true;
    m->snap = ctl::compile_policy(cfg, ctx, m->errors);
    ASSERT_COMPILES(m);
    for (const dp::CompiledPolicy& p : m->snap->policies) {
        EXPECT_FALSE(p.enforce) << p.name;
    }

    auto bad = compile("version: 1\ndefault_policy: a\npolicies:\n  a: {default: pass, enforce: maybe}\n");
    ASSERT_EQ(bad->errors.size(), 1u);
    EXPECT_NE(bad->errors[0].str().find("enforce must be true or false"), std::string::npos) << bad->errors[0].str();
}

// Random edits of a valid file: the loader and compiler never throw nor crash, report an
// error exactly when they refuse, and every error names the file.
TEST(PolicyCompiler, GarbageNeverCrashes) {
    const std::string base = "version: 1\n"
                             "default_policy: guest\n"
                             "shapers:\n"
                             "  bulk: {rate: 20mbit, burst: 256kb}\n"
                             "lists:\n"
                             "  ads: {hostnames: [\"*.doubleclick.net\", '~^ads[0-9]+\\.x$']}\n"
                             "  nets: {ips: [198.51.100.0/24, \"2001:db8::/32\"]}\n"
                             "pools:\n"
                             "  - {name: office, ip: [198.18.1.0/24], mac: [\"02:00:00:00:00:01\"],"
                             " policy: office}\n"
                             "policies:\n"
                             "  root:\n"
                             "    default: pass\n"
                             "    risks: {url_possible_xss: drop, any: \"shape:bulk\"}\n"
                             "    score: {at_least: 250, marker: drop}\n"
                             "  office:\n"
                             "    parent: root\n"
                             "    protocols: {HTTP: pass, \"7\": drop}\n"
                             "    categories: {Video: \"shape:bulk\"}\n"
                             "    hostnames: {\"@ads\": drop, www.example.com: pass}\n"
                             "    ips: {\"@nets\": drop}\n"
                             "    risk_exceptions:\n"
                             "      - {risks: [any], protocols: [SSH], ips: [10.0.0.0/8]}\n"
                             "  guest: {parent: office, default: drop}\n";
    {
        const auto r = compile(base);
        ASSERT_COMPILES(r);
    }
    std::mt19937 rng(7091);
    const std::string alphabet = "{}[]:,-#&*!|>'\"%@`~ \n\t.0123456789/aAzZ_\\";
    size_t accepted = 0;
    for (int round = 0; round < 1500; ++round) {
        const std::string text = mutated(base, rng, alphabet);
        std::unique_ptr<Compiled> r;
        ASSERT_NO_THROW(r = compile(text)) << text;
        for (const PolicyError& e : r->errors) {
            EXPECT_EQ(e.str().rfind("test.yaml", 0), 0u) << e.str();
        }
        if (r->snap != nullptr) {
            ++accepted;
            // Whatever compiled can be evaluated.
            const Verdict v = eval(*r, Flow("198.18.1.5", "198.51.100.1")
                                           .l7("HTTP")
                                           .host("ads12.x")
                                           .risks(risk("url_possible_xss")));
            EXPECT_LE(static_cast<int>(v.action), static_cast<int>(Action::Shape));
        }
    }
    EXPECT_GT(accepted, 0u);
}

// ---------------------------------------------------------------------------------------------
// PolicyEval

TEST(PolicyEval, PrecedenceInsideOnePolicy) {
    REQUIRE_GEOIP(geo);
    // hostnames > ips > protocols > categories > countries > continents > default.
    const std::string text = "version: 1\n"
                             "default_policy: p\n"
                             "shapers:\n"
                             "  s: {rate: 1mbit, burst: 10kb}\n"
                             "policies:\n"
                             "  p:\n"
                             "    default: drop\n"
                             "    continents: {Asia: drop}\n"
                             "    countries: {JP: \"shape:s\"}\n"
                             "    categories: {Web: drop}\n"
                             "    protocols: {HTTP: pass}\n"
                             "    ips: {198.19.200.0/24: drop}\n"
                             "    hostnames: {www.example.com: pass}\n";
    const auto c = compile(text, geo);
    ASSERT_COMPILES(c);
    const std::string jp = "198.19.200.1";   // JP, Asia, in the ips entry
    const std::string jp2 = "198.19.201.1";  // JP, Asia
    const std::string cn = "198.18.1.1";     // CN, Asia
    const std::string br = "203.0.113.1";    // BR, South America
    auto f = [](const std::string& peer) { return Flow("10.0.0.1", peer); };
    EXPECT_VERDICT(c, f(jp).l7("HTTP").cat("Web").host("www.example.com"), Pass,
                   "p/hostnames/www.example.com");
    EXPECT_VERDICT(c, f(jp).l7("HTTP").cat("Web").host("other.example.com"), Drop,
                   "p/ips/198.19.200.0/24");
    EXPECT_VERDICT(c, f(jp2).l7("HTTP").cat("Web").host("other.example.com"), Pass,
                   "p/protocols/HTTP");
    EXPECT_VERDICT(c, f(jp2).l7("DNS").cat("Web"), Drop, "p/categories/Web");
    const Verdict v = eval(*c, f(jp2).l7("DNS").cat("Network"));
    EXPECT_EQ(v.action, Action::Shape);
    EXPECT_EQ(c->reasons.name(v.reason), "p/countries/JP");
    EXPECT_EQ(c->snap->shapers.at(v.shaper).name, "s");
    EXPECT_VERDICT(c, f(cn).l7("DNS").cat("Network"), Drop, "p/continents/Asia");
    EXPECT_VERDICT(c, f(br).l7("DNS").cat("Network"), Drop, "p/default");
}

TEST(PolicyEval, CountriesBeforeContinents) {
    REQUIRE_GEOIP(geo);
    const std::string text = kHead + "    default: pass\n"
                                      "    continents: {Asia: drop}\n"
                                      "    countries: {US: pass, CN: pass}\n";
    const auto c = compile(text, geo);
    ASSERT_COMPILES(c);
    // 198.19.200.1 is JP (Asia): no country entry, the continent drops it.
    EXPECT_VERDICT(c, Flow("10.0.0.1", "198.19.200.1").l7("DNS"), Drop, "p/continents/Asia");
    EXPECT_VERDICT(c, Flow("10.0.0.1", "198.19.1.1").l7("DNS"), Pass, "p/countries/US");
    // CN is in Asia too, but its country entry comes first.
    EXPECT_VERDICT(c, Flow("10.0.0.1", "198.18.1.1").l7("DNS"), Pass, "p/countries/CN");
    EXPECT_VERDICT(c, Flow("2001:db8:99::1", "2001:db8:2::1").l7("DNS"), Pass, "p/countries/CN");
    EXPECT_VERDICT(c, Flow("10.0.0.1", "198.18.0.1").l7("DNS"), Pass, "p/default");  // IT
    EXPECT_VERDICT(c, Flow("10.0.0.1", "192.0.2.1").l7("DNS"), Pass, "p/default");   // unknown
    // Countries and continents do not depend on L7: decided before classification.
    EXPECT_VERDICT(c, Flow("10.0.0.1", "198.19.200.1").unknown(), Drop, "p/continents/Asia");
}

TEST(PolicyEval, CountriesAndContinentsOverIpv6AndCase) {
    REQUIRE_GEOIP(geo);
    const std::string text = kHead + "    default: pass\n"
                                      "    countries: {fr: drop}\n"
                                      "    continents: {oceania: drop, South America: drop}\n";
    const auto c = compile(text, geo);
    ASSERT_COMPILES(c);
    EXPECT_VERDICT(c, Flow("2001:db8:99::1", "2001:db8:1::7").l7("DNS"), Drop, "p/countries/fr");
    EXPECT_VERDICT(c, Flow("2001:db8:99::1", "2001:db8:3::7").l7("DNS"), Drop,
                   "p/continents/oceania");
    EXPECT_VERDICT(c, Flow("10.0.0.1", "203.0.113.9").l7("DNS"), Drop,
                   "p/continents/South America");
    EXPECT_VERDICT(c, Flow("2001:db8:99::1", "2001:db8:2::7").l7("DNS"), Pass, "p/default");
}

TEST(PolicyEval, ContinentWithoutCountryStillMatches) {
    REQUIRE_GEOIP(geo);
    // 2001:db8:4::/48 has continent EU and no country in the fixture.
    const std::string text = kHead + "    default: pass\n    continents: {Europe: drop}\n";
    const auto c = compile(text, geo);
    ASSERT_COMPILES(c);
    EXPECT_VERDICT(c, Flow("2001:db8:99::1", "2001:db8:4::1").l7("DNS"), Drop,
                   "p/continents/Europe");
    EXPECT_VERDICT(c, Flow("2001:db8:99::1", "2001:db8:1::1").l7("DNS"), Drop,
                   "p/continents/Europe");  // FR
    EXPECT_VERDICT(c, Flow("10.0.0.1", "198.18.2.1").l7("DNS"), Drop, "p/continents/Europe");
    EXPECT_VERDICT(c, Flow("2001:db8:99::1", "2001:db8:5::1").l7("DNS"), Pass, "p/default");
}

TEST(PolicyEval, AppIdBeforeMasterId) {
    const std::string text = "version: 1\n"
                             "default_policy: p\n"
                             "shapers:\n"
                             "  video: {rate: 1mbit, burst: 10kb}\n"
                             "pools:\n"
                             "  - {name: kids, ip: [10.9.0.0/16], policy: kid}\n"
                             "policies:\n"
                             "  p:\n"
                             "    default: pass\n"
                             "    protocols: {TLS: drop, YouTube: \"shape:video\"}\n"
                             "  kid:\n"
                             "    parent: root\n"
                             "    protocols: {TLS: drop}\n"
                             "  root:\n"
                             "    protocols: {YouTube: pass}\n";
    const auto c = compile(text);
    ASSERT_COMPILES(c);
    const Verdict v = eval(*c, Flow("10.0.0.1", "192.0.2.1").l7("YouTube", "TLS"));
    EXPECT_EQ(v.action, Action::Shape);
    EXPECT_EQ(c->reasons.name(v.reason), "p/protocols/YouTube");
    EXPECT_EQ(c->snap->shapers.at(v.shaper).name, "video");
    EXPECT_VERDICT(c, Flow("10.0.0.1", "192.0.2.1").l7("Google", "TLS"), Drop, "p/protocols/TLS");
    EXPECT_VERDICT(c, Flow("10.0.0.1", "192.0.2.1").l7("TLS"), Drop, "p/protocols/TLS");
    // The leaf's master id beats the parent's app id: leaf before parent.
    EXPECT_VERDICT(c, Flow("10.9.0.1", "192.0.2.1").l7("YouTube", "TLS"), Drop,
                   "kid/protocols/TLS");
    EXPECT_VERDICT(c, Flow("10.9.0.1", "192.0.2.1").l7("YouTube", "QUIC"), Pass,
                   "root/protocols/YouTube");
    // Numeric keys are nDPI ids.
    const auto n = compile(kHead + "    default: pass\n    protocols: {\"7\": drop}\n");
    ASSERT_COMPILES(n);
    EXPECT_EQ(proto("HTTP"), 7);
    EXPECT_VERDICT(n, Flow("10.0.0.1", "192.0.2.1").l7("HTTP"), Drop, "p/protocols/7");
}

TEST(PolicyEval, UnknownMatchesOnlyUnclassifiedFlows) {
    // nDPI reports a plain protocol with master id 0 ("Unknown"): that is no master, and a
    // marker for Unknown must not catch every plain HTTP or DNS flow.
    const std::string text = kHead + "    default: pass\n"
                                      "    protocols: {Unknown: drop}\n"
                                      "    risks: {tls_weak_cipher: drop}\n"
                                      "    risk_exceptions:\n"
                                      "      - {risks: [tls_weak_cipher], protocols: [Unknown]}\n";
    const auto c = compile(text);
    ASSERT_COMPILES(c);
    EXPECT_EQ(proto("Unknown"), 0);
    EXPECT_VERDICT(c, Flow("10.0.0.1", "192.0.2.1").l7("HTTP"), Pass, "p/default");
    EXPECT_VERDICT(c, Flow("10.0.0.1", "192.0.2.1").l7("DNS"), Pass, "p/default");
    EXPECT_VERDICT(c, Flow("10.0.0.1", "192.0.2.1").ids(0, 0), Drop, "p/protocols/Unknown");
    // The same for risk exceptions.
    const uint64_t weak = risk("tls_weak_cipher");
    EXPECT_VERDICT(c, Flow("10.0.0.1", "192.0.2.1").l7("TLS").risks(weak), Drop,
                   "p/risks/tls_weak_cipher");
    EXPECT_EQ(eval(*c, Flow("10.0.0.1", "192.0.2.1").ids(0, 0).risks(weak)).excepted_risks, weak);
}

TEST(PolicyEval, LeafBeforeParent) {
    const std::string text = "version: 1\n"
                             "default_policy: leaf\n"
                             "policies:\n"
                             "  root:\n"
                             "    default: pass\n"
                             "    protocols: {YouTube: pass, HTTP: drop}\n"
                             "    hostnames: {\"*.example.com\": pass}\n"
                             "    ips: {192.0.2.0/24: pass}\n"
                             "  mid:\n"
                             "    parent: root\n"
                             "    ips: {192.0.2.128/25: drop}\n"
                             "  leaf:\n"
                             "    parent: mid\n"
                             "    categories: {Video: drop}\n"
                             "    ips: {192.0.0.0/16: drop}\n";
    const auto c = compile(text);
    ASSERT_COMPILES(c);
    // A leaf categories marker beats the parent's protocols and hostnames markers.
    EXPECT_VERDICT(c, Flow("10.0.0.1", "198.51.100.1").l7("YouTube", "TLS").cat("Video"), Drop,
                   "leaf/categories/Video");
    const Flow wan("10.0.0.1", "198.51.100.1");
    EXPECT_VERDICT(c, Flow(wan).l7("YouTube").cat("Video").host("a.example.com"), Drop,
                   "leaf/categories/Video");
    EXPECT_VERDICT(c, Flow("10.0.0.1", "198.51.100.1").l7("YouTube").cat("Web"), Pass,
                   "root/protocols/YouTube");
    EXPECT_VERDICT(c, Flow("10.0.0.1", "198.51.100.1").l7("HTTP").cat("Web"), Drop,
                   "root/protocols/HTTP");
    // A shorter leaf prefix beats longer prefixes higher up.
    EXPECT_VERDICT(c, Flow("10.0.0.1", "192.0.2.200").l7("HTTP"), Drop, "leaf/ips/192.0.0.0/16");
    EXPECT_VERDICT(c, Flow("10.0.0.1", "192.0.2.1").l7("HTTP"), Drop, "leaf/ips/192.0.0.0/16");
}

TEST(PolicyEval, LongestPrefixInsideOneLevel) {
    const std::string text = "version: 1\n"
                             "default_policy: leaf\n"
                             "policies:\n"
                             "  root:\n"
                             "    ips: {192.0.2.128/25: drop, 192.0.2.0/24: pass}\n"
                             "  leaf:\n"
                             "    parent: root\n"
                             "    ips: {\"2001:db8::/32\": drop, \"2001:db8:1::/48\": pass}\n";
    const auto c = compile(text);
    ASSERT_COMPILES(c);
    EXPECT_VERDICT(c, Flow("10.0.0.1", "192.0.2.200").l7("DNS"), Drop, "root/ips/192.0.2.128/25");
    EXPECT_VERDICT(c, Flow("10.0.0.1", "192.0.2.100").l7("DNS"), Pass, "root/ips/192.0.2.0/24");
    EXPECT_VERDICT(c, Flow("2001:db8:9::1", "2001:db8:1::1").l7("DNS"), Pass,
                   "leaf/ips/2001:db8:1::/48");
    EXPECT_VERDICT(c, Flow("2001:db8:9::1", "2001:db8:2::1").l7("DNS"), Drop,
                   "leaf/ips/2001:db8::/32");
    EXPECT_VERDICT(c, Flow("2001:db8:9::1", "2001:db9::1").l7("DNS"), Pass, "leaf/default");
}

TEST(PolicyEval, DefaultIsTheLeafsOrInherited) {
    const std::string text = "version: 1\n"
                             "default_policy: none\n"
                             "pools:\n"
                             "  - {name: a, ip: [10.1.0.0/16], policy: strict}\n"
                             "  - {name: b, ip: [10.2.0.0/16], policy: inherits}\n"
                             "  - {name: c, ip: [10.3.0.0/16], policy: grandchild}\n"
                             "  - {name: d, ip: [10.4.0.0/16], policy: root}\n"
                             "policies:\n"
                             "  root: {default: pass}\n"
                             "  strict: {parent: root, default: drop}\n"
                             "  inherits: {parent: strict}\n"
                             "  grandchild: {parent: inherits}\n"
                             "  none: {}\n"
                             "  none_child: {parent: none}\n";
    const auto c = compile(text);
    ASSERT_COMPILES(c);
    EXPECT_VERDICT(c, Flow("10.1.0.1", "192.0.2.1").l7("DNS"), Drop, "strict/default");
    EXPECT_VERDICT(c, Flow("10.2.0.1", "192.0.2.1").l7("DNS"), Drop, "strict/default");
    EXPECT_VERDICT(c, Flow("10.3.0.1", "192.0.2.1").l7("DNS"), Drop, "strict/default");
    EXPECT_VERDICT(c, Flow("10.4.0.1", "192.0.2.1").l7("DNS"), Pass, "root/default");
    // No default anywhere on the chain: pass.
    EXPECT_VERDICT(c, Flow("10.9.0.1", "192.0.2.1").l7("DNS"), Pass, "none/default");
}

TEST(PolicyEval, RiskMarkersStrictestOverTheChain) {
    const std::string text = "version: 1\n"
                             "default_policy: root\n"
                             "shapers:\n"
                             "  slow: {rate: 1mbit, burst: 10kb}\n"
                             "pools:\n"
                             "  - {name: lan, ip: [10.1.0.0/16], policy: child}\n"
                             "policies:\n"
                             "  root:\n"
                             "    default: pass\n"
                             "    risks: {url_possible_sql_injection: drop,"
                             " tls_obsolete_version: \"shape:slow\"}\n"
                             "  child:\n"
                             "    parent: root\n"
                             "    risks: {url_possible_sql_injection: pass,"
                             " http_numeric_ip_host: drop, tls_weak_cipher: pass}\n"
                             "    protocols: {HTTP: pass, SSH: drop}\n";
    const auto c = compile(text);
    ASSERT_COMPILES(c);
    const std::string lan = "10.1.0.1";
    const std::string wan = "192.0.2.1";
    // The child cannot relax the root's drop.
    EXPECT_VERDICT(c, Flow(lan, wan).l7("HTTP").risks(risk("url_possible_sql_injection")), Drop,
                   "root/risks/url_possible_sql_injection");
    EXPECT_VERDICT(c, Flow(lan, wan).l7("HTTP").risks(risk("http_numeric_ip_host")), Drop,
                   "child/risks/http_numeric_ip_host");
    // The child's risk markers do not apply to the root.
    EXPECT_VERDICT(c, Flow("10.2.0.1", wan).l7("HTTP").risks(risk("http_numeric_ip_host")), Pass,
                   "root/default");
    // A shape risk marker is stricter than the first match's pass, not than its drop.
    const Verdict v = eval(*c, Flow(lan, wan).l7("HTTP").risks(risk("tls_obsolete_version")));
    EXPECT_EQ(v.action, Action::Shape);
    EXPECT_EQ(c->reasons.name(v.reason), "root/risks/tls_obsolete_version");
    EXPECT_VERDICT(c, Flow(lan, wan).l7("SSH").risks(risk("tls_obsolete_version")), Drop,
                   "child/protocols/SSH");
    // As strict as the first match: the risk marker decides and gives its reason.
    EXPECT_VERDICT(c, Flow(lan, wan).l7("SSH").risks(risk("url_possible_sql_injection")), Drop,
                   "root/risks/url_possible_sql_injection");
    // Two risks: the strictest marker wins.
    const uint64_t two = risk("tls_obsolete_version") | risk("http_numeric_ip_host");
    EXPECT_VERDICT(c, Flow(lan, wan).l7("HTTP").risks(two), Drop,
                   "child/risks/http_numeric_ip_host");
    // A pass risk marker never relaxes a first-match drop, and unmarked risks do nothing.
    EXPECT_VERDICT(c, Flow(lan, wan).l7("SSH").risks(risk("tls_weak_cipher")), Drop,
                   "child/protocols/SSH");
    EXPECT_VERDICT(c, Flow(lan, wan).l7("HTTP").risks(risk("tls_weak_cipher")), Pass,
                   "child/protocols/HTTP");
    EXPECT_VERDICT(c, Flow(lan, wan).l7("HTTP").risks(risk("suspicious_dga_domain")), Pass,
                   "child/protocols/HTTP");
    // Risk markers apply before L7 is known too (risks can come from the first packets).
    const Verdict early =
        eval(*c, Flow(lan, wan).unknown().risks(risk("url_possible_sql_injection")));
    EXPECT_EQ(early.action, Action::Drop);
    EXPECT_EQ(c->reasons.name(early.reason), "root/risks/url_possible_sql_injection");
}

TEST(PolicyEval, PoliceMarkersAndTheLocalHostOfShapedFlows) {
    const std::string text = "version: 1\n"
                             "default_policy: wan\n"
                             "shapers:\n"
                             "  slow: {rate: 1mbit, burst: 10kb}\n"
                             "  fast: {rate: 1g, burst: 1mb, per: host}\n"
                             "pools:\n"
                             "  - {name: lan, ip: [10.1.0.0/16], policy: lan}\n"
                             "policies:\n"
                             "  wan: {default: pass}\n"
                             "  lan:\n"
                             "    default: \"shape:fast\"\n"
                             "    protocols: {BitTorrent: \"police:slow\", HTTP: \"police:fast\"}\n"
                             "    risks: {tls_obsolete_version: \"shape:slow\", http_numeric_ip_host: drop}\n";
    const auto c = compile(text);
    ASSERT_COMPILES(c);
    const std::string lan = "10.1.0.1";
    const std::string wan = "192.0.2.1";
    Verdict v = eval(*c, Flow(lan, wan).l7("BitTorrent"));
    EXPECT_EQ(v.action, Action::Police);
    EXPECT_EQ(c->snap->shapers[v.shaper].name, "slow");
    EXPECT_EQ(c->reasons.name(v.reason), "lan/protocols/BitTorrent");
    EXPECT_FALSE(v.local_is_server);
    // The local host is the server here: per-host buckets key on it.
    v = eval(*c, Flow(wan, lan).l7("DNS"));
    EXPECT_EQ(v.action, Action::Shape);
    EXPECT_EQ(c->snap->shapers[v.shaper].name, "fast");
    EXPECT_TRUE(v.local_is_server);
    // Police is stricter than shape, looser than drop.
    v = eval(*c, Flow(lan, wan).l7("HTTP").risks(risk("tls_obsolete_version")));
    EXPECT_EQ(v.action, Action::Police);
    EXPECT_EQ(c->reasons.name(v.reason), "lan/protocols/HTTP");
    EXPECT_VERDICT(c, Flow(lan, wan).l7("HTTP").risks(risk("http_numeric_ip_host")), Drop,
                   "lan/risks/http_numeric_ip_host");
    // The cached byte keeps the shaper, the kind and the local side.
    for (uint8_t sh : {uint8_t{0}, uint8_t{1}, uint8_t{dp::kMaxShapers - 1}}) {
        for (bool police : {false, true}) {
            for (bool server : {false, true}) {
                const uint8_t b = dp::cached::encode(police ? Action::Police : Action::Shape, sh, server);
                EXPECT_TRUE(dp::cached::shaped(b));
                EXPECT_FALSE(dp::cached::drops(b));
                EXPECT_EQ(dp::cached::shaper(b), sh);
                EXPECT_EQ(dp::cached::police(b), police);
                EXPECT_EQ(dp::cached::local_is_server(b), server);
            }
        }
    }
    EXPECT_FALSE(dp::cached::shaped(dp::cached::encode(Action::Drop, 5, true)));
    EXPECT_EQ(dp::cached::encode(Action::Reject, 5, true), dp::cached::kReject);
}

TEST(PolicyEval, RiskKeysByNumberAndAny) {
    const std::string text = "version: 1\n"
                             "default_policy: p\n"
                             "shapers:\n"
                             "  slow: {rate: 1mbit, burst: 10kb}\n"
                             "pools:\n"
                             "  - {name: lan, ip: [10.1.0.0/16], policy: q}\n"
                             "policies:\n"
                             "  p:\n"
                             "    default: pass\n"
                             "    risks: {any: \"shape:slow\", \"12\": drop}\n"
                             "  q:\n"
                             "    default: pass\n"
                             "    risks: {any: drop}\n";
    const auto c = compile(text);
    ASSERT_COMPILES(c);
    const Verdict v =
        eval(*c, Flow("10.0.0.1", "192.0.2.1").l7("TLS").risks(risk("tls_weak_cipher")));
    EXPECT_EQ(v.action, Action::Shape);
    EXPECT_EQ(c->reasons.name(v.reason), "p/risks/any");
    EXPECT_VERDICT(c, Flow("10.0.0.1", "192.0.2.1").l7("HTTP").risks(risk("http_numeric_ip_host")),
                   Drop, "p/risks/12");
    EXPECT_VERDICT(c, Flow("10.0.0.1", "192.0.2.1").l7("TLS"), Pass, "p/default");
    EXPECT_VERDICT(c, Flow("10.1.0.1", "192.0.2.1").l7("TLS").risks(risk("malformed_packet")),
                   Drop, "q/risks/any");
    EXPECT_VERDICT(c, Flow("10.1.0.1", "192.0.2.1").l7("TLS"), Pass, "q/default");
}

TEST(PolicyEval, ScoreThreshold) {
    const uint64_t weak = risk("tls_weak_cipher");
    const uint64_t numeric = risk("http_numeric_ip_host");
    const uint16_t s_weak = score_of(weak);
    const uint16_t s_both = score_of(weak | numeric);
    ASSERT_GT(s_weak, 0);
    ASSERT_GT(s_both, s_weak);
    const std::string text = "version: 1\n"
                             "default_policy: leaf\n"
                             "shapers:\n"
                             "  slow: {rate: 1mbit, burst: 10kb}\n"
                             "policies:\n"
                             "  root:\n"
                             "    default: pass\n"
                             "    score: {at_least: " +
                             std::to_string(s_both) +
                             ", marker: drop}\n"
                             "  leaf:\n"
                             "    parent: root\n"
                             "    score: {at_least: " +
                             std::to_string(s_weak) + ", marker: \"shape:slow\"}\n";
    const auto c = compile(text);
    ASSERT_COMPILES(c);
    const Flow wan("10.0.0.1", "192.0.2.1");
    // Equal to the threshold is enough.
    Verdict v = eval(*c, Flow(wan).l7("TLS").risks(weak));
    EXPECT_EQ(v.risk_score, s_weak);
    EXPECT_EQ(v.action, Action::Shape);
    EXPECT_EQ(c->reasons.name(v.reason), "leaf/score/" + std::to_string(s_weak));
    EXPECT_VERDICT(c, Flow(wan).l7("TLS").risks(weak | numeric), Drop,
                   "root/score/" + std::to_string(s_both));
    EXPECT_VERDICT(c, Flow(wan).l7("TLS"), Pass, "root/default");

    // One point above the score: not reached.
    const auto above = compile(kHead + "    default: pass\n    score: {at_least: " +
                               std::to_string(s_weak + 1) + ", marker: drop}\n");
    ASSERT_COMPILES(above);
    EXPECT_VERDICT(above, Flow(wan).l7("TLS").risks(weak), Pass, "p/default");
    EXPECT_VERDICT(above, Flow(wan).l7("TLS").risks(weak | numeric), Drop,
                   "p/score/" + std::to_string(s_weak + 1));
}

TEST(PolicyEval, RiskExceptions) {
    const std::string text =
        "version: 1\n"
        "default_policy: root\n"
        "pools:\n"
        "  - {name: a, ip: [10.1.0.0/16], policy: mid}\n"
        "  - {name: b, ip: [10.2.0.0/16], policy: leaf}\n"
        "policies:\n"
        "  root:\n"
        "    default: pass\n"
        "    risks: {known_protocol_on_non_standard_port: drop, http_numeric_ip_host: drop,\n"
        "            tls_selfsigned_certificate: drop, tls_obsolete_version: drop}\n"
        "  mid:\n"
        "    parent: root\n"
        "    risk_exceptions:\n"
        "      - {risks: [known_protocol_on_non_standard_port], protocols: [SSH]}\n"
        "      - {risks: [tls_selfsigned_certificate], hostnames: [\"*.lab.example\"]}\n"
        "      - {risks: [http_numeric_ip_host], ips: [198.51.100.0/24, \"2001:db8:7::/48\"]}\n"
        "      - {risks: [tls_obsolete_version], protocols: [TLS], hostnames: [old.example]}\n"
        "  leaf:\n"
        "    parent: mid\n";
    const auto c = compile(text);
    ASSERT_COMPILES(c);
    const uint64_t kpnsp = risk("known_protocol_on_non_standard_port");
    const uint64_t selfsigned = risk("tls_selfsigned_certificate");
    const uint64_t numeric = risk("http_numeric_ip_host");
    const uint64_t obsolete = risk("tls_obsolete_version");
    const std::string wan = "192.0.2.1";

    // Protocol criterion: SSH only; in the declaring policy and its child, not its parent.
    for (const char* host : {"10.1.0.1", "10.2.0.1"}) {
        SCOPED_TRACE(host);
        const Verdict v = eval(*c, Flow(host, wan).l7("SSH").risks(kpnsp));
        EXPECT_EQ(v.action, Action::Pass);
        EXPECT_EQ(c->reasons.name(v.reason), "root/default");
        EXPECT_EQ(v.excepted_risks, kpnsp);
        EXPECT_EQ(v.risk_score, 0);
        const Verdict h = eval(*c, Flow(host, wan).l7("HTTP").risks(kpnsp));
        EXPECT_EQ(h.action, Action::Drop);
        EXPECT_EQ(h.excepted_risks, 0u);
    }
    const Verdict parent = eval(*c, Flow("10.3.0.1", wan).l7("SSH").risks(kpnsp));
    EXPECT_EQ(parent.action, Action::Drop);
    EXPECT_EQ(c->reasons.name(parent.reason), "root/risks/known_protocol_on_non_standard_port");
    EXPECT_EQ(parent.excepted_risks, 0u);
    // The protocol may be the master id.
    EXPECT_EQ(eval(*c, Flow("10.1.0.1", wan).l7("Google", "SSH").risks(kpnsp)).excepted_risks,
              kpnsp);

    // Hostname criterion (wildcard): not the bare domain, not a flow without a hostname.
    EXPECT_EQ(eval(*c, Flow("10.1.0.1", wan).l7("TLS").host("x.lab.example").risks(selfsigned))
                  .excepted_risks,
              selfsigned);
    EXPECT_EQ(eval(*c, Flow("10.1.0.1", wan).l7("TLS").host("x.lab.example").risks(selfsigned))
                  .action,
              Action::Pass);
    EXPECT_VERDICT(c, Flow("10.1.0.1", wan).l7("TLS").host("lab.example").risks(selfsigned), Drop,
                   "root/risks/tls_selfsigned_certificate");
    EXPECT_VERDICT(c, Flow("10.1.0.1", wan).l7("TLS").risks(selfsigned), Drop,
                   "root/risks/tls_selfsigned_certificate");

    // Address criterion: the peer's address, whichever side the local host is on.
    EXPECT_EQ(eval(*c, Flow("10.1.0.1", "198.51.100.7").l7("HTTP").risks(numeric)).action,
              Action::Pass);
    EXPECT_EQ(eval(*c, Flow("198.51.100.7", "10.1.0.1").l7("HTTP").risks(numeric)).action,
              Action::Pass);
    EXPECT_EQ(eval(*c, Flow("2001:db8:7::1", "2001:db8:8::1").l7("HTTP").risks(numeric)).action,
              Action::Drop);  // no pool: the peer is the server, 2001:db8:8::1
    EXPECT_VERDICT(c, Flow("10.1.0.1", "203.0.113.7").l7("HTTP").risks(numeric), Drop,
                   "root/risks/http_numeric_ip_host");

    // Every criterion of one exception must match.
    EXPECT_EQ(eval(*c, Flow("10.2.0.1", wan).l7("TLS").host("old.example").risks(obsolete)).action,
              Action::Pass);
    EXPECT_EQ(eval(*c, Flow("10.2.0.1", wan).l7("TLS").host("new.example").risks(obsolete)).action,
              Action::Drop);
    EXPECT_EQ(eval(*c, Flow("10.2.0.1", wan).l7("HTTP").host("old.example").risks(obsolete)).action,
              Action::Drop);

    // Only the listed risk is ignored: another risk of the same flow still counts.
    const Verdict both = eval(*c, Flow("10.1.0.1", wan).l7("SSH").risks(kpnsp | numeric));
    EXPECT_EQ(both.action, Action::Drop);
    EXPECT_EQ(c->reasons.name(both.reason), "root/risks/http_numeric_ip_host");
    EXPECT_EQ(both.excepted_risks, kpnsp);
    EXPECT_EQ(both.risk_score, score_of(numeric));
}

TEST(PolicyEval, ExceptedRisksDoNotCountTowardsTheScore) {
    const uint64_t kpnsp = risk("known_protocol_on_non_standard_port");
    const std::string text = kHead + "    default: pass\n"
                                      "    score: {at_least: 1, marker: drop}\n"
                                      "    risk_exceptions:\n"
                                      "      - {risks: [any], protocols: [SSH]}\n";
    const auto c = compile(text);
    ASSERT_COMPILES(c);
    const Verdict v = eval(*c, Flow("10.0.0.1", "192.0.2.1").l7("SSH").risks(kpnsp));
    EXPECT_EQ(v.action, Action::Pass);
    EXPECT_EQ(v.excepted_risks, kpnsp);
    EXPECT_EQ(v.risk_score, 0);
    EXPECT_VERDICT(c, Flow("10.0.0.1", "192.0.2.1").l7("HTTP").risks(kpnsp), Drop, "p/score/1");
}

TEST(PolicyEval, PendingUntilL7IsKnown) {
    const std::string text = "version: 1\n"
                             "default_policy: l7\n"
                             "pools:\n"
                             "  - {name: a, ip: [10.2.0.0/16], policy: host}\n"
                             "  - {name: b, ip: [10.3.0.0/16], policy: iponly}\n"
                             "  - {name: c, ip: [10.4.0.0/16], policy: ipleaf}\n"
                             "  - {name: d, ip: [10.5.0.0/16], policy: iphost}\n"
                             "  - {name: e, ip: [10.6.0.0/16], policy: catleaf}\n"
                             "policies:\n"
                             "  l7: {default: drop, protocols: {HTTP: pass}}\n"
                             "  host: {default: drop, hostnames: {a.example: pass}}\n"
                             "  iponly: {default: drop, ips: {198.51.100.0/24: pass}}\n"
                             "  l7parent: {default: pass, protocols: {HTTP: drop}}\n"
                             "  ipleaf: {parent: l7parent, ips: {198.51.100.0/24: drop}}\n"
                             "  iphost:\n"
                             "    default: pass\n"
                             "    ips: {198.51.100.0/24: drop}\n"
                             "    hostnames: {a.example: pass}\n"
                             "  catleaf: {parent: iponly, categories: {Video: pass}}\n";
    const auto c = compile(text);
    ASSERT_COMPILES(c);
    const std::string bad = "198.51.100.1";
    const std::string wan = "192.0.2.1";
    // Protocol and hostname markers could still match: pass, pending, even with default drop.
    EXPECT_TRUE(is_pending(*c, Flow("10.1.0.1", wan).unknown()));
    EXPECT_TRUE(is_pending(*c, Flow("10.2.0.1", wan).unknown().host("a.example")));
    // Once known, the real verdict.
    EXPECT_VERDICT(c, Flow("10.1.0.1", wan).l7("HTTP"), Pass, "l7/protocols/HTTP");
    EXPECT_VERDICT(c, Flow("10.1.0.1", wan).l7("DNS"), Drop, "l7/default");
    EXPECT_VERDICT(c, Flow("10.2.0.1", wan).l7("HTTP").host("a.example"), Pass,
                   "host/hostnames/a.example");
    EXPECT_VERDICT(c, Flow("10.2.0.1", wan).l7("HTTP").host("b.example"), Drop, "host/default");
    // No L7 marker on the chain: decided at once, default included.
    EXPECT_VERDICT(c, Flow("10.3.0.1", bad).unknown(), Pass, "iponly/ips/198.51.100.0/24");
    EXPECT_VERDICT(c, Flow("10.3.0.1", wan).unknown(), Drop, "iponly/default");
    // An ips marker in the leaf precedes the parent's protocols: decided at once when it
    // matches; otherwise the parent's protocols could still match.
    EXPECT_VERDICT(c, Flow("10.4.0.1", bad).unknown(), Drop, "ipleaf/ips/198.51.100.0/24");
    EXPECT_TRUE(is_pending(*c, Flow("10.4.0.1", wan).unknown()));
    EXPECT_VERDICT(c, Flow("10.4.0.1", wan).l7("HTTP"), Drop, "l7parent/protocols/HTTP");
    EXPECT_VERDICT(c, Flow("10.4.0.1", wan).l7("DNS"), Pass, "l7parent/default");
    // Hostnames precede ips in the same policy: an ips match is still pending.
    EXPECT_TRUE(is_pending(*c, Flow("10.5.0.1", bad).unknown()));
    EXPECT_VERDICT(c, Flow("10.5.0.1", bad).l7("HTTP").host("a.example"), Pass,
                   "iphost/hostnames/a.example");
    EXPECT_VERDICT(c, Flow("10.5.0.1", bad).l7("HTTP").host("b.example"), Drop,
                   "iphost/ips/198.51.100.0/24");
    // A leaf categories marker precedes the parent's ips: pending even when the ips match.
    EXPECT_TRUE(is_pending(*c, Flow("10.6.0.1", bad).unknown()));
    EXPECT_VERDICT(c, Flow("10.6.0.1", bad).l7("DNS").cat("Network"), Pass,
                   "iponly/ips/198.51.100.0/24");
    EXPECT_VERDICT(c, Flow("10.6.0.1", wan).l7("DNS").cat("Video"), Pass,
                   "catleaf/categories/Video");
    EXPECT_VERDICT(c, Flow("10.6.0.1", wan).l7("DNS").cat("Network"), Drop, "iponly/default");
}

TEST(PolicyEval, PendingWithCountries) {
    REQUIRE_GEOIP(geo);
    const std::string text = "version: 1\n"
                             "default_policy: geo\n"
                             "pools:\n"
                             "  - {name: a, ip: [10.2.0.0/16], policy: geoleaf}\n"
                             "policies:\n"
                             "  geo:\n"
                             "    default: pass\n"
                             "    ips: {198.51.100.0/24: drop}\n"
                             "    countries: {CN: drop}\n"
                             "  l7root: {protocols: {HTTP: pass}}\n"
                             "  geoleaf: {parent: l7root, default: pass, countries: {CN: drop}}\n";
    const auto c = compile(text, geo);
    ASSERT_COMPILES(c);
    // Only ips and countries on the chain: decided at once.
    EXPECT_VERDICT(c, Flow("10.1.0.1", "198.18.1.1").unknown(), Drop, "geo/countries/CN");
    EXPECT_VERDICT(c, Flow("10.1.0.1", "198.51.100.1").unknown(), Drop, "geo/ips/198.51.100.0/24");
    EXPECT_VERDICT(c, Flow("10.1.0.1", "198.18.0.1").unknown(), Pass, "geo/default");
    // A leaf country marker precedes the parent's protocols.
    EXPECT_VERDICT(c, Flow("10.2.0.1", "198.18.1.1").unknown(), Drop, "geoleaf/countries/CN");
    EXPECT_TRUE(is_pending(*c, Flow("10.2.0.1", "198.18.0.1").unknown()));
}

// Issue 18, point 9: while L7 markers could still match, the flow takes the least strict
// verdict they and the marker (or default) they could override can give: drop from the first
// packet when all of them drop, pass (pending) as soon as one of them passes.
TEST(PolicyEval, PendingTakesTheLeastStrictReachableVerdict) {
    const std::string text = "version: 1\n"
                             "default_policy: p\n"
                             "shapers: {slow: {rate: 1mbit, burst: 10kb}}\n"
                             "pools:\n"
                             "  - {name: a, ip: [10.2.0.0/16], policy: dd}\n"
                             "  - {name: b, ip: [10.3.0.0/16], policy: rj}\n"
                             "  - {name: c, ip: [10.4.0.0/16], policy: sh}\n"
                             "  - {name: d, ip: [10.5.0.0/16], policy: shadow}\n"
                             "policies:\n"
                             "  p:\n"
                             "    default: pass\n"
                             "    hostnames: {a.example: drop}\n"
                             "    ips: {198.51.100.0/24: drop}\n"
                             "    protocols: {HTTP: pass}\n"
                             "  dd: {default: drop, protocols: {BitTorrent: drop}, categories: {Game: reject}}\n"
                             "  rj: {default: reject, hostnames: {a.example: reject, b.example: drop}}\n"
                             "  sh: {default: \"shape:slow\", protocols: {BitTorrent: drop}}\n"
                             "  shadowroot: {protocols: {HTTP: pass}}\n"
                             "  shadow: {parent: shadowroot, default: drop, protocols: {HTTP: drop}}\n";
    const auto c = compile(text);
    ASSERT_COMPILES(c);
    const std::string bad = "198.51.100.1";
    const std::string wan = "192.0.2.1";
    // Hostname drop precedes the ips drop; the protocol pass comes after it: drop at once.
    Verdict v = eval(*c, Flow("10.1.0.1", bad).unknown());
    EXPECT_EQ(v.action, Action::Drop);
    EXPECT_TRUE(v.pending);
    EXPECT_EQ(c->reasons.name(v.reason), "p/ips/198.51.100.0/24");
    // Elsewhere the protocol pass and the default pass are reachable: pending pass.
    EXPECT_TRUE(is_pending(*c, Flow("10.1.0.1", wan).unknown()));
    // Default drop, L7 markers drop or reject: drop, by the default (the matched one on a tie).
    v = eval(*c, Flow("10.2.0.1", wan).unknown());
    EXPECT_EQ(v.action, Action::Drop);
    EXPECT_EQ(c->reasons.name(v.reason), "dd/default");
    // Reject everywhere but one drop: drop by that marker; once known, the real verdict.
    v = eval(*c, Flow("10.3.0.1", wan).unknown());
    EXPECT_EQ(v.action, Action::Drop);
    EXPECT_EQ(c->reasons.name(v.reason), "rj/hostnames/b.example");
    EXPECT_VERDICT(c, Flow("10.3.0.1", wan).l7("TLS").host("a.example"), Reject, "rj/hostnames/a.example");
    // Shape by default, an L7 drop: shaped from the first packet.
    v = eval(*c, Flow("10.4.0.1", wan).unknown());
    EXPECT_EQ(v.action, Action::Shape);
    EXPECT_EQ(c->reasons.name(v.reason), "sh/default");
    // A parent's marker for a protocol the leaf already names can never match: not reachable.
    v = eval(*c, Flow("10.5.0.1", wan).unknown());
    EXPECT_EQ(v.action, Action::Drop);
    EXPECT_EQ(c->reasons.name(v.reason), "shadow/default");
}

TEST(PolicyEval, PoolsSelectThePolicy) {
    const std::string text = "version: 1\n"
                             "default_policy: dflt\n"
                             "pools:\n"
                             "  - {name: wide, ip: [10.0.0.0/8], policy: wide}\n"
                             "  - {name: narrow, ip: [10.1.0.0/16, \"2001:db8:10::/48\"],"
                             " policy: narrow}\n"
                             "  - {name: host, ip: [10.1.2.3], policy: host}\n"
                             "  - {name: macs, mac: [\"02:00:00:00:00:01\", \"02-00-00-00-00-AB\"],"
                             " policy: macpol}\n"
                             "  - {name: v6, ip: [\"2001:db8:10:1::/64\"], policy: v6}\n"
                             "policies:\n"
                             "  dflt: {default: pass}\n"
                             "  wide: {default: pass}\n"
                             "  narrow: {default: pass, ips: {192.0.2.0/24: drop}}\n"
                             "  host: {default: pass}\n"
                             "  macpol: {default: pass}\n"
                             "  v6: {default: pass}\n";
    const auto c = compile(text);
    ASSERT_COMPILES(c);
    const std::string wan = "198.51.100.1";
    // Longest prefix across pools.
    EXPECT_VERDICT(c, Flow("10.2.0.1", wan).l7("DNS"), Pass, "wide/default");
    EXPECT_VERDICT(c, Flow("10.1.0.9", wan).l7("DNS"), Pass, "narrow/default");
    EXPECT_VERDICT(c, Flow("10.1.2.3", wan).l7("DNS"), Pass, "host/default");
    EXPECT_VERDICT(c, Flow("10.1.2.4", wan).l7("DNS"), Pass, "narrow/default");
    // The server can be the local host; then the client is the peer.
    EXPECT_VERDICT(c, Flow(wan, "10.1.0.9").l7("DNS"), Pass, "narrow/default");
    EXPECT_VERDICT(c, Flow("192.0.2.5", "10.1.0.9").l7("DNS"), Drop, "narrow/ips/192.0.2.0/24");
    EXPECT_VERDICT(c, Flow("10.1.0.9", "192.0.2.5").l7("DNS"), Drop, "narrow/ips/192.0.2.0/24");
    // Client checked before server, even when the server's prefix is longer.
    EXPECT_VERDICT(c, Flow("10.2.0.1", "10.1.2.3").l7("DNS"), Pass, "wide/default");
    EXPECT_VERDICT(c, Flow("10.1.0.9", "192.0.2.5").l7("DNS"), Drop, "narrow/ips/192.0.2.0/24");
    // MAC before IP; MACs in any case and with dashes.
    EXPECT_VERDICT(c, Flow("10.1.0.9", wan).l7("DNS").client_mac("02:00:00:00:00:01"), Pass,
                   "macpol/default");
    EXPECT_VERDICT(c, Flow("10.1.0.9", wan).l7("DNS").client_mac("02:00:00:00:00:ab"), Pass,
                   "macpol/default");
    EXPECT_VERDICT(c, Flow("10.1.0.9", wan).l7("DNS").client_mac("02:00:00:00:00:02"), Pass,
                   "narrow/default");
    EXPECT_VERDICT(c, Flow(wan, "192.0.2.9").l7("DNS").server_mac("02:00:00:00:00:01"), Pass,
                   "macpol/default");
    EXPECT_VERDICT(c, Flow("10.2.0.1", wan).l7("DNS").server_mac("02:00:00:00:00:01"), Pass,
                   "wide/default");
    // IPv6 pools.
    EXPECT_VERDICT(c, Flow("2001:db8:10::5", "2001:db8:99::1").l7("DNS"), Pass, "narrow/default");
    EXPECT_VERDICT(c, Flow("2001:db8:10:1::5", "2001:db8:99::1").l7("DNS"), Pass, "v6/default");
    EXPECT_VERDICT(c, Flow("2001:db8:99::1", "2001:db8:10:1::5").l7("DNS"), Pass, "v6/default");
    // No pool: default_policy.
    EXPECT_VERDICT(c, Flow("172.16.0.1", wan).l7("DNS"), Pass, "dflt/default");
    EXPECT_VERDICT(c, Flow("2001:db8:99::1", "2001:db8:98::1").l7("DNS"), Pass, "dflt/default");
    EXPECT_EQ(eval(*c, Flow("172.16.0.1", wan).l7("DNS")).policy, c->snap->default_policy);
}

TEST(PolicyEval, IpsListFromFile) {
    TempDir tmp;
    tmp.write("bad.txt", "# bad peers\n"
                         "198.51.100.0/24   # documentation net\n"
                         "\n"
                         "203.0.113.7\n"
                         "   \t\n"
                         "2001:db8:bad::/48\n"
                         "   # indented comment\n"
                         "2001:db8:cafe::1");  // no newline at the end
    tmp.write("good.txt", "198.51.100.77\n");
    const std::string text = "version: 1\n"
                             "default_policy: p\n"
                             "lists:\n"
                             "  bad: {file: bad.txt}\n"  // relative to the policy file
                             "  good: {file: " +
                             tmp.path() + "/good.txt, kind: ips}\n"
                                          "policies:\n"
                                          "  p:\n"
                                          "    default: pass\n"
                                          "    ips: {\"@bad\": drop, \"@good\": pass}\n";
    const auto c = compile(text, nullptr, tmp.path() + "/policy.yaml");
    ASSERT_COMPILES(c);
    const std::string lan = "10.0.0.1";
    EXPECT_VERDICT(c, Flow(lan, "198.51.100.9").l7("DNS"), Drop, "p/ips/@bad");
    EXPECT_VERDICT(c, Flow(lan, "203.0.113.7").l7("DNS"), Drop, "p/ips/@bad");
    EXPECT_VERDICT(c, Flow(lan, "203.0.113.8").l7("DNS"), Pass, "p/default");
    EXPECT_VERDICT(c, Flow("2001:db8:1::1", "2001:db8:bad::1").l7("DNS"), Drop, "p/ips/@bad");
    EXPECT_VERDICT(c, Flow("2001:db8:1::1", "2001:db8:cafe::1").l7("DNS"), Drop, "p/ips/@bad");
    EXPECT_VERDICT(c, Flow("2001:db8:1::1", "2001:db8:cafe::2").l7("DNS"), Pass, "p/default");
    EXPECT_VERDICT(c, Flow("2001:db8:1::1", "2001:db8:bae::1").l7("DNS"), Pass, "p/default");
    // Both lists cover 198.51.100.77: the longer prefix wins inside one policy.
    EXPECT_VERDICT(c, Flow(lan, "198.51.100.77").l7("DNS"), Pass, "p/ips/@good");

    // A bad line in a list file is reported with the list file's name and line.
    tmp.write("broken.txt", "198.51.100.1\n\n198.51.100.300\n");
    const auto b = compile("version: 1\ndefault_policy: p\nlists:\n  x: {file: broken.txt}\n"
                           "policies:\n  p: {ips: {\"@x\": drop}}\n",
                           nullptr, tmp.path() + "/policy.yaml");
    EXPECT_EQ(b->snap, nullptr);
    expect_error(b->errors, 3, 1, "198.51.100.300", "", tmp.path() + "/broken.txt");
}

TEST(PolicyEval, HostnameListFileIsHostnamesEvenWhenItLooksHex) {
    // "cafe.be" and "dead.beef" are made of hex digits and dots, yet are hostnames.
    TempDir tmp;
    tmp.write("hex.txt", "cafe.be\ndead.beef\n");
    tmp.write("v6.txt", "dead:beef::1\ncafe::/16\n");  // IPv6 addresses are still addresses
    const auto c = compile("version: 1\ndefault_policy: p\n"
                           "lists:\n  hex: {file: hex.txt}\n  v6: {file: v6.txt}\n"
                           "policies:\n"
                           "  p: {default: pass, hostnames: {\"@hex\": drop},"
                           " ips: {\"@v6\": drop}}\n",
                           nullptr, tmp.path() + "/policy.yaml");
    ASSERT_COMPILES(c);
    EXPECT_VERDICT(c, Flow("2001:db8::1", "dead:beef::1").l7("DNS"), Drop, "p/ips/@v6");
    EXPECT_VERDICT(c, Flow("2001:db8::1", "cafe:1::1").l7("DNS"), Drop, "p/ips/@v6");
    EXPECT_VERDICT(c, Flow("10.0.0.1", "192.0.2.1").l7("HTTP").host("cafe.be"), Drop,
                   "p/hostnames/@hex");
    EXPECT_VERDICT(c, Flow("10.0.0.1", "192.0.2.1").l7("HTTP").host("dead.beef"), Drop,
                   "p/hostnames/@hex");
}

TEST(PolicyEval, HostnamesFromAnInlineList) {
    const std::string text = "version: 1\n"
                             "default_policy: p\n"
                             "lists:\n"
                             "  ads: {hostnames: [\"*.doubleclick.net\", Ads.Example.com,"
                             " '~^track[0-9]+\\.example\\.org$']}\n"
                             "policies:\n"
                             "  p:\n"
                             "    default: pass\n"
                             "    hostnames: {\"@ads\": drop, www.Example.com: drop}\n";
    const auto c = compile(text);
    ASSERT_COMPILES(c);
    const Flow f("10.0.0.1", "192.0.2.1");
    EXPECT_VERDICT(c, Flow(f).l7("TLS").host("a.doubleclick.net"), Drop, "p/hostnames/@ads");
    EXPECT_VERDICT(c, Flow(f).l7("TLS").host("x.y.doubleclick.net"), Drop, "p/hostnames/@ads");
    EXPECT_VERDICT(c, Flow(f).l7("TLS").host("doubleclick.net"), Pass, "p/default");
    EXPECT_VERDICT(c, Flow(f).l7("TLS").host("notdoubleclick.net"), Pass, "p/default");
    EXPECT_VERDICT(c, Flow(f).l7("TLS").host("ads.example.com"), Drop, "p/hostnames/@ads");
    EXPECT_VERDICT(c, Flow(f).l7("TLS").host("www.example.com"), Drop,
                   "p/hostnames/www.Example.com");
    EXPECT_VERDICT(c, Flow(f).l7("TLS").host("track42.example.org"), Drop, "p/hostnames/@ads");
    EXPECT_VERDICT(c, Flow(f).l7("TLS").host("track.example.org"), Pass, "p/default");
    // Hostnames need L7: a flow without one, or not yet classified, does not match.
    EXPECT_VERDICT(c, Flow(f).l7("TLS"), Pass, "p/default");
}

TEST(PolicyEval, HostnamePrecedenceAcrossLevels) {
    const std::string text = "version: 1\n"
                             "default_policy: leaf\n"
                             "policies:\n"
                             "  root:\n"
                             "    default: pass\n"
                             "    hostnames: {a.example.com: pass, \"*.b.example.com\": pass}\n"
                             "  leaf:\n"
                             "    parent: root\n"
                             "    hostnames: {\"*.example.com\": drop, c.b.example.com: pass,\n"
                             "                \"*.d.example.com\": pass}\n";
    const auto c = compile(text);
    ASSERT_COMPILES(c);
    const Flow f("10.0.0.1", "192.0.2.1");
    // A leaf wildcard beats a parent's exact name.
    EXPECT_VERDICT(c, Flow(f).l7("TLS").host("a.example.com"), Drop,
                   "leaf/hostnames/*.example.com");
    EXPECT_VERDICT(c, Flow(f).l7("TLS").host("x.b.example.com"), Drop,
                   "leaf/hostnames/*.example.com");
    // Inside one level: exact before wildcard, the longer wildcard first.
    EXPECT_VERDICT(c, Flow(f).l7("TLS").host("c.b.example.com"), Pass,
                   "leaf/hostnames/c.b.example.com");
    EXPECT_VERDICT(c, Flow(f).l7("TLS").host("x.d.example.com"), Pass,
                   "leaf/hostnames/*.d.example.com");
    EXPECT_VERDICT(c, Flow(f).l7("TLS").host("example.com"), Pass, "root/default");
}

TEST(PolicyEval, RegexHostnames) {
    const std::string text = "version: 1\n"
                             "default_policy: leaf\n"
                             "policies:\n"
                             "  root:\n"
                             "    default: pass\n"
                             "    hostnames: {ads7.example.com: pass, '~^cdn[0-9]+\\.': drop}\n"
                             "  leaf:\n"
                             "    parent: root\n"
                             "    hostnames:\n"
                             "      '~^ads[0-9]+\\.example\\.com$': drop\n"
                             "      '~^TRACK[0-9]+\\.EXAMPLE\\.com$': drop\n"
                             "      ads1.example.com: pass\n"
                             "      '*.x.example.com': pass\n"
                             "      '~^ads[0-9]+\\.x\\.example\\.com$': drop\n";
    const auto c = compile(text);
    ASSERT_COMPILES(c);
    ASSERT_EQ(c->snap->regex_count, 4u);
    const std::string re = "leaf/hostnames/~^ads[0-9]+\\.example\\.com$";
    const Flow f("10.0.0.1", "192.0.2.1");
    EXPECT_VERDICT(c, Flow(f).l7("TLS").host("ads12.example.com"), Drop, re);
    EXPECT_VERDICT(c, Flow(f).l7("TLS").host("ads.example.com"), Pass, "root/default");
    EXPECT_VERDICT(c, Flow(f).l7("TLS").host("xads12.example.com"), Pass, "root/default");
    EXPECT_VERDICT(c, Flow(f).l7("TLS").host("ads12.example.com.evil"), Pass, "root/default");
    // Caseless.
    EXPECT_VERDICT(c, Flow(f).l7("TLS").host("track3.example.com"), Drop,
                   "leaf/hostnames/~^TRACK[0-9]+\\.EXAMPLE\\.com$");
    // Exact and wildcard names rank before regexes of the same level...
    EXPECT_VERDICT(c, Flow(f).l7("TLS").host("ads1.example.com"), Pass,
                   "leaf/hostnames/ads1.example.com");
    EXPECT_VERDICT(c, Flow(f).l7("TLS").host("ads5.x.example.com"), Pass,
                   "leaf/hostnames/*.x.example.com");
    // ...but a leaf regex beats the parent's exact name, and a parent regex still applies.
    EXPECT_VERDICT(c, Flow(f).l7("TLS").host("ads7.example.com"), Drop, re);
    EXPECT_VERDICT(c, Flow(f).l7("TLS").host("cdn4.example.net"), Drop,
                   "root/hostnames/~^cdn[0-9]+\\.");
    // Not before L7 is known: pending.
    EXPECT_TRUE(is_pending(*c, Flow(f).unknown().host("ads12.example.com")));
}

TEST(PolicyEval, NprobeExample) {
    REQUIRE_GEOIP(geo);
    const auto c = compile(kNprobeExample, geo, "ips.conf");
    ASSERT_COMPILES(c);
    const std::string sub = "my subrule 2 (son of rule 1)";
    // The example's protocols key "53" is a number, and numeric keys are nDPI ids: id 53 is
    // not DNS (DNS is 5), so it does not mean port 53.
    ASSERT_EQ(proto("DNS"), 5);
    EXPECT_EQ(names().protocol_id("53"), 53);
    EXPECT_NE(names().protocol(53), "DNS");
    const std::string wan = "192.0.2.53";  // in no pool and no GeoIP network
    for (const Flow& pool2 : {Flow("172.16.0.5", wan),
                              Flow("192.0.2.10", wan).client_mac("e8:06:88:ff:fe:e4"),
                              Flow(wan, "192.0.2.10").server_mac("00:01:01:e4:ba:2c")}) {
        // DNS is not marked on the chain: the leaf's default drop.
        EXPECT_VERDICT(c, Flow(pool2).l7("DNS"), Drop, sub + "/default");
        // What "53" matches is nDPI's protocol 53.
        EXPECT_VERDICT(c, Flow(pool2).ids(0, 53), Pass, sub + "/protocols/53");
        EXPECT_VERDICT(c, Flow(pool2).l7("TLS").host("www.gstatic.com"), Drop,
                       sub + "/hostnames/www.gstatic.com");
        EXPECT_VERDICT(c, Flow(pool2).l7("TLS").host("www.youtube.com").cat("Video"), Pass,
                       sub + "/hostnames/www.youtube.com");
        EXPECT_VERDICT(c, Flow(pool2).l7("HTTP"), Pass, "my rule 1/protocols/HTTP");
        EXPECT_VERDICT(c, Flow(pool2).l7("TLS"), Pass, "root rule/protocols/TLS");
        EXPECT_VERDICT(c, Flow(pool2).l7("Netflix").cat("Video"), Drop,
                       "root rule/categories/Video");
        EXPECT_TRUE(is_pending(*c, Flow(pool2).unknown()));
    }
    // Pool 2's parent decides by country when the leaf has nothing for the flow.
    EXPECT_VERDICT(c, Flow("172.16.0.5", "198.18.0.1").l7("DNS"), Pass, "my rule 1/countries/IT");
    EXPECT_VERDICT(c, Flow("172.16.0.5", "198.18.1.1").l7("DNS"), Drop, "my rule 1/countries/CN");
    // Pool 1.
    EXPECT_VERDICT(c, Flow("10.1.2.3", "198.18.1.1").l7("HTTP"), Pass, "my rule 1/protocols/HTTP");
    EXPECT_VERDICT(c, Flow("10.1.2.3", "198.18.1.1").l7("DNS"), Drop, "my rule 1/countries/CN");
    EXPECT_VERDICT(c, Flow("192.168.0.77", "198.19.200.1").l7("DNS"), Drop,
                   "my rule 1/continents/Asia");
    EXPECT_VERDICT(c, Flow("192.168.0.77", "198.19.1.1").l7("DNS"), Pass, "my rule 1/default");
    EXPECT_VERDICT(c, Flow("2a03:b0c0:2:ffff::1", "2001:db8:2::1").l7("DNS"), Drop,
                   "my rule 1/countries/CN");
    // Risk 12 (http_numeric_ip_host) drops from the root, whatever the leaf says.
    EXPECT_VERDICT(c, Flow("10.1.2.3", wan).l7("HTTP").risks(risk("http_numeric_ip_host")), Drop,
                   "root rule/risks/12");
    // Pool 3 and no pool.
    EXPECT_VERDICT(c, Flow("131.114.9.9", wan).l7("HTTP"), Drop, "my rule 3/protocols/HTTP");
    EXPECT_VERDICT(c, Flow("131.114.9.9", wan).l7("DNS"), Pass, "my rule 3/default");
    EXPECT_VERDICT(c, Flow("192.0.2.1", wan).l7("DNS"), Pass, "root rule/default");
    EXPECT_VERDICT(c, Flow("192.0.2.1", wan).l7("DNS").cat("Video"), Drop,
                   "root rule/categories/Video");
}

} // namespace
} // namespace l7gate::test
