// nProbe IPS's policy format read into a PolicyConfig, and any PolicyConfig printed back as
// l7gate's YAML (--convert-policy).
//
// nProbe's format is one JSON object per line: {"pool": {...}, "policy": {"id": N}} binds a
// pool of hosts to a policy, {"policy": {...}} defines a policy; "#" starts a comment line.
// Ids refer forward and backward freely, so lines are read first and ids resolved at the end.

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "control/policy/loader.hpp"

namespace l7gate::ctl {

// Declared in policy_loader.cpp, which dispatches to it.
bool load_nprobe_text(const std::string& text, const std::string& name, PolicyConfig& out,
                      std::vector<PolicyError>& errors);

namespace {

// nProbe policies nest four levels ({"policy": {"markers": {"protocols": {...}}}}); anything
// far deeper is not a policy, and refusing it up front keeps the parser's recursion shallow.
constexpr int kMaxNesting = 16;

// Real files number pools and policies from 0 or 1; a 32-bit bound refuses garbage early and
// keeps "policy_<id>" names short.
constexpr uint64_t kMaxId = UINT32_MAX;

const std::vector<std::string> kLineKeys = {"pool", "policy"};
const std::vector<std::string> kPoolKeys = {"id", "name", "ip", "mac"};
const std::vector<std::string> kPoolPolicyKeys = {"id"};
const std::vector<std::string> kPolicyKeys = {"id",        "name",    "root",     "default_marker",
                                              "flow_risk", "markers", "hostnames"};
const std::vector<std::string> kMarkersKeys = {"protocols", "categories", "countries",
                                               "continents", "hostnames"};
const std::vector<std::string> kFlowRiskKeys = {"risks", "marker"};

std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const std::string& x : v) {
        s += (s.empty() ? "" : ", ") + x;
    }
    return s;
}

std::string lower(std::string s) {
    for (char& c : s) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return s;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// yaml-cpp tags a quoted scalar "!" and a plain one "?": that is how a JSON string is told
// apart from a number, true, false (null is not a scalar at all).
bool is_string(const YAML::Node& n) { return n.IsScalar() && n.Tag() == "!"; }

int hex4(std::string_view s, size_t at) {
    if (at + 4 > s.size()) {
        return -1;
    }
    int v = 0;
    for (size_t i = at; i < at + 4; ++i) {
        const char c = s[i];
        const int d = c >= '0' && c <= '9'   ? c - '0'
                      : c >= 'a' && c <= 'f' ? c - 'a' + 10
                      : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                             : -1;
        if (d < 0) {
            return -1;
        }
        v = v * 16 + d;
    }
    return v;
}

// Checks what YAML would accept but JSON does not, before the line reaches the parser: the
// line must be one object, not nested absurdly deep, with nothing after its closing brace
// (yaml-cpp reads the first node and silently ignores the rest of "{...} {...}"). Copies the
// line to `json`, rewriting JSON's surrogate pairs ("\ud83d\ude00", how JSON escapes a
// character beyond U+FFFF) as YAML's "\U0001f600": yaml-cpp refuses the pair. Returns an
// error message, or "" when the line may be parsed.
std::string prescan(std::string_view s, std::string& json) {
    json.clear();
    json.reserve(s.size());
    size_t i = 0;
    while (i < s.size() && is_space(s[i])) {
        ++i;
    }
    if (i == s.size() || s[i] != '{') {
        return "expected a JSON object {\"pool\": ...} or {\"policy\": ...}";
    }
    int depth = 0;
    bool in_string = false;
    for (; i < s.size(); ++i) {
        const char c = s[i];
        if (in_string) {
            if (c == '\\' && i + 1 < s.size() && s[i + 1] == 'u') {
                const int hi = hex4(s, i + 2);
                int lo = -1;
                if (hi >= 0xd800 && hi <= 0xdbff && i + 8 <= s.size() && s[i + 6] == '\\' &&
                    s[i + 7] == 'u') {
                    lo = hex4(s, i + 8);
                }
                if (lo >= 0xdc00 && lo <= 0xdfff) {
                    const uint32_t cp = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
                    char buf[16];
                    std::snprintf(buf, sizeof buf, "\\U%08x", cp);
                    json += buf;
                    i += 11;
                    continue;
                }
            }
            json += c;
            if (c == '\\' && i + 1 < s.size()) {
                json += s[++i];
            } else if (c == '"') {
                in_string = false;
            }
            continue;
        }
        json += c;
        if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > kMaxNesting) {
                return "JSON nested more than " + std::to_string(kMaxNesting) + " levels deep";
            }
        } else if (c == '}' || c == ']') {
            if (--depth == 0) {
                break;
            }
        }
    }
    if (depth != 0) {
        return "invalid JSON: the object is not closed on this line (one object per line)";
    }
    for (++i; i < s.size(); ++i) {
        if (!is_space(s[i])) {
            return "invalid JSON: unexpected text after the object (one object per line)";
        }
    }
    return {};
}

struct NpPool {
    uint64_t id = 0;
    uint64_t policy_id = 0;
    int line = 0;
    PoolSpec spec;
};

struct NpPolicy {
    uint64_t id = 0;
    std::optional<uint64_t> root;
    int line = 0;
    PolicySpec spec;
};

class NprobeReader {
public:
    NprobeReader(std::string file, std::vector<PolicyError>& errors)
        : file_(std::move(file)), errors_(errors) {}

    void read_line(const std::string& text, int line) {
        line_ = line;
        std::string json;
        if (const std::string bad = prescan(text, json); !bad.empty()) {
            error(bad);
            return;
        }
        YAML::Node root;
        try {
            root = YAML::Load(json);
        } catch (const YAML::Exception& e) {
            error("invalid JSON: " + e.msg);
            return;
        }
        if (!root.IsMap()) {
            error("expected a JSON object {\"pool\": ...} or {\"policy\": ...}");
            return;
        }
        check_keys(root, kLineKeys, "a line");
        const YAML::Node pool = get(root, "pool");
        const YAML::Node policy = get(root, "policy");
        if (pool) {
            read_pool(pool, policy);
        } else if (policy) {
            read_policy(policy);
        } else {
            error("a line must hold \"pool\" (with \"policy\": {\"id\": N}) or \"policy\"");
        }
    }

    void finish(PolicyConfig& out) {
        out.version = 1;
        name_policies();
        name_pools();
        std::map<uint64_t, const NpPolicy*> by_id;
        for (const NpPolicy& p : policies_) {
            by_id[p.id] = &p;
        }
        for (NpPolicy& p : policies_) {
            if (!p.root) {
                continue;
            }
            const auto it = by_id.find(*p.root);
            if (it == by_id.end()) {
                error_at(p.line, "policy " + std::to_string(p.id) + ": root " +
                                     std::to_string(*p.root) + " is not a policy id");
            } else {
                p.spec.parent = it->second->spec.name;
            }
        }
        check_root_loops(by_id);
        for (NpPool& p : pools_) {
            const auto it = by_id.find(p.policy_id);
            if (it == by_id.end()) {
                error_at(p.line, "pool " + std::to_string(p.id) + ": policy " +
                                     std::to_string(p.policy_id) + " is not a policy id");
            } else {
                p.spec.policy = it->second->spec.name;
            }
            out.pools.push_back(std::move(p.spec));
        }
        // Policy 0 is nProbe's default; without it, the first root policy plays that part.
        const NpPolicy* def = nullptr;
        if (const auto it = by_id.find(0); it != by_id.end()) {
            def = it->second;
        } else {
            for (const NpPolicy& p : policies_) {
                if (!p.root) {
                    def = &p;
                    break;
                }
            }
        }
        if (def != nullptr) {
            out.default_policy = def->spec.name;
            out.default_policy_pos = def->spec.pos;
        } else if (policies_.empty()) {
            errors_.push_back({{file_, 0, 0}, "no policy defined (nProbe format: one JSON object "
                                              "per line, e.g. {\"policy\": {\"id\": 0, ...}})"});
        } else {
            // Every policy names a root: each one is on a loop or names an unknown id, both
            // reported above.
            errors_.push_back({{file_, 0, 0}, "no root policy (a policy without \"root\")"});
        }
        for (NpPolicy& p : policies_) {
            out.policies.push_back(std::move(p.spec));
        }
    }

private:
    SourcePos here() const { return {file_, line_, 1}; }
    void error(const std::string& msg) { errors_.push_back({here(), msg}); }
    void error_at(int line, const std::string& msg) { errors_.push_back({{file_, line, 1}, msg}); }

    // Lookup without yaml-cpp's insert-on-read of a non-const operator[].
    static YAML::Node get(const YAML::Node& map, const char* key) { return map[key]; }

    // JSON parsers disagree on which of two equal keys wins, and yaml-cpp would keep the
    // first, so a repeated key is reported instead of guessed at.
    void check_repeats(const YAML::Node& map, const std::string& where) {
        std::set<std::string> seen;
        for (const auto& kv : map) {
            if (!kv.first.IsScalar()) {
                error("keys of " + where + " must be strings");
            } else if (!seen.insert(kv.first.Scalar()).second) {
                error("key '" + kv.first.Scalar() + "' appears twice in " + where);
            }
        }
    }

    void check_keys(const YAML::Node& map, const std::vector<std::string>& allowed,
                    const std::string& where) {
        check_repeats(map, where);
        for (const auto& kv : map) {
            if (!kv.first.IsScalar()) {
                continue;
            }
            const std::string& k = kv.first.Scalar();
            if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
                const std::string c = closest(k, allowed);
                error("unknown key '" + k + "' in " + where +
                      (c.empty() ? std::string() : " (did you mean '" + c + "'?)") +
                      "; allowed: " + join(allowed));
            }
        }
    }

    // A non-negative integer id (a JSON number; "1", 1.0, 1e3, -1 are refused).
    std::optional<uint64_t> integer(const YAML::Node& n, const std::string& what) {
        if (n.IsScalar() && !is_string(n)) {
            const std::string& s = n.Scalar();
            uint64_t v = 0;
            const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
            if (!s.empty() && ec == std::errc() && end == s.data() + s.size() && v <= kMaxId) {
                return v;
            }
        }
        error(what + " must be an integer from 0 to " + std::to_string(kMaxId));
        return std::nullopt;
    }

    std::optional<std::string> string_value(const YAML::Node& n, const std::string& what) {
        if (!is_string(n)) {
            error(what + " must be a string");
            return std::nullopt;
        }
        return n.Scalar();
    }

    std::vector<std::string> strings(const YAML::Node& n, const std::string& what) {
        std::vector<std::string> out;
        if (!n.IsSequence()) {
            error(what + " must be a list of strings");
            return out;
        }
        for (const YAML::Node& item : n) {
            if (is_string(item)) {
                out.push_back(item.Scalar());
            } else {
                error(what + ": every item must be a string");
            }
        }
        return out;
    }

    // The same markers as l7gate's YAML, so a converted file never fails on them later.
    std::optional<MarkerSpec> marker(const YAML::Node& n, const std::string& what) {
        if (!is_string(n)) {
            error(what + ": a marker must be a string (pass, drop or shape:NAME)");
            return std::nullopt;
        }
        const std::string& s = n.Scalar();
        const std::string t = lower(s);
        if (t != "pass" && t != "drop" && (t.rfind("shape:", 0) != 0 || t.size() == 6)) {
            error(what + ": unknown marker '" + s + "' (pass, drop or shape:NAME)");
            return std::nullopt;
        }
        return MarkerSpec{s, here()};
    }

    // Adds key -> marker to a table. The same key again with the same marker is harmless
    // (hostnames may be merged from two places); with another marker it is a contradiction.
    // Tables of a hundred thousand hostnames exist, hence an index rather than a scan.
    void add_entry(std::vector<MarkerEntry>& table, const std::string& key, MarkerSpec m,
                   const std::string& what) {
        auto& index = index_[&table];
        if (const auto it = index.find(key); it != index.end()) {
            const MarkerEntry& e = table[it->second];
            if (e.marker.text != m.text) {
                error(what + ": '" + key + "' is given twice, as " + e.marker.text + " and as " +
                      m.text);
            }
            return;
        }
        index.emplace(key, table.size());
        table.push_back({key, std::move(m), here()});
    }

    void marker_table(const YAML::Node& n, std::vector<MarkerEntry>& table,
                      const std::string& what) {
        if (!n.IsMap()) {
            error(what + " must be an object mapping names to markers, e.g. {\"HTTP\": \"drop\"}");
            return;
        }
        check_repeats(n, what);
        for (const auto& kv : n) {
            if (!kv.first.IsScalar()) {
                continue;  // reported by check_repeats
            }
            const std::string& key = kv.first.Scalar();
            if (std::optional<MarkerSpec> m = marker(kv.second, what + " '" + key + "'")) {
                add_entry(table, key, std::move(*m), what);
            }
        }
    }

    void read_pool(const YAML::Node& pool, const YAML::Node& policy) {
        if (!pool.IsMap()) {
            error("pool must be an object {\"id\", \"name\", \"ip\", \"mac\"}");
            return;
        }
        check_keys(pool, kPoolKeys, "pool");
        NpPool p;
        p.line = line_;
        p.spec.pos = here();
        bool ok = true;
        if (const YAML::Node id = get(pool, "id"); !id) {
            error("pool needs an \"id\"");
            ok = false;
        } else if (const std::optional<uint64_t> v = integer(id, "pool id")) {
            p.id = *v;
        } else {
            ok = false;
        }
        if (const YAML::Node n = get(pool, "name"); n) {
            p.spec.name = string_value(n, "pool name").value_or("");
        }
        const size_t errors_before = errors_.size();
        if (const YAML::Node ip = get(pool, "ip"); ip) {
            p.spec.ips = strings(ip, "pool ip");
            p.spec.ip_pos.assign(p.spec.ips.size(), here());
        }
        if (const YAML::Node mac = get(pool, "mac"); mac) {
            p.spec.macs = strings(mac, "pool mac");
            p.spec.mac_pos.assign(p.spec.macs.size(), here());
        }
        // l7gate's YAML refuses an empty pool too; saying so here keeps the line number. A
        // malformed ip or mac list has been reported already and is not empty on purpose.
        if (p.spec.ips.empty() && p.spec.macs.empty() && errors_.size() == errors_before) {
            error("pool lists no ip and no mac");
        }
        if (!policy) {
            error("a pool line needs \"policy\": {\"id\": N}");
            ok = false;
        } else if (!policy.IsMap()) {
            error("the policy of a pool line must be {\"id\": N}");
            ok = false;
        } else {
            check_keys(policy, kPoolPolicyKeys, "the policy of a pool line");
            if (const YAML::Node id = get(policy, "id"); !id) {
                error("the policy of a pool line needs an \"id\"");
                ok = false;
            } else if (const std::optional<uint64_t> v = integer(id, "policy id")) {
                p.policy_id = *v;
            } else {
                ok = false;
            }
        }
        if (!ok) {
            return;
        }
        if (const auto [it, fresh] = pool_lines_.emplace(p.id, line_); !fresh) {
            error("pool id " + std::to_string(p.id) + " is already defined on line " +
                  std::to_string(it->second));
            return;
        }
        pools_.push_back(std::move(p));
    }

    void read_policy(const YAML::Node& policy) {
        if (!policy.IsMap()) {
            error("policy must be an object {\"id\", \"name\", \"default_marker\", ...}");
            return;
        }
        check_keys(policy, kPolicyKeys, "policy");
        index_.clear();
        NpPolicy p;
        p.line = line_;
        p.spec.pos = here();
        const YAML::Node id = get(policy, "id");
        if (!id) {
            error("policy needs an \"id\"");
            return;
        }
        if (const std::optional<uint64_t> v = integer(id, "policy id")) {
            p.id = *v;
        } else {
            return;
        }
        if (const YAML::Node n = get(policy, "name"); n) {
            p.spec.name = string_value(n, "policy name").value_or("");
        }
        if (const YAML::Node r = get(policy, "root"); r) {
            p.root = integer(r, "policy root");
            p.spec.parent_pos = here();
        }
        if (const YAML::Node d = get(policy, "default_marker"); d) {
            p.spec.default_marker = marker(d, "default_marker");
        }
        if (const YAML::Node fr = get(policy, "flow_risk"); fr) {
            read_flow_risk(fr, p.spec);
        }
        // "hostnames" is accepted inside "markers" and beside it (nProbe's own example puts
        // it beside); both merge into one table in the order they are written.
        for (const auto& kv : policy) {
            if (!kv.first.IsScalar()) {
                continue;
            }
            if (kv.first.Scalar() == "markers") {
                read_markers(kv.second, p.spec);
            } else if (kv.first.Scalar() == "hostnames") {
                marker_table(kv.second, p.spec.hostnames, "hostnames");
            }
        }
        if (const auto [it, fresh] = policy_lines_.emplace(p.id, line_); !fresh) {
            error("policy id " + std::to_string(p.id) + " is already defined on line " +
                  std::to_string(it->second));
            return;
        }
        policies_.push_back(std::move(p));
    }

    void read_flow_risk(const YAML::Node& fr, PolicySpec& spec) {
        if (!fr.IsMap()) {
            error("flow_risk must be {\"risks\": [ids], \"marker\": M}");
            return;
        }
        check_keys(fr, kFlowRiskKeys, "flow_risk");
        const YAML::Node risks = get(fr, "risks");
        const YAML::Node mark = get(fr, "marker");
        if (!mark) {
            error("flow_risk needs a \"marker\"");
            return;
        }
        const std::optional<MarkerSpec> m = marker(mark, "flow_risk marker");
        if (!risks) {
            error("flow_risk needs \"risks\": [ids]");
            return;
        }
        if (!risks.IsSequence()) {
            error("flow_risk risks must be a list of nDPI risk ids");
            return;
        }
        for (const YAML::Node& r : risks) {
            const std::optional<uint64_t> id = integer(r, "flow_risk risk id");
            if (id && m) {
                add_entry(spec.risks, std::to_string(*id), *m, "flow_risk");
            }
        }
    }

    void read_markers(const YAML::Node& n, PolicySpec& spec) {
        if (!n.IsMap()) {
            error("markers must be an object {\"protocols\": {...}, \"categories\": {...}, ...}");
            return;
        }
        check_keys(n, kMarkersKeys, "markers");
        for (const auto& kv : n) {
            if (!kv.first.IsScalar()) {
                continue;
            }
            const std::string& k = kv.first.Scalar();
            std::vector<MarkerEntry>* table = k == "protocols"    ? &spec.protocols
                                              : k == "categories" ? &spec.categories
                                              : k == "countries"  ? &spec.countries
                                              : k == "continents" ? &spec.continents
                                              : k == "hostnames"  ? &spec.hostnames
                                                                  : nullptr;
            if (table != nullptr) {
                marker_table(kv.second, *table, k);
            }
        }
    }

    // nProbe names are free text and optional, but l7gate refers to policies by name: a
    // missing or shared name becomes policy_<id> (made unique if a real name took that).
    template <typename T>
    static void assign_names(std::vector<T>& items, const std::string& prefix) {
        std::map<std::string, int> count;
        for (const T& x : items) {
            if (!x.spec.name.empty()) {
                ++count[x.spec.name];
            }
        }
        std::set<std::string> used;
        for (const T& x : items) {
            if (!x.spec.name.empty() && count[x.spec.name] == 1) {
                used.insert(x.spec.name);
            }
        }
        for (T& x : items) {
            if (!x.spec.name.empty() && count[x.spec.name] == 1) {
                continue;
            }
            const std::string base = prefix + std::to_string(x.id);
            std::string name = base;
            for (int n = 2; used.count(name) != 0; ++n) {
                name = base + "_" + std::to_string(n);
            }
            used.insert(name);
            x.spec.name = name;
        }
    }

    void name_policies() { assign_names(policies_, "policy_"); }
    void name_pools() { assign_names(pools_, "pool_"); }

    // A root chain that comes back to where it started has no root policy to fall back on.
    void check_root_loops(const std::map<uint64_t, const NpPolicy*>& by_id) {
        for (const NpPolicy& p : policies_) {
            const NpPolicy* at = &p;
            for (size_t steps = 0; at->root && steps <= policies_.size(); ++steps) {
                const auto it = by_id.find(*at->root);
                if (it == by_id.end()) {
                    break;
                }
                at = it->second;
                if (at == &p) {
                    error_at(p.line, "policy " + std::to_string(p.id) +
                                         " is its own ancestor through \"root\"");
                    break;
                }
            }
        }
    }

    std::string file_;
    std::vector<PolicyError>& errors_;
    int line_ = 0;
    std::vector<NpPool> pools_;
    std::vector<NpPolicy> policies_;
    std::map<uint64_t, int> pool_lines_;    // id -> line defining it
    std::map<uint64_t, int> policy_lines_;  // id -> line defining it
    // Keys already in each marker table of the policy being read -> their index.
    std::map<const std::vector<MarkerEntry>*, std::unordered_map<std::string, size_t>> index_;
};

// --- YAML output ---------------------------------------------------------------------------

void emit_strings(YAML::Emitter& y, const char* key, const std::vector<std::string>& v,
                  bool flow) {
    if (v.empty()) {
        return;
    }
    y << YAML::Key << key << YAML::Value;
    if (flow) {
        y << YAML::Flow;
    }
    y << YAML::BeginSeq;
    for (const std::string& s : v) {
        y << s;
    }
    y << YAML::EndSeq;
}

void emit_markers(YAML::Emitter& y, const char* key, const std::vector<MarkerEntry>& v) {
    if (v.empty()) {
        return;
    }
    y << YAML::Key << key << YAML::Value << YAML::BeginMap;
    for (const MarkerEntry& e : v) {
        y << YAML::Key << e.key << YAML::Value << e.marker.text;
    }
    y << YAML::EndMap;
}

void emit_shapers(YAML::Emitter& y, const std::vector<ShaperSpec>& shapers) {
    const ShaperSpec defaults;
    y << YAML::Key << "shapers" << YAML::Value << YAML::BeginMap;
    for (const ShaperSpec& s : shapers) {
        // Exact units: "20mbit" read back is 20000000 bit/s, printed as "20000000bit".
        y << YAML::Key << s.name << YAML::Value << YAML::BeginMap;
        y << YAML::Key << "rate" << YAML::Value << std::to_string(s.rate_bps) + "bit";
        y << YAML::Key << "burst" << YAML::Value << std::to_string(s.burst_bytes) + "b";
        if (s.per_host) {
            y << YAML::Key << "per" << YAML::Value << "host";
        }
        if (s.queue_packets != defaults.queue_packets) {
            y << YAML::Key << "queue" << YAML::Value << s.queue_packets;
        }
        if (s.max_delay_us != defaults.max_delay_us) {
            y << YAML::Key << "max_delay" << YAML::Value << std::to_string(s.max_delay_us) + "us";
        }
        y << YAML::EndMap;
    }
    y << YAML::EndMap;
}

void emit_lists(YAML::Emitter& y, const std::vector<ListSpec>& lists) {
    y << YAML::Key << "lists" << YAML::Value << YAML::BeginMap;
    for (const ListSpec& l : lists) {
        // Items are written inline even for a list that came from a file: a relative list
        // file would otherwise resolve against wherever the converted file is saved.
        const char* kind = l.kind == ListSpec::Kind::Ips ? "ips" : "hostnames";
        y << YAML::Key << l.name << YAML::Value << YAML::BeginMap;
        y << YAML::Key << kind << YAML::Value << YAML::BeginSeq;
        for (const std::string& s : l.items) {
            y << s;
        }
        y << YAML::EndSeq << YAML::EndMap;
    }
    y << YAML::EndMap;
}

void emit_pools(YAML::Emitter& y, const std::vector<PoolSpec>& pools) {
    y << YAML::Key << "pools" << YAML::Value << YAML::BeginSeq;
    for (const PoolSpec& p : pools) {
        y << YAML::BeginMap;
        y << YAML::Key << "name" << YAML::Value << p.name;
        emit_strings(y, "ip", p.ips, true);
        emit_strings(y, "mac", p.macs, true);
        y << YAML::Key << "policy" << YAML::Value << p.policy;
        y << YAML::EndMap;
    }
    y << YAML::EndSeq;
}

void emit_policy(YAML::Emitter& y, const PolicySpec& p) {
    y << YAML::Key << p.name << YAML::Value << YAML::BeginMap;
    if (!p.parent.empty()) {
        y << YAML::Key << "parent" << YAML::Value << p.parent;
    }
    if (p.enforce) {
        y << YAML::Key << "enforce" << YAML::Value << (*p.enforce ? "true" : "false");
    }
    if (p.default_marker) {
        y << YAML::Key << "default" << YAML::Value << p.default_marker->text;
    }
    emit_markers(y, "risks", p.risks);
    if (p.score_at_least || p.score_marker) {
        y << YAML::Key << "score" << YAML::Value << YAML::BeginMap;
        if (p.score_at_least) {
            y << YAML::Key << "at_least" << YAML::Value << *p.score_at_least;
        }
        if (p.score_marker) {
            y << YAML::Key << "marker" << YAML::Value << p.score_marker->text;
        }
        y << YAML::EndMap;
    }
    emit_markers(y, "protocols", p.protocols);
    emit_markers(y, "categories", p.categories);
    emit_markers(y, "countries", p.countries);
    emit_markers(y, "continents", p.continents);
    emit_markers(y, "hostnames", p.hostnames);
    emit_markers(y, "ips", p.ips);
    if (!p.risk_exceptions.empty()) {
        y << YAML::Key << "risk_exceptions" << YAML::Value << YAML::BeginSeq;
        for (const RiskExceptionSpec& x : p.risk_exceptions) {
            y << YAML::BeginMap;
            emit_strings(y, "risks", x.risks, true);
            emit_strings(y, "hostnames", x.hostnames, true);
            emit_strings(y, "ips", x.ips, true);
            emit_strings(y, "protocols", x.protocols, true);
            y << YAML::EndMap;
        }
        y << YAML::EndSeq;
    }
    y << YAML::EndMap;
}

} // namespace

bool load_nprobe_text(const std::string& text, const std::string& name, PolicyConfig& out,
                      std::vector<PolicyError>& errors) {
    const size_t before = errors.size();
    out = PolicyConfig{};
    out.file = name;
    int line_no = 0;
    // Nothing may escape a loader (hot reload must survive any file); yaml-cpp and the
    // standard library may still throw, e.g. bad_alloc on absurd input.
    try {
        NprobeReader reader(name, errors);
        size_t start = 0;
        // A UTF-8 byte order mark from a Windows editor is not content.
        if (text.rfind("\xEF\xBB\xBF", 0) == 0) {
            start = 3;
        }
        while (start <= text.size()) {
            size_t end = text.find('\n', start);
            if (end == std::string::npos) {
                end = text.size();
            }
            ++line_no;
            const std::string line = text.substr(start, end - start);
            start = end + 1;
            const size_t first = line.find_first_not_of(" \t\r");
            if (first == std::string::npos || line[first] == '#') {
                continue;
            }
            reader.read_line(line, line_no);
        }
        line_no = 0;
        reader.finish(out);
    } catch (const std::exception& e) {
        errors.push_back({{name, line_no, line_no > 0 ? 1 : 0},
                          std::string("cannot read this policy: ") + e.what()});
    }
    return errors.size() == before;
}

std::string policy_to_yaml(const PolicyConfig& cfg) {
    // A newline in the file name would end the comment and turn the rest into YAML.
    std::string from = cfg.file.empty() ? std::string("(unnamed)") : cfg.file;
    for (char& c : from) {
        if (c == '\n' || c == '\r') {
            c = ' ';
        }
    }
    YAML::Emitter y;
    y << YAML::BeginMap;
    y << YAML::Key << "version" << YAML::Value << cfg.version;
    if (!cfg.default_policy.empty()) {
        y << YAML::Key << "default_policy" << YAML::Value << cfg.default_policy;
    }
    if (!cfg.shapers.empty()) {
        emit_shapers(y, cfg.shapers);
    }
    if (!cfg.lists.empty()) {
        emit_lists(y, cfg.lists);
    }
    if (!cfg.pools.empty()) {
        emit_pools(y, cfg.pools);
    }
    // Always present: the loader requires 'policies', even when it is empty.
    y << YAML::Key << "policies" << YAML::Value << YAML::BeginMap;
    for (const PolicySpec& p : cfg.policies) {
        emit_policy(y, p);
    }
    y << YAML::EndMap;
    y << YAML::EndMap;
    if (!y.good()) {
        // Not expected (every value is a string or a number); say so rather than emit half.
        return "# converted from " + from + "\n# error: " + y.GetLastError() + "\n";
    }
    return "# converted from " + from + "\n" + y.c_str() + "\n";
}

} // namespace l7gate::ctl
