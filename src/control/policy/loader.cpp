#include "control/policy/loader.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include <yaml-cpp/yaml.h>

namespace l7gate::ctl {

std::string PolicyError::str() const {
    std::string s = pos.file.empty() ? std::string("policy") : pos.file;
    if (pos.line > 0) {
        s += ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column);
    }
    return s + ": " + message;
}

namespace {

std::string lower(std::string s) {
    for (char& c : s) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return s;
}

std::string trim(const std::string& s) {
    size_t a = s.find_first_not_of(" \t\r\n");
    if (a == std::string::npos) {
        return {};
    }
    size_t b = s.find_last_not_of(" \t\r\n");
    return s.substr(a, b - a + 1);
}

// Number with a unit suffix; returns false on anything else.
bool parse_with_units(const std::string& in, const std::vector<std::pair<std::string, double>>& units,
                      double& out) {
    const std::string s = lower(trim(in));
    if (s.empty() || !(std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '.')) {
        return false;
    }
    size_t i = 0;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) {
        ++i;
    }
    double v = 0;
    try {
        size_t used = 0;
        v = std::stod(s.substr(0, i), &used);
        if (used != i) {
            return false;
        }
    } catch (...) {
        return false;
    }
    const std::string unit = trim(s.substr(i));
    for (const auto& [name, mul] : units) {
        if (unit == name) {
            out = v * mul;
            return out >= 0 && out < 1.8e19;
        }
    }
    return false;
}

} // namespace

bool parse_rate_bps(const std::string& s, uint64_t& out) {
    double v;
    if (!parse_with_units(s, {{"", 1}, {"bit", 1}, {"bps", 1}, {"k", 1e3}, {"kbit", 1e3}, {"kbps", 1e3},
                              {"m", 1e6}, {"mbit", 1e6}, {"mbps", 1e6}, {"g", 1e9}, {"gbit", 1e9}, {"gbps", 1e9}},
                          v) ||
        v < 1) {
        return false;
    }
    out = static_cast<uint64_t>(v);
    return true;
}

bool parse_size_bytes(const std::string& s, uint64_t& out) {
    double v;
    if (!parse_with_units(s, {{"", 1}, {"b", 1}, {"k", 1024}, {"kb", 1024}, {"m", 1048576}, {"mb", 1048576},
                              {"g", 1073741824.0}, {"gb", 1073741824.0}},
                          v) ||
        v < 1) {
        return false;
    }
    out = static_cast<uint64_t>(v);
    return true;
}

bool parse_duration_us(const std::string& s, uint64_t& out) {
    double v;
    if (!parse_with_units(s, {{"us", 1}, {"ms", 1e3}, {"s", 1e6}, {"m", 60e6}, {"min", 60e6}, {"h", 3600e6}}, v)) {
        return false;
    }
    out = static_cast<uint64_t>(v);
    return true;
}

std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
    const std::string w = lower(word);
    std::string best;
    size_t best_d = SIZE_MAX;
    for (const std::string& c : candidates) {
        const std::string lc = lower(c);
        std::vector<size_t> prev(lc.size() + 1), cur(lc.size() + 1);
        for (size_t j = 0; j <= lc.size(); ++j) {
            prev[j] = j;
        }
        for (size_t i = 1; i <= w.size(); ++i) {
            cur[0] = i;
            for (size_t j = 1; j <= lc.size(); ++j) {
                cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (w[i - 1] == lc[j - 1] ? 0 : 1)});
            }
            std::swap(prev, cur);
        }
        const size_t d = prev[lc.size()];
        if (d < best_d) {
            best_d = d;
            best = c;
        }
    }
    // Suggest only what is plausibly a typo.
    return best_d <= std::max<size_t>(2, w.size() / 3) ? best : std::string();
}

namespace {

class YamlReader {
public:
    YamlReader(std::string file, PolicyConfig& cfg, std::vector<PolicyError>& errors)
        : file_(std::move(file)), cfg_(cfg), errors_(errors) {}

    void read(const YAML::Node& root) {
        if (!root.IsMap()) {
            error(root, "the policy file must be a mapping (version, default_policy, pools, policies, ...)");
            return;
        }
        check_keys(root, {"version", "default_policy", "shapers", "lists", "pools", "policies", "hosts"});
        if (const YAML::Node h = root["hosts"]; h) {
            read_hosts(h);
        }
        if (const YAML::Node v = root["version"]; !v) {
            error(root, "missing 'version: 1'");
        } else if (!v.IsScalar() || v.Scalar() != "1") {
            error(v, "unsupported version '" + scalar_text(v) + "' (this l7gate reads version 1)");
        }
        if (const YAML::Node d = root["default_policy"]; d) {
            if (scalar(d, "default_policy", cfg_.default_policy)) {
                cfg_.default_policy_pos = pos(d);
            }
        }
        if (const YAML::Node s = root["shapers"]; s) {
            read_shapers(s);
        }
        if (const YAML::Node l = root["lists"]; l) {
            read_lists(l);
        }
        if (const YAML::Node p = root["pools"]; p) {
            read_pools(p);
        }
        if (const YAML::Node p = root["policies"]; p) {
            read_policies(p);
        } else {
            error(root, "missing 'policies'");
        }
    }

private:
    SourcePos pos(const YAML::Node& n) const {
        SourcePos p;
        p.file = file_;
        const YAML::Mark m = n.Mark();
        if (m.line >= 0) {
            p.line = m.line + 1;
            p.column = m.column + 1;
        }
        return p;
    }
    void error(const YAML::Node& n, const std::string& msg) { error_at(pos(n), msg); }
    void error_at(const SourcePos& p, const std::string& msg) {
        PolicyError e;
        e.pos = p;
        e.message = msg;
        errors_.push_back(std::move(e));
    }

    static std::string scalar_text(const YAML::Node& n) { return n.IsScalar() ? n.Scalar() : std::string("(not a scalar)"); }

    bool scalar(const YAML::Node& n, const char* what, std::string& out) {
        if (!n.IsScalar()) {
            error(n, std::string(what) + " must be a single value");
            return false;
        }
        out = n.Scalar();
        return true;
    }

    void check_keys(const YAML::Node& map, const std::vector<std::string>& allowed) {
        for (const auto& kv : map) {
            if (!kv.first.IsScalar()) {
                error(kv.first, "keys must be plain names");
                continue;
            }
            const std::string k = kv.first.Scalar();
            if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
                const std::string c = closest(k, allowed);
                error(kv.first, "unknown key '" + k + "'" + (c.empty() ? "" : " (did you mean '" + c + "'?)"));
            }
        }
    }

    // A sequence of scalars (a single scalar is accepted as a one-item list).
    std::vector<std::string> strings(const YAML::Node& n, const char* what, std::vector<SourcePos>* where = nullptr) {
        std::vector<std::string> out;
        if (n.IsScalar()) {
            out.push_back(n.Scalar());
            if (where != nullptr) {
                where->push_back(pos(n));
            }
        } else if (n.IsSequence()) {
            for (const YAML::Node& item : n) {
                if (!item.IsScalar()) {
                    error(item, std::string(what) + ": items must be single values");
                    continue;
                }
                out.push_back(item.Scalar());
                if (where != nullptr) {
                    where->push_back(pos(item));
                }
            }
        } else if (!n.IsNull()) {
            error(n, std::string(what) + " must be a list");
        }
        return out;
    }

    MarkerSpec marker(const YAML::Node& n) {
        MarkerSpec m;
        m.pos = pos(n);
        if (!n.IsScalar()) {
            error(n, "a marker must be pass, drop, reject, shape:NAME or police:NAME");
            return m;
        }
        m.text = n.Scalar();
        const std::string t = lower(m.text);
        const bool shape = t.rfind("shape:", 0) == 0;
        const bool police = t.rfind("police:", 0) == 0;
        if (t != "pass" && t != "drop" && t != "reject" && !shape && !police) {
            error(n, "unknown marker '" + m.text + "' (pass, drop, reject, shape:NAME or police:NAME)");
        } else if ((shape && t.size() == 6) || (police && t.size() == 7)) {
            error(n, std::string(shape ? "shape" : "police") + ": needs a shaper name (" + (shape ? "shape" : "police") +
                         ":NAME)");
        }
        return m;
    }

    std::vector<MarkerEntry> markers(const YAML::Node& n, const char* what) {
        std::vector<MarkerEntry> out;
        if (n.IsNull()) {
            return out;
        }
        if (!n.IsMap()) {
            error(n, std::string(what) + " must map keys to markers, e.g. {HTTP: pass}");
            return out;
        }
        for (const auto& kv : n) {
            MarkerEntry e;
            if (!kv.first.IsScalar()) {
                error(kv.first, std::string(what) + ": keys must be single values");
                continue;
            }
            e.key = kv.first.Scalar();
            e.pos = pos(kv.first);
            e.marker = marker(kv.second);
            out.push_back(std::move(e));
        }
        return out;
    }

    void read_hosts(const YAML::Node& n) {
        if (!n.IsMap()) {
            error(n, "hosts must be {auto_block: {score: N, window: D, block_for: D}}");
            return;
        }
        check_keys(n, {"auto_block"});
        const YAML::Node a = n["auto_block"];
        if (!a) {
            return;
        }
        if (!a.IsMap()) {
            error(a, "auto_block must be {score: N, window: D, block_for: D}");
            return;
        }
        check_keys(a, {"score", "window", "block_for"});
        std::string t;
        if (!a["score"] || !scalar(a["score"], "score", t) || t.empty() || t.size() > 9 ||
            t.find_first_not_of("0123456789") != std::string::npos || std::stoul(t) == 0) {
            error(a, "auto_block needs score: a positive number (the host's summed nDPI risk score)");
        } else {
            cfg_.auto_block_score = static_cast<uint32_t>(std::stoul(t));
        }
        if (a["window"]) {
            uint64_t d = 0;
            if (scalar(a["window"], "window", t) && (!parse_duration_us(t, d) || d < 1000000 || d > 86400000000ull)) {
                error(a["window"], "window must be a duration from 1s to 24h (e.g. 60s)");
            }
            cfg_.auto_block_window_us = d;
        }
        if (a["block_for"]) {
            uint64_t d = 0;
            if (scalar(a["block_for"], "block_for", t) && (!parse_duration_us(t, d) || d < 1000000 || d > 604800000000ull)) {
                error(a["block_for"], "block_for must be a duration from 1s to 7 days (e.g. 10m)");
            }
            cfg_.auto_block_for_us = d;
        }
        cfg_.auto_block = true;
    }

    void read_shapers(const YAML::Node& n) {
        if (!n.IsMap()) {
            error(n, "shapers must map names to {rate, burst}");
            return;
        }
        for (const auto& kv : n) {
            ShaperSpec s;
            s.name = kv.first.Scalar();
            s.pos = pos(kv.first);
            const YAML::Node& v = kv.second;
            if (!v.IsMap()) {
                error(v, "shaper '" + s.name + "' must be {rate: R, burst: B}");
                continue;
            }
            check_keys(v, {"rate", "burst", "per", "queue", "max_delay"});
            std::string t;
            if (!v["rate"]) {
                error(v, "shaper '" + s.name + "' needs a rate (e.g. 20mbit)");
            } else if (scalar(v["rate"], "rate", t) && !parse_rate_bps(t, s.rate_bps)) {
                error(v["rate"], "bad rate '" + t + "' (bit/s with k, m or g: 20mbit, 500k, 1g)");
            }
            if (!v["burst"]) {
                error(v, "shaper '" + s.name + "' needs a burst (e.g. 256kb)");
            } else if (scalar(v["burst"], "burst", t) && !parse_size_bytes(t, s.burst_bytes)) {
                error(v["burst"], "bad burst '" + t + "' (bytes with kb or mb: 64kb, 1mb)");
            }
            if (v["per"]) {
                if (scalar(v["per"], "per", t)) {
                    if (t == "host") {
                        s.per_host = true;
                    } else if (t != "shaper") {
                        error(v["per"], "per must be host (one bucket per local host) or shaper");
                    }
                }
            }
            if (v["queue"]) {
                uint64_t q = 0;
                if (scalar(v["queue"], "queue", t) && (!parse_size_bytes(t, q) || q == 0 || q > 65536)) {
                    error(v["queue"], "queue must be a packet count from 1 to 65536");
                }
                s.queue_packets = static_cast<uint32_t>(q);
            }
            if (v["max_delay"]) {
                uint64_t d = 0;
                if (scalar(v["max_delay"], "max_delay", t) && (!parse_duration_us(t, d) || d == 0 || d > 10000000)) {
                    error(v["max_delay"], "max_delay must be a duration up to 10s (e.g. 100ms)");
                }
                s.max_delay_us = static_cast<uint32_t>(d);
            }
            cfg_.shapers.push_back(std::move(s));
        }
    }

    void read_lists(const YAML::Node& n) {
        if (!n.IsMap()) {
            error(n, "lists must map names to {hostnames: [...]}, {ips: [...]} or {file: PATH}");
            return;
        }
        for (const auto& kv : n) {
            ListSpec l;
            l.name = kv.first.Scalar();
            l.pos = pos(kv.first);
            const YAML::Node& v = kv.second;
            if (!v.IsMap()) {
                error(v, "list '" + l.name + "' must be {hostnames: [...]}, {ips: [...]} or {file: PATH}");
                continue;
            }
            check_keys(v, {"hostnames", "ips", "file", "kind"});
            const int given = (v["hostnames"] ? 1 : 0) + (v["ips"] ? 1 : 0) + (v["file"] ? 1 : 0);
            if (given != 1) {
                error(v, "list '" + l.name + "' needs exactly one of hostnames, ips or file");
                continue;
            }
            bool infer = false;
            if (v["hostnames"]) {
                l.items = strings(v["hostnames"], "hostnames", &l.item_pos);
            } else if (v["ips"]) {
                l.kind = ListSpec::Kind::Ips;
                l.items = strings(v["ips"], "ips", &l.item_pos);
            } else {
                std::string f;
                if (!scalar(v["file"], "file", f)) {
                    continue;
                }
                l.file = resolve(f);
                if (!read_list_file(l, v["file"])) {
                    continue;
                }
                infer = true;
                if (v["kind"]) {
                    std::string k;
                    if (scalar(v["kind"], "kind", k)) {
                        if (k == "hostnames") {
                            infer = false;
                        } else if (k == "ips") {
                            infer = false;
                            l.kind = ListSpec::Kind::Ips;
                        } else {
                            error(v["kind"], "kind must be hostnames or ips");
                        }
                    }
                }
            }
            if (infer) {
                l.kind = looks_like_ips(l.items) ? ListSpec::Kind::Ips : ListSpec::Kind::Hostnames;
            }
            cfg_.lists.push_back(std::move(l));
        }
    }

    static bool looks_like_ips(const std::vector<std::string>& items) {
        if (items.empty()) {
            return false;
        }
        for (const std::string& s : items) {
            // Hex letters only in IPv6 addresses: "cafe.be" is a hostname.
            const bool v6 = s.find(':') != std::string::npos;
            for (char c : s) {
                const auto u = static_cast<unsigned char>(c);
                const bool hex = v6 && (std::isxdigit(u) || c == ':');
                if (!(std::isdigit(u) || c == '.' || c == '/' || hex)) {
                    return false;
                }
            }
            if (s.find('.') == std::string::npos && s.find(':') == std::string::npos) {
                return false;
            }
        }
        return true;
    }

    std::string resolve(const std::string& f) const {
        if (!f.empty() && f[0] == '/') {
            return f;
        }
        const size_t slash = file_.rfind('/');
        return slash == std::string::npos ? f : file_.substr(0, slash + 1) + f;
    }

    bool read_list_file(ListSpec& l, const YAML::Node& at) {
        std::ifstream in(l.file);
        if (!in) {
            error(at, "cannot read list file " + l.file);
            return false;
        }
        std::string line;
        int no = 0;
        while (std::getline(in, line)) {
            ++no;
            const size_t hash = line.find('#');
            if (hash != std::string::npos) {
                line.resize(hash);
            }
            line = trim(line);
            if (line.empty()) {
                continue;
            }
            if (line.size() > 255 || line.find_first_of(" \t") != std::string::npos) {
                error_at(SourcePos{l.file, no, 1}, "list entry must be one hostname or address per line");
                continue;
            }
            l.items.push_back(line);
            l.item_pos.push_back({l.file, no, 1});
        }
        return true;
    }

    void read_pools(const YAML::Node& n) {
        if (!n.IsSequence()) {
            error(n, "pools must be a list of {name, ip, mac, policy}");
            return;
        }
        for (const YAML::Node& p : n) {
            PoolSpec s;
            s.pos = pos(p);
            if (!p.IsMap()) {
                error(p, "a pool must be {name, ip, mac, policy}");
                continue;
            }
            check_keys(p, {"name", "ip", "mac", "policy"});
            if (!p["name"]) {
                error(p, "pool needs a name");
            } else {
                scalar(p["name"], "name", s.name);
            }
            if (!p["policy"]) {
                error(p, "pool '" + s.name + "' needs a policy");
            } else {
                scalar(p["policy"], "policy", s.policy);
            }
            if (p["ip"]) {
                s.ips = strings(p["ip"], "ip", &s.ip_pos);
            }
            if (p["mac"]) {
                s.macs = strings(p["mac"], "mac", &s.mac_pos);
            }
            if (s.ips.empty() && s.macs.empty()) {
                error(p, "pool '" + s.name + "' lists no ip and no mac");
            }
            cfg_.pools.push_back(std::move(s));
        }
    }

    void read_policies(const YAML::Node& n) {
        if (!n.IsMap()) {
            error(n, "policies must map policy names to their markers");
            return;
        }
        for (const auto& kv : n) {
            PolicySpec p;
            p.name = kv.first.Scalar();
            p.pos = pos(kv.first);
            const YAML::Node& v = kv.second;
            if (v.IsNull()) {
                cfg_.policies.push_back(std::move(p));
                continue;
            }
            if (!v.IsMap()) {
                error(v, "policy '" + p.name + "' must be a mapping");
                continue;
            }
            check_keys(v, {"parent", "default", "risks", "score", "protocols", "categories", "countries",
                           "continents", "hostnames", "ips", "risk_exceptions", "enforce"});
            if (const YAML::Node en = v["enforce"]; en) {
                std::string t;
                if (scalar(en, "enforce", t)) {
                    if (t == "true") {
                        p.enforce = true;
                    } else if (t == "false") {
                        p.enforce = false;
                    } else {
                        error(en, "enforce must be true or false (false: monitor mode, verdicts recorded only)");
                    }
                }
            }
            if (v["parent"]) {
                scalar(v["parent"], "parent", p.parent);
                p.parent_pos = pos(v["parent"]);
            }
            if (v["default"]) {
                p.default_marker = marker(v["default"]);
            }
            if (v["risks"]) {
                p.risks = markers(v["risks"], "risks");
            }
            if (const YAML::Node s = v["score"]; s) {
                if (!s.IsMap()) {
                    error(s, "score must be {at_least: N, marker: M}");
                } else {
                    check_keys(s, {"at_least", "marker"});
                    std::string t;
                    if (!s["at_least"] || !scalar(s["at_least"], "at_least", t) ||
                        t.find_first_not_of("0123456789") != std::string::npos || t.empty() || t.size() > 6) {
                        error(s, "score needs at_least: a number (nDPI risk score, e.g. 250)");
                    } else {
                        p.score_at_least = static_cast<uint32_t>(std::stoul(t));
                    }
                    if (!s["marker"]) {
                        error(s, "score needs a marker");
                    } else {
                        p.score_marker = marker(s["marker"]);
                    }
                }
            }
            if (v["protocols"]) {
                p.protocols = markers(v["protocols"], "protocols");
            }
            if (v["categories"]) {
                p.categories = markers(v["categories"], "categories");
            }
            if (v["countries"]) {
                p.countries = markers(v["countries"], "countries");
            }
            if (v["continents"]) {
                p.continents = markers(v["continents"], "continents");
            }
            if (v["hostnames"]) {
                p.hostnames = markers(v["hostnames"], "hostnames");
            }
            if (v["ips"]) {
                p.ips = markers(v["ips"], "ips");
            }
            if (const YAML::Node re = v["risk_exceptions"]; re) {
                if (!re.IsSequence()) {
                    error(re, "risk_exceptions must be a list of {risks, hostnames, ips, protocols}");
                } else {
                    for (const YAML::Node& e : re) {
                        RiskExceptionSpec x;
                        x.pos = pos(e);
                        if (!e.IsMap()) {
                            error(e, "a risk exception must be {risks: [...], hostnames/ips/protocols: [...]}");
                            continue;
                        }
                        check_keys(e, {"risks", "hostnames", "ips", "protocols"});
                        if (e["risks"]) {
                            x.risks = strings(e["risks"], "risks");
                        }
                        if (x.risks.empty()) {
                            error(e, "a risk exception must list risks");
                        }
                        if (e["hostnames"]) {
                            x.hostnames = strings(e["hostnames"], "hostnames");
                        }
                        if (e["ips"]) {
                            x.ips = strings(e["ips"], "ips");
                        }
                        if (e["protocols"]) {
                            x.protocols = strings(e["protocols"], "protocols");
                        }
                        if (x.hostnames.empty() && x.ips.empty() && x.protocols.empty()) {
                            error(e, "a risk exception must say which flows it covers (hostnames, ips or protocols)");
                        }
                        p.risk_exceptions.push_back(std::move(x));
                    }
                }
            }
            cfg_.policies.push_back(std::move(p));
        }
    }

    std::string file_;
    PolicyConfig& cfg_;
    std::vector<PolicyError>& errors_;
};

bool looks_like_nprobe(const std::string& text) {
    const size_t bom = text.rfind("\xEF\xBB\xBF", 0) == 0 ? 3 : 0;
    for (size_t i = bom; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '#') {
            i = text.find('\n', i);
            if (i == std::string::npos) {
                return false;
            }
            continue;
        }
        if (std::isspace(static_cast<unsigned char>(c))) {
            continue;
        }
        return c == '{';
    }
    return false;
}

} // namespace

bool load_policy_text(const std::string& text, const std::string& name, PolicyFormat format,
                      PolicyConfig& out, std::vector<PolicyError>& errors) {
    const size_t before = errors.size();
    out = PolicyConfig{};
    out.file = name;
    if (format == PolicyFormat::Nprobe || (format == PolicyFormat::Auto && looks_like_nprobe(text))) {
        return load_nprobe_text(text, name, out, errors) && errors.size() == before;
    }
    try {
        const YAML::Node root = YAML::Load(text);
        YamlReader(name, out, errors).read(root);
    } catch (const YAML::Exception& e) {
        SourcePos p{name, e.mark.line >= 0 ? e.mark.line + 1 : 0, e.mark.column >= 0 ? e.mark.column + 1 : 0};
        errors.push_back({p, "YAML syntax error: " + e.msg});
    }
    return errors.size() == before;
}

bool load_policy_file(const std::string& path, PolicyFormat format, PolicyConfig& out,
                      std::vector<PolicyError>& errors) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        errors.push_back({{path, 0, 0}, "cannot read the policy file"});
        return false;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    return load_policy_text(ss.str(), path, format, out, errors);
}

} // namespace l7gate::ctl
