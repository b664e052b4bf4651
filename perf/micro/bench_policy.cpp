// Policy lookups: the per-flow evaluation with a large policy, and the two design choices
// the policy issue asked to measure (hostnames: flat hashed suffix table vs Hyperscan;
// GeoIP: libmaxminddb per flow vs countries compiled into an interval table).
//
// The large policy comes from tools/gen_large_policy.py (the meson benchmark target writes
// it); set L7GATE_LARGE_POLICY to its YAML. L7GATE_GEOIP names an MMDB (the test fixture).

#include <benchmark/benchmark.h>

#include <arpa/inet.h>
#include <hs/hs.h>
#include <maxminddb.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "control/base/ndpi_names.hpp"
#include "control/policy/compiler.hpp"
#include "dataplane/host_table.hpp"
#include "dataplane/prefix_table.hpp"

namespace {

using namespace l7gate;

std::vector<std::string> load_hosts() {
    std::vector<std::string> v;
    const char* p = std::getenv("L7GATE_LARGE_POLICY");
    if (p == nullptr) {
        return v;
    }
    std::string dir = p;
    dir = dir.substr(0, dir.rfind('/') + 1);
    std::ifstream in(dir + "large-hosts.txt");
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line[0] != '#') {
            v.push_back(line);
        }
    }
    return v;
}

// Names to look up: half match an entry (exact or under a wildcard), half match nothing.
std::vector<std::string> probes(const std::vector<std::string>& hosts) {
    std::mt19937 rng(7);
    std::vector<std::string> v;
    for (int i = 0; i < 4096; ++i) {
        const std::string& h = hosts[rng() % hosts.size()];
        if (i % 2 == 0) {
            v.push_back(h.rfind("*.", 0) == 0 ? "www" + h.substr(1) : h);
        } else {
            v.push_back("nomatch" + std::to_string(i) + ".example.org");
        }
    }
    return v;
}

void BM_HostTable10k(benchmark::State& st) {
    const auto hosts = load_hosts();
    if (hosts.empty()) {
        st.SkipWithError("set L7GATE_LARGE_POLICY");
        return;
    }
    dp::HostTable t;
    for (size_t i = 0; i < hosts.size(); ++i) {
        t.add(hosts[i], 1, static_cast<uint32_t>(i));
    }
    t.build();
    const auto names = probes(hosts);
    size_t i = 0;
    uint64_t hits = 0;
    for (auto _ : st) {
        hits += t.lookup(names[i++ & 4095]).value != dp::HostTable::kNone;
    }
    benchmark::DoNotOptimize(hits);
    st.counters["hit_ratio"] = static_cast<double>(hits) / static_cast<double>(st.iterations());
}
BENCHMARK(BM_HostTable10k);

int on_match(unsigned, unsigned long long, unsigned long long, unsigned, void* ctx) {
    ++*static_cast<uint64_t*>(ctx);
    return 1;  // first match is enough
}

void BM_Hyperscan10k(benchmark::State& st) {
    const auto hosts = load_hosts();
    if (hosts.empty()) {
        st.SkipWithError("set L7GATE_LARGE_POLICY");
        return;
    }
    // The same semantics as regexes: exact names anchored, *.suffix as "\.suffix$".
    std::vector<std::string> pats;
    for (const std::string& h : hosts) {
        std::string esc;
        const bool wild = h.rfind("*.", 0) == 0;
        for (char c : wild ? h.substr(1) : h) {
            if (c == '.' || c == '-') {
                esc += '\\';
            }
            esc += c;
        }
        pats.push_back(wild ? esc + "$" : "^" + esc + "$");
    }
    std::vector<const char*> exprs;
    std::vector<unsigned> flags(pats.size(), HS_FLAG_CASELESS | HS_FLAG_SINGLEMATCH);
    std::vector<unsigned> ids;
    for (size_t i = 0; i < pats.size(); ++i) {
        exprs.push_back(pats[i].c_str());
        ids.push_back(static_cast<unsigned>(i));
    }
    hs_database_t* db = nullptr;
    hs_compile_error_t* err = nullptr;
    if (hs_compile_multi(exprs.data(), flags.data(), ids.data(), static_cast<unsigned>(exprs.size()),
                         HS_MODE_BLOCK, nullptr, &db, &err) != HS_SUCCESS) {
        st.SkipWithError(err->message);
        hs_free_compile_error(err);
        return;
    }
    hs_scratch_t* scratch = nullptr;
    hs_alloc_scratch(db, &scratch);
    const auto names = probes(hosts);
    size_t i = 0;
    uint64_t hits = 0;
    for (auto _ : st) {
        const std::string& n = names[i++ & 4095];
        hs_scan(db, n.data(), static_cast<unsigned>(n.size()), 0, scratch, on_match, &hits);
    }
    st.counters["hit_ratio"] = static_cast<double>(hits) / static_cast<double>(st.iterations());
    hs_free_scratch(scratch);
    hs_free_database(db);
}
BENCHMARK(BM_Hyperscan10k);

void BM_GeoMmdbLookup(benchmark::State& st) {
    const char* path = std::getenv("L7GATE_GEOIP");
    MMDB_s mmdb;
    if (path == nullptr || MMDB_open(path, MMDB_MODE_MMAP, &mmdb) != MMDB_SUCCESS) {
        st.SkipWithError("set L7GATE_GEOIP to an MMDB");
        return;
    }
    std::mt19937 rng(3);
    std::vector<sockaddr_in> addrs(4096);
    for (auto& a : addrs) {
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(0xc6120000u | (rng() & 0x1ffff));  // 198.18.0.0/15
    }
    size_t i = 0;
    uint64_t found = 0;
    for (auto _ : st) {
        int e = 0;
        MMDB_lookup_result_s r = MMDB_lookup_sockaddr(&mmdb, reinterpret_cast<const sockaddr*>(&addrs[i++ & 4095]), &e);
        if (r.found_entry) {
            MMDB_entry_data_s d;
            found += MMDB_get_value(&r.entry, &d, "country", "iso_code", nullptr) == MMDB_SUCCESS;
        }
    }
    benchmark::DoNotOptimize(found);
    MMDB_close(&mmdb);
}
BENCHMARK(BM_GeoMmdbLookup);

void BM_GeoPrefixTable(benchmark::State& st) {
    // 400k networks, the size of a GeoLite2-Country IPv4 tree.
    std::mt19937 rng(5);
    std::vector<dp::PrefixTable4::Prefix> ps;
    for (int i = 0; i < 400000; ++i) {
        const uint8_t len = static_cast<uint8_t>(16 + rng() % 9);
        ps.push_back({static_cast<uint32_t>(rng()), len, len, static_cast<uint32_t>(rng() % 250)});
    }
    dp::PrefixTable4 t;
    t.build(std::move(ps));
    std::vector<uint32_t> addrs(4096);
    for (auto& a : addrs) {
        a = static_cast<uint32_t>(rng());
    }
    size_t i = 0;
    uint64_t sum = 0;
    for (auto _ : st) {
        sum += t.lookup(addrs[i++ & 4095]);
    }
    benchmark::DoNotOptimize(sum);
    st.counters["intervals"] = static_cast<double>(t.intervals());
}
BENCHMARK(BM_GeoPrefixTable);

void BM_PolicyEvaluateLarge(benchmark::State& st) {
    const char* path = std::getenv("L7GATE_LARGE_POLICY");
    if (path == nullptr) {
        st.SkipWithError("set L7GATE_LARGE_POLICY");
        return;
    }
    ctl::NdpiNames names;
    names.init("", "");
    ctl::ReasonRegistry reasons;
    ctl::CompileContext ctx;
    ctx.names = &names;
    ctx.reasons = &reasons;
    std::vector<ctl::PolicyError> errors;
    auto snap = ctl::compile_policy_file(path, "yaml", ctx, errors);
    if (snap == nullptr) {
        st.SkipWithError(errors.empty() ? "compile failed" : errors.front().str().c_str());
        return;
    }
    const auto hosts = load_hosts();
    const auto names_v = probes(hosts);
    std::mt19937 rng(9);
    struct Flow {
        uint8_t client[4];
        uint8_t server[4];
        std::string host;
        uint16_t app;
    };
    std::vector<Flow> flows(4096);
    const uint16_t http = static_cast<uint16_t>(names.protocol_id("HTTP"));
    const uint16_t tls = static_cast<uint16_t>(names.protocol_id("TLS"));
    for (size_t k = 0; k < flows.size(); ++k) {
        Flow& f = flows[k];
        const uint8_t c[4] = {198, 18, static_cast<uint8_t>(k % 3 == 0 ? 1 : 100 + rng() % 20), static_cast<uint8_t>(rng())};
        const uint8_t s[4] = {198, 19, static_cast<uint8_t>(rng()), static_cast<uint8_t>(rng())};
        std::copy(c, c + 4, f.client);
        std::copy(s, s + 4, f.server);
        f.host = names_v[k];
        f.app = k % 2 ? http : tls;
    }
    size_t i = 0;
    uint64_t drops = 0;
    for (auto _ : st) {
        const Flow& fl = flows[i++ & 4095];
        dp::FlowFacts f;
        f.ip_version = 4;
        f.client_ip = fl.client;
        f.server_ip = fl.server;
        f.l7_known = true;
        f.app_proto = fl.app;
        f.master_proto = fl.app;
        f.category = 5;
        f.host = fl.host;
        drops += snap->evaluate(f, 0).action == dp::Action::Drop;
    }
    st.counters["drop_ratio"] = static_cast<double>(drops) / static_cast<double>(st.iterations());
}
BENCHMARK(BM_PolicyEvaluateLarge);

} // namespace
