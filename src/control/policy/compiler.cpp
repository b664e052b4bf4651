#include "control/policy/compiler.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <functional>
#include <set>

#include <hs/hs.h>

#include "control/policy/geoip.hpp"
#include "control/base/ndpi_names.hpp"
#include "control/policy/loader.hpp"

namespace l7gate::ctl {

ReasonRegistry::ReasonRegistry() {
    names_.reserve(dp::kReasonOther);
    tags_.reserve(dp::kReasonOther);
    base_flows_.assign(dp::kMaxReasons, 0);
    base_packets_.assign(dp::kMaxReasons, 0);
    id("none");
}

size_t ReasonRegistry::size() const {
    std::lock_guard<std::mutex> g(mutex_);
    return names_.size() - free_.size();
}

uint64_t ReasonRegistry::reclaimed() const {
    std::lock_guard<std::mutex> g(mutex_);
    return reclaimed_;
}

std::vector<ReasonRegistry::Candidate> ReasonRegistry::candidates(uint64_t oldest_live) const {
    std::lock_guard<std::mutex> g(mutex_);
    std::vector<Candidate> out;
    for (size_t i = 0; i < names_.size(); ++i) {
        if (!names_[i].empty() && tags_[i] < oldest_live) {
            out.push_back({static_cast<uint16_t>(i), tags_[i]});
        }
    }
    return out;
}

bool ReasonRegistry::release(const Candidate& c, uint64_t flows, uint64_t packets) {
    std::lock_guard<std::mutex> g(mutex_);
    if (c.id >= names_.size() || names_[c.id].empty() || tags_[c.id] != c.tag || c.tag == kPinned) {
        return false;
    }
    ids_.erase(names_[c.id]);
    names_[c.id].clear();
    base_flows_[c.id] = flows;
    base_packets_[c.id] = packets;
    free_.push_back(c.id);
    reclaimed_ += 1;
    return true;
}

void ReasonRegistry::baseline(uint16_t id, uint64_t& flows, uint64_t& packets) const {
    std::lock_guard<std::mutex> g(mutex_);
    flows = base_flows_[id & (dp::kMaxReasons - 1)];
    packets = base_packets_[id & (dp::kMaxReasons - 1)];
}

int ShaperSlots::slot(const std::string& name) {
    if (auto it = slots_.find(name); it != slots_.end()) {
        return it->second;
    }
    if (names_.size() >= dp::kMaxShapers) {
        return -1;
    }
    const auto v = static_cast<uint8_t>(names_.size());
    names_.push_back(name);
    slots_.emplace(name, v);
    return v;
}

uint16_t ReasonRegistry::id(const std::string& reason, uint64_t generation) {
    std::lock_guard<std::mutex> g(mutex_);
    if (auto it = ids_.find(reason); it != ids_.end()) {
        uint64_t& tag = tags_[it->second];
        tag = generation > tag ? generation : tag;
        return it->second;
    }
    uint16_t v;
    if (!free_.empty()) {
        v = free_.front();  // released by ReasonReclaimer: nothing holds it any more
        free_.pop_front();
        names_[v] = reason;
        tags_[v] = generation;
    } else if (names_.size() < dp::kReasonOther) {
        v = static_cast<uint16_t>(names_.size());
        names_.push_back(reason);
        tags_.push_back(generation);
    } else {
        return dp::kReasonOther;  // counted together as "other"
    }
    ids_.emplace(reason, v);
    return v;
}

std::string ReasonRegistry::name(uint16_t id) const {
    std::lock_guard<std::mutex> g(mutex_);
    return id < names_.size() && !names_[id].empty() ? names_[id] : std::string("other");
}

bool parse_cidr(const std::string& in, uint8_t& version, uint8_t addr[16], uint8_t& len) {
    std::string s = in;
    int plen = -1;
    if (const size_t slash = s.find('/'); slash != std::string::npos) {
        const std::string l = s.substr(slash + 1);
        if (l.empty() || l.size() > 3 || l.find_first_not_of("0123456789") != std::string::npos) {
            return false;
        }
        plen = std::stoi(l);
        s.resize(slash);
    }
    std::memset(addr, 0, 16);
    if (inet_pton(AF_INET, s.c_str(), addr) == 1) {
        version = 4;
        if (plen > 32) {
            return false;
        }
        len = static_cast<uint8_t>(plen < 0 ? 32 : plen);
        return true;
    }
    if (inet_pton(AF_INET6, s.c_str(), addr) == 1) {
        version = 6;
        if (plen > 128) {
            return false;
        }
        len = static_cast<uint8_t>(plen < 0 ? 128 : plen);
        return true;
    }
    return false;
}

bool parse_mac(const std::string& s, uint64_t& mac) {
    if (s.size() != 17) {
        return false;
    }
    mac = 0;
    for (size_t i = 0; i < 17; ++i) {
        if (i % 3 == 2) {
            if (s[i] != ':' && s[i] != '-') {
                return false;
            }
            continue;
        }
        const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(s[i])));
        int v;
        if (c >= '0' && c <= '9') {
            v = c - '0';
        } else if (c >= 'a' && c <= 'f') {
            v = c - 'a' + 10;
        } else {
            return false;
        }
        mac = mac << 4 | static_cast<uint64_t>(v);
    }
    return true;
}

namespace {

using dp::Action;
using dp::MarkerKind;

struct ContinentName {
    const char* code;
    const char* name;
};
constexpr ContinentName kContinentNames[7] = {{"AF", "Africa"},  {"AN", "Antarctica"}, {"AS", "Asia"},
                                              {"EU", "Europe"},  {"NA", "North America"}, {"OC", "Oceania"},
                                              {"SA", "South America"}};

int continent_index(const std::string& s) {
    std::string n;
    for (char c : s) {
        if (c != ' ' && c != '_' && c != '-') {
            n += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
    }
    for (int i = 0; i < 7; ++i) {
        std::string code = kContinentNames[i].code;
        std::string name;
        for (const char* p = kContinentNames[i].name; *p != '\0'; ++p) {
            if (*p != ' ') {
                name += static_cast<char>(std::tolower(static_cast<unsigned char>(*p)));
            }
        }
        code[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(code[0])));
        code[1] = static_cast<char>(std::tolower(static_cast<unsigned char>(code[1])));
        if (n == code || n == name) {
            return i;
        }
    }
    return -1;
}

bool valid_hostname_pattern(const std::string& h) {
    if (h.empty() || h.size() > 253) {
        return false;
    }
    const size_t start = h.rfind("*.", 0) == 0 ? 2 : 0;
    if (start == h.size()) {
        return false;
    }
    for (size_t i = start; i < h.size(); ++i) {
        const char c = h[i];
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_')) {
            return false;
        }
    }
    return true;
}

class Compiler {
public:
    Compiler(const PolicyConfig& cfg, CompileContext& ctx, std::vector<PolicyError>& errors)
        : cfg_(cfg), ctx_(ctx), errors_(errors) {}

    std::unique_ptr<dp::PolicySnapshot> run() {
        snap_ = std::make_unique<dp::PolicySnapshot>();
        snap_->generation = ctx_.generation;
        snap_->source = cfg_.file;
        snap_->pending_reason = ctx_.reasons->id("pending", ctx_.generation);
        snap_->unnamed_reason = ctx_.reasons->id("first_flight/unnamed", ctx_.generation);
        snap_->auto_block = cfg_.auto_block;
        snap_->auto_block_score = cfg_.auto_block_score;
        snap_->auto_block_window_ns = cfg_.auto_block_window_us * 1000;
        snap_->auto_block_for_ns = cfg_.auto_block_for_us * 1000;
        const size_t before = errors_.size();
        shapers();
        lists();
        policies();
        pools();
        geo();
        tables();  // also with earlier errors: it reports every bad marker of every policy
        if (errors_.size() == before) {
            regexes();
        }
        if (errors_.size() != before) {
            return nullptr;
        }
        return std::move(snap_);
    }

private:
    void error(const SourcePos& p, const std::string& m) { errors_.push_back({p, m}); }

    void shapers() {
        // Each shaper at its slot, stable per name across reloads (ShaperSlots); the slots of
        // names this policy does not define are named holes.
        ShaperSlots local;
        ShaperSlots& slots = ctx_.shaper_slots != nullptr ? *ctx_.shaper_slots : local;
        for (const ShaperSpec& s : cfg_.shapers) {
            if (shaper_idx_.count(s.name) != 0) {
                error(s.pos, "duplicate shaper '" + s.name + "'");
                continue;
            }
            const int slot = slots.slot(s.name);
            if (slot < 0) {
                error(s.pos, "too many shapers (at most " + std::to_string(dp::kMaxShapers) +
                                 " names since l7gate started, removed ones included)");
                continue;
            }
            shaper_idx_[s.name] = static_cast<uint8_t>(slot);
            if (snap_->shapers.size() <= static_cast<size_t>(slot)) {
                snap_->shapers.resize(static_cast<size_t>(slot) + 1);
            }
            dp::ShaperProfile& p = snap_->shapers[static_cast<size_t>(slot)];
            p.name = s.name;
            p.rate_bps = s.rate_bps;
            p.burst_bytes = s.burst_bytes;
            p.queue_packets = s.queue_packets != 0 ? s.queue_packets
                                                   : dp::shaper_default_queue(s.rate_bps, s.max_delay_us);
            p.max_delay_us = s.max_delay_us;
            p.per_host = s.per_host;
            dp::shaper_derive(p);
        }
        // Every slot named, so counters kept under a removed shaper keep its name.
        if (snap_->shapers.size() < slots.size()) {
            snap_->shapers.resize(slots.size());
        }
        for (size_t i = 0; i < snap_->shapers.size(); ++i) {
            dp::ShaperProfile& p = snap_->shapers[i];
            if (p.name.empty()) {
                p.name = slots.name(i);
                p.defined = false;
            }
        }
    }

    void lists() {
        for (const ListSpec& l : cfg_.lists) {
            if (lists_.count(l.name) != 0) {
                error(l.pos, "duplicate list '" + l.name + "'");
                continue;
            }
            lists_[l.name] = &l;
            for (size_t i = 0; i < l.items.size(); ++i) {
                const SourcePos& p = i < l.item_pos.size() ? l.item_pos[i] : l.pos;
                if (l.kind == ListSpec::Kind::Ips) {
                    uint8_t v;
                    uint8_t a[16];
                    uint8_t len;
                    if (!parse_cidr(l.items[i], v, a, len)) {
                        error(p, "list '" + l.name + "': bad address or CIDR '" + l.items[i] + "'");
                    }
                } else if (l.items[i][0] != '~' && !valid_hostname_pattern(l.items[i])) {
                    error(p, "list '" + l.name + "': bad hostname '" + l.items[i] + "' (name, *.suffix or ~regex)");
                }
            }
        }
    }

    void policies() {
        for (const PolicySpec& p : cfg_.policies) {
            if (policy_idx_.count(p.name) != 0) {
                error(p.pos, "duplicate policy '" + p.name + "'");
                continue;
            }
            policy_idx_[p.name] = static_cast<uint16_t>(specs_.size());
            specs_.push_back(&p);
        }
        std::vector<std::string> names;
        for (const PolicySpec* p : specs_) {
            names.push_back(p->name);
        }
        parent_.assign(specs_.size(), -1);
        for (size_t i = 0; i < specs_.size(); ++i) {
            const PolicySpec& p = *specs_[i];
            if (p.parent.empty()) {
                continue;
            }
            auto it = policy_idx_.find(p.parent);
            if (it == policy_idx_.end()) {
                const std::string c = closest(p.parent, names);
                error(p.parent_pos, "unknown parent policy '" + p.parent + "'" + (c.empty() ? "" : " (did you mean '" + c + "'?)"));
                continue;
            }
            parent_[i] = it->second;
        }
        chains_.resize(specs_.size());
        for (size_t i = 0; i < specs_.size(); ++i) {
            std::vector<uint16_t> chain;
            std::set<int> seen;
            for (int cur = static_cast<int>(i); cur >= 0; cur = parent_[static_cast<size_t>(cur)]) {
                if (!seen.insert(cur).second) {
                    error(specs_[i]->parent_pos, "policy '" + specs_[i]->name + "' is in a parent cycle");
                    chain.clear();
                    break;
                }
                chain.push_back(static_cast<uint16_t>(cur));
            }
            if (chain.size() > 255) {
                error(specs_[i]->pos, "policy chain deeper than 255 levels");
                chain.resize(255);
            }
            chains_[i] = chain;
        }
        if (cfg_.default_policy.empty()) {
            error({cfg_.file, 1, 1}, "missing 'default_policy' (the policy for hosts in no pool)");
        } else if (auto it = policy_idx_.find(cfg_.default_policy); it == policy_idx_.end()) {
            const std::string c = closest(cfg_.default_policy, names);
            error(cfg_.default_policy_pos, "unknown default_policy '" + cfg_.default_policy + "'" +
                                               (c.empty() ? "" : " (did you mean '" + c + "'?)"));
        } else {
            snap_->default_policy = it->second;
        }
    }

    void pools() {
        std::set<std::string> names;
        std::map<std::pair<std::string, uint8_t>, std::string> prefixes;  // (bytes, len) -> pool
        std::map<uint64_t, std::string> macs;
        std::vector<dp::PrefixTable4::Prefix> p4;
        std::vector<dp::PrefixTable6::Prefix> p6;
        std::vector<dp::PolicySnapshot::MacEntry> mac_entries;
        for (const PoolSpec& pool : cfg_.pools) {
            if (!names.insert(pool.name).second) {
                error(pool.pos, "duplicate pool name '" + pool.name + "'");
            }
            auto pit = policy_idx_.find(pool.policy);
            if (pit == policy_idx_.end()) {
                std::vector<std::string> pn;
                for (const PolicySpec* s : specs_) {
                    pn.push_back(s->name);
                }
                const std::string c = closest(pool.policy, pn);
                error(pool.pos, "pool '" + pool.name + "': unknown policy '" + pool.policy + "'" +
                                    (c.empty() ? "" : " (did you mean '" + c + "'?)"));
                continue;
            }
            const uint16_t pol = pit->second;
            snap_->pool_names.push_back(pool.name);
            for (size_t i = 0; i < pool.ips.size(); ++i) {
                const SourcePos& at = i < pool.ip_pos.size() ? pool.ip_pos[i] : pool.pos;
                uint8_t v;
                uint8_t a[16];
                uint8_t len;
                if (!parse_cidr(pool.ips[i], v, a, len)) {
                    error(at, "pool '" + pool.name + "': bad address or CIDR '" + pool.ips[i] + "'");
                    continue;
                }
                mask_bytes(a, v, len);
                const auto key = std::make_pair(std::string(reinterpret_cast<char*>(a), v == 4 ? 4 : 16), len);
                if (auto it = prefixes.find(key); it != prefixes.end()) {
                    error(at, "pool '" + pool.name + "': prefix " + pool.ips[i] + " is already in pool '" + it->second + "'");
                    continue;
                }
                prefixes[key] = pool.name;
                if (v == 4) {
                    p4.push_back({dp::ip4_from_bytes(a), len, len, pol});
                } else {
                    p6.push_back({dp::ip6_from_bytes(a), len, len, pol});
                }
            }
            for (size_t i = 0; i < pool.macs.size(); ++i) {
                const SourcePos& at = i < pool.mac_pos.size() ? pool.mac_pos[i] : pool.pos;
                uint64_t mac;
                if (!parse_mac(pool.macs[i], mac)) {
                    error(at, "pool '" + pool.name + "': bad MAC address '" + pool.macs[i] + "' (aa:bb:cc:dd:ee:ff)");
                    continue;
                }
                if (auto it = macs.find(mac); it != macs.end()) {
                    error(at, "pool '" + pool.name + "': MAC " + pool.macs[i] + " is already in pool '" + it->second + "'");
                    continue;
                }
                macs[mac] = pool.name;
                mac_entries.push_back({mac, pol});
            }
        }
        snap_->pool_ips4.build(std::move(p4));
        snap_->pool_ips6.build(std::move(p6));
        if (!mac_entries.empty()) {
            size_t cap = 8;
            while (cap < mac_entries.size() * 2) {
                cap <<= 1;
            }
            snap_->pool_macs.assign(cap, dp::PolicySnapshot::MacEntry{UINT64_MAX, 0});
            for (const auto& e : mac_entries) {
                for (size_t i = (e.mac * 0x9e3779b97f4a7c15ull) >> 40 & (cap - 1);; i = (i + 1) & (cap - 1)) {
                    if (snap_->pool_macs[i].mac == UINT64_MAX) {
                        snap_->pool_macs[i] = e;
                        break;
                    }
                }
            }
        }
    }

    static void mask_bytes(uint8_t* a, uint8_t v, uint8_t len) {
        const unsigned bytes = v == 4 ? 4 : 16;
        for (unsigned i = 0; i < bytes; ++i) {
            const int keep = static_cast<int>(len) - static_cast<int>(i * 8);
            if (keep <= 0) {
                a[i] = 0;
            } else if (keep < 8) {
                a[i] &= static_cast<uint8_t>(0xff << (8 - keep));
            }
        }
    }

    // Countries/continents named anywhere: collect them and build the GeoIP tables.
    void geo() {
        std::set<std::string> countries;
        std::set<int> continents;
        const MarkerEntry* first_use = nullptr;
        for (const PolicySpec* p : specs_) {
            for (const MarkerEntry& e : p->countries) {
                first_use = first_use != nullptr ? first_use : &e;
                std::string c = e.key;
                for (char& ch : c) {
                    ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
                }
                if (c.size() != 2 || !std::isalpha(static_cast<unsigned char>(c[0])) ||
                    !std::isalpha(static_cast<unsigned char>(c[1]))) {
                    error(e.pos, "bad country '" + e.key + "' (ISO 3166 two-letter code, e.g. IT)");
                    continue;
                }
                countries.insert(c);
            }
            for (const MarkerEntry& e : p->continents) {
                first_use = first_use != nullptr ? first_use : &e;
                const int ci = continent_index(e.key);
                if (ci < 0) {
                    std::vector<std::string> cand;
                    for (const auto& cn : kContinentNames) {
                        cand.emplace_back(cn.name);
                        cand.emplace_back(cn.code);
                    }
                    const std::string c = closest(e.key, cand);
                    error(e.pos, "unknown continent '" + e.key + "'" + (c.empty() ? "" : " (did you mean '" + c + "'?)"));
                    continue;
                }
                continents.insert(ci);
            }
        }
        if (first_use == nullptr) {
            return;
        }
        if (ctx_.geoip == nullptr) {
            error(first_use->pos, "countries and continents need a GeoIP database: start l7gate with --geoip FILE.mmdb");
            return;
        }
        for (const std::string& c : countries) {
            country_idx_[c] = static_cast<uint32_t>(snap_->countries.size());
            snap_->countries.push_back(c);
            snap_->country_continent.push_back(0xff);
        }
        std::vector<dp::PrefixTable4::Prefix> g4;
        std::vector<dp::PrefixTable6::Prefix> g6;
        const bool complete = ctx_.geoip->for_each_network([&](const GeoNet& n) {
            const int cont = continent_index(n.continent);
            // A network with a continent and no country still belongs to its continent: it
            // gets a pseudo country "@EU" that no countries key can name.
            const std::string key = n.country.empty() && cont >= 0
                                        ? std::string("@") + kContinentNames[cont].code
                                        : n.country;
            auto it = country_idx_.find(key);
            uint32_t idx;
            if (it != country_idx_.end()) {
                idx = it->second;
            } else if (cont >= 0 && continents.count(cont) != 0 && !key.empty()) {
                idx = static_cast<uint32_t>(snap_->countries.size());
                country_idx_[key] = idx;
                snap_->countries.push_back(key);
                snap_->country_continent.push_back(0xff);
            } else {
                return;
            }
            if (cont >= 0) {
                snap_->country_continent[idx] = static_cast<uint8_t>(cont);
            }
            if (n.ip_version == 4) {
                g4.push_back({dp::ip4_from_bytes(n.addr), n.prefix_len, n.prefix_len, idx});
            } else {
                g6.push_back({dp::ip6_from_bytes(n.addr), n.prefix_len, n.prefix_len, idx});
            }
        });
        if (!complete) {
            error(first_use->pos, "the GeoIP database is damaged (its search tree could not be walked whole)");
            return;
        }
        snap_->geo4.build(std::move(g4));
        snap_->geo6.build(std::move(g6));
    }

    // Resolves a marker spec to a marker index for `reason`.
    uint32_t marker(const MarkerSpec& m, const std::string& reason) {
        dp::Marker mk;
        std::string t = m.text;
        for (char& c : t) {
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        if (t == "drop") {
            mk.action = Action::Drop;
        } else if (t == "reject") {
            mk.action = Action::Reject;
        } else if (t.rfind("shape:", 0) == 0 || t.rfind("police:", 0) == 0) {
            const bool police = t[0] == 'p';
            const std::string name = m.text.substr(police ? 7 : 6);
            auto it = shaper_idx_.find(name);
            if (it == shaper_idx_.end()) {
                std::vector<std::string> cand;
                for (const auto& s : shaper_idx_) {
                    cand.push_back(s.first);
                }
                const std::string c = closest(name, cand);
                error(m.pos, "unknown shaper '" + name + "'" + (c.empty() ? "" : " (did you mean '" + c + "'?)"));
                // Still a marker (pass): the compile goes on to report every error, and the
                // tables it builds meanwhile index this one.
            } else {
                mk.action = police ? Action::Police : Action::Shape;
                mk.shaper = it->second;
            }
        }
        mk.reason = ctx_.reasons->id(reason, ctx_.generation);
        snap_->markers.push_back(mk);
        return static_cast<uint32_t>(snap_->markers.size() - 1);
    }

    // Per policy, its own entries resolved once (level applied when flattening).
    struct Own {
        std::vector<std::pair<std::string, uint32_t>> hosts;     // pattern -> marker
        std::vector<std::pair<std::string, uint32_t>> regexes;   // regex -> marker
        std::vector<std::tuple<uint8_t, std::array<uint8_t, 16>, uint8_t, uint32_t>> ips;
        std::vector<std::pair<unsigned, uint32_t>> protocols;
        std::vector<std::pair<unsigned, uint32_t>> categories;
        std::vector<std::pair<unsigned, uint32_t>> countries;
        std::vector<std::pair<unsigned, uint32_t>> continents;
        std::vector<std::pair<int, uint32_t>> risks;             // bit (-1 = any) -> marker
        bool has_score = false;
        uint32_t score_at_least = 0;
        uint32_t score_marker = 0;
        bool has_default = false;
        uint32_t default_marker = 0;
        std::vector<const dp::RiskException*> exceptions;
    };

    void own_tables() {
        own_.resize(specs_.size());
        size_t total_exc = 0;
        for (const PolicySpec* p : specs_) {
            total_exc += p->risk_exceptions.size();
        }
        snap_->risk_exceptions_storage.reserve(total_exc);  // pointers into it stay valid
        const auto& risk_keys = NdpiNames::risk_keys();
        const std::vector<std::string> proto_names = ctx_.names->protocol_names();
        const std::vector<std::string> cat_names = ctx_.names->category_names();
        for (size_t i = 0; i < specs_.size(); ++i) {
            const PolicySpec& p = *specs_[i];
            Own& o = own_[i];
            const std::string base = p.name + "/";
            auto dup = [&](std::set<std::string>& seen, const MarkerEntry& e, const char* kind) {
                if (!seen.insert(e.key).second) {
                    error(e.pos, std::string("duplicate ") + kind + " key '" + e.key + "'");
                    return true;
                }
                return false;
            };
            if (p.default_marker) {
                o.has_default = true;
                o.default_marker = marker(*p.default_marker, base + "default");
            }
            std::set<std::string> seen;
            for (const MarkerEntry& e : p.hostnames) {
                if (dup(seen, e, "hostnames")) {
                    continue;
                }
                const uint32_t m = marker(e.marker, base + "hostnames/" + e.key);
                if (!e.key.empty() && e.key[0] == '@') {
                    const ListSpec* l = list(e, ListSpec::Kind::Hostnames);
                    if (l != nullptr) {
                        for (const std::string& item : l->items) {
                            (item[0] == '~' ? o.regexes : o.hosts).emplace_back(item[0] == '~' ? item.substr(1) : item, m);
                        }
                    }
                } else if (!e.key.empty() && e.key[0] == '~') {
                    o.regexes.emplace_back(e.key.substr(1), m);
                    regex_pos_[e.key.substr(1)] = e.pos;
                } else if (!valid_hostname_pattern(e.key)) {
                    error(e.pos, "bad hostname '" + e.key + "' (name, *.suffix, ~regex or @list)");
                } else {
                    o.hosts.emplace_back(e.key, m);
                }
            }
            seen.clear();
            for (const MarkerEntry& e : p.ips) {
                if (dup(seen, e, "ips")) {
                    continue;
                }
                const uint32_t m = marker(e.marker, base + "ips/" + e.key);
                std::vector<std::string> items;
                if (!e.key.empty() && e.key[0] == '@') {
                    if (const ListSpec* l = list(e, ListSpec::Kind::Ips); l != nullptr) {
                        items = l->items;
                    }
                } else {
                    items.push_back(e.key);
                }
                for (const std::string& it : items) {
                    std::array<uint8_t, 16> a{};
                    uint8_t v;
                    uint8_t len;
                    if (!parse_cidr(it, v, a.data(), len)) {
                        error(e.pos, "bad address or CIDR '" + it + "'");
                        continue;
                    }
                    o.ips.emplace_back(v, a, len, m);
                }
            }
            seen.clear();
            for (const MarkerEntry& e : p.protocols) {
                if (dup(seen, e, "protocols")) {
                    continue;
                }
                const int id = ctx_.names->protocol_id(e.key);
                if (id < 0) {
                    const std::string c = closest(e.key, proto_names);
                    error(e.pos, "unknown nDPI protocol '" + e.key + "'" + (c.empty() ? "" : " (did you mean '" + c + "'?)"));
                    continue;
                }
                o.protocols.emplace_back(static_cast<unsigned>(id), marker(e.marker, base + "protocols/" + e.key));
            }
            seen.clear();
            for (const MarkerEntry& e : p.categories) {
                if (dup(seen, e, "categories")) {
                    continue;
                }
                const int id = ctx_.names->category_id(e.key);
                if (id < 0) {
                    const std::string c = closest(e.key, cat_names);
                    error(e.pos, "unknown nDPI category '" + e.key + "'" + (c.empty() ? "" : " (did you mean '" + c + "'?)"));
                    continue;
                }
                o.categories.emplace_back(static_cast<unsigned>(id), marker(e.marker, base + "categories/" + e.key));
            }
            seen.clear();
            for (const MarkerEntry& e : p.countries) {
                if (dup(seen, e, "countries")) {
                    continue;
                }
                std::string c = e.key;
                for (char& ch : c) {
                    ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
                }
                if (auto it = country_idx_.find(c); it != country_idx_.end()) {
                    o.countries.emplace_back(it->second, marker(e.marker, base + "countries/" + e.key));
                }
            }
            seen.clear();
            for (const MarkerEntry& e : p.continents) {
                if (dup(seen, e, "continents")) {
                    continue;
                }
                const int ci = continent_index(e.key);
                if (ci >= 0) {
                    o.continents.emplace_back(static_cast<unsigned>(ci), marker(e.marker, base + "continents/" + e.key));
                }
            }
            seen.clear();
            for (const MarkerEntry& e : p.risks) {
                if (dup(seen, e, "risks")) {
                    continue;
                }
                const int bit = risk_bit(e.key, e.pos, risk_keys);
                if (bit == -2) {
                    continue;
                }
                o.risks.emplace_back(bit, marker(e.marker, base + "risks/" + e.key));
            }
            if (p.score_at_least && p.score_marker) {
                o.has_score = true;
                o.score_at_least = *p.score_at_least;
                o.score_marker = marker(*p.score_marker, base + "score/" + std::to_string(*p.score_at_least));
            }
            for (const RiskExceptionSpec& x : p.risk_exceptions) {
                o.exceptions.push_back(exception(x, risk_keys));
            }
        }
    }

    // Bit index of a risk key; -1 for "any"; -2 (with an error) when unknown.
    int risk_bit(const std::string& key, const SourcePos& at, const std::vector<std::string>& keys) {
        if (key == "any") {
            return -1;
        }
        if (!key.empty() && key.find_first_not_of("0123456789") == std::string::npos && key.size() < 4) {
            const int v = std::stoi(key);
            if (v > 0 && v < static_cast<int>(keys.size())) {
                return v;
            }
        }
        for (size_t i = 1; i < keys.size(); ++i) {
            if (keys[i] == key) {
                return static_cast<int>(i);
            }
        }
        const std::string c = closest(key, keys);
        error(at, "unknown nDPI risk '" + key + "'" + (c.empty() ? "" : " (did you mean '" + c + "'?)"));
        return -2;
    }

    const dp::RiskException* exception(const RiskExceptionSpec& x, const std::vector<std::string>& keys) {
        dp::RiskException e;
        for (const std::string& r : x.risks) {
            const int bit = risk_bit(r, x.pos, keys);
            if (bit == -1) {
                e.risks = ~uint64_t{0};
            } else if (bit > 0) {
                e.risks |= uint64_t{1} << bit;
            }
        }
        for (const std::string& h : x.hostnames) {
            if (!valid_hostname_pattern(h)) {
                error(x.pos, "risk exception: bad hostname '" + h + "'");
                continue;
            }
            e.hosts.add(h, 1, 1);
            e.has_hosts = true;
        }
        e.hosts.build();
        std::vector<dp::PrefixTable4::Prefix> p4;
        std::vector<dp::PrefixTable6::Prefix> p6;
        for (const std::string& ip : x.ips) {
            uint8_t v;
            uint8_t a[16];
            uint8_t len;
            if (!parse_cidr(ip, v, a, len)) {
                error(x.pos, "risk exception: bad address or CIDR '" + ip + "'");
                continue;
            }
            e.has_ips = true;
            if (v == 4) {
                p4.push_back({dp::ip4_from_bytes(a), len, len, 1});
            } else {
                p6.push_back({dp::ip6_from_bytes(a), len, len, 1});
            }
        }
        e.ips4.build(std::move(p4));
        e.ips6.build(std::move(p6));
        for (const std::string& pr : x.protocols) {
            const int id = ctx_.names->protocol_id(pr);
            if (id < 0) {
                error(x.pos, "risk exception: unknown nDPI protocol '" + pr + "'");
                continue;
            }
            e.protocols.push_back(static_cast<uint16_t>(id));
        }
        snap_->risk_exceptions_storage.push_back(std::move(e));
        return &snap_->risk_exceptions_storage.back();
    }

    const ListSpec* list(const MarkerEntry& e, ListSpec::Kind kind) {
        const std::string name = e.key.substr(1);
        auto it = lists_.find(name);
        if (it == lists_.end()) {
            std::vector<std::string> cand;
            for (const auto& l : lists_) {
                cand.push_back("@" + l.first);
            }
            const std::string c = closest(e.key, cand);
            error(e.pos, "unknown list '" + e.key + "'" + (c.empty() ? "" : " (did you mean '" + c + "'?)"));
            return nullptr;
        }
        if (it->second->kind != kind) {
            error(e.pos, "list '" + e.key + "' holds " +
                             (it->second->kind == ListSpec::Kind::Ips ? "addresses" : "hostnames") + ", not " +
                             (kind == ListSpec::Kind::Ips ? "addresses" : "hostnames"));
            return nullptr;
        }
        return it->second;
    }

    void tables() {
        own_tables();
        const unsigned nproto = ctx_.names->protocol_count();
        const unsigned ncat = 256;
        snap_->policies.resize(specs_.size());
        for (size_t i = 0; i < specs_.size(); ++i) {
            dp::CompiledPolicy& cp = snap_->policies[i];
            cp.name = specs_[i]->name;
            const std::vector<uint16_t>& chain = chains_[i];
            cp.depth = static_cast<uint16_t>(chain.size());
            // enforce: the first policy from the leaf up that says; true when none does.
            cp.enforce = !ctx_.monitor;
            for (const uint16_t level : chain) {
                if (specs_[level]->enforce) {
                    cp.enforce = cp.enforce && *specs_[level]->enforce;
                    break;
                }
            }
            snap_->any_monitor = snap_->any_monitor || !cp.enforce;
            cp.protocols.assign(nproto, dp::kNoPos);
            cp.categories.assign(ncat, dp::kNoPos);
            cp.countries.assign(snap_->countries.size(), dp::kNoPos);
            cp.continents.assign(7, dp::kNoPos);
            std::fill(std::begin(cp.risk_marker), std::end(cp.risk_marker), dp::kNoPos);
            bool any_country = false;
            bool default_set = false;
            std::vector<dp::PrefixTable4::Prefix> p4;
            std::vector<dp::PrefixTable6::Prefix> p6;
            auto stricter = [&](uint32_t& slot, uint32_t m) {
                if (slot == dp::kNoPos ||
                    dp::strictness(snap_->markers[m].action) > dp::strictness(snap_->markers[slot].action)) {
                    slot = m;
                }
            };
            auto l7 = [&](unsigned level, MarkerKind k) {
                cp.first_l7_pos = std::min(cp.first_l7_pos, dp::rule_pos(level, k));
            };
            // Every L7-dependent marker that can still match (a name an earlier level also
            // lists is shadowed), as (rule position, marker): for l7_floor.
            std::vector<std::pair<uint32_t, uint32_t>> l7_markers;
            std::set<std::string> l7_names;
            for (unsigned level = 0; level < chain.size(); ++level) {
                const Own& o = own_[chain[level]];
                const uint32_t lv = level << 24;
                for (const auto& [pattern, m] : o.hosts) {
                    if (l7_names.insert(pattern).second) {
                        l7_markers.emplace_back(dp::rule_pos(level, MarkerKind::Hostnames), m);
                    }
                    const bool wild = pattern.rfind("*.", 0) == 0;
                    const uint32_t spec = wild ? static_cast<uint32_t>(std::min<size_t>(pattern.size(), 0xfffe)) : 0xffff;
                    cp.hosts.add(pattern, (255 - level) << 16 | spec, lv | m);
                }
                for (const auto& [re, m] : o.regexes) {
                    if (l7_names.insert("~" + re).second) {
                        l7_markers.emplace_back(dp::rule_pos(level, MarkerKind::Hostnames), m);
                    }
                    cp.regexes.push_back({regex_id(re), (255 - level) << 16, lv | m});
                }
                if (!o.hosts.empty() || !o.regexes.empty()) {
                    l7(level, MarkerKind::Hostnames);
                }
                for (const auto& [v, a, len, m] : o.ips) {
                    const uint32_t prio = (255 - level) << 8 | len;
                    if (v == 4) {
                        p4.push_back({dp::ip4_from_bytes(a.data()), len, prio, lv | m});
                    } else {
                        p6.push_back({dp::ip6_from_bytes(a.data()), len, prio, lv | m});
                    }
                }
                for (const auto& [id, m] : o.protocols) {
                    if (id < cp.protocols.size() && cp.protocols[id] == dp::kNoPos) {
                        cp.protocols[id] = lv | m;
                    }
                    l7(level, MarkerKind::Protocols);
                }
                for (const auto& [id, m] : o.categories) {
                    if (cp.categories[id] == dp::kNoPos) {
                        cp.categories[id] = lv | m;
                    }
                    l7(level, MarkerKind::Categories);
                }
                for (const auto& [id, m] : o.countries) {
                    if (cp.countries[id] == dp::kNoPos) {
                        cp.countries[id] = lv | m;
                    }
                    any_country = true;
                }
                for (const auto& [id, m] : o.continents) {
                    if (cp.continents[id] == dp::kNoPos) {
                        cp.continents[id] = lv | m;
                    }
                    any_country = true;
                }
                for (const auto& [bit, m] : o.risks) {
                    stricter(bit < 0 ? cp.any_risk_marker : cp.risk_marker[bit], m);
                }
                if (o.has_score) {
                    cp.score_rules.push_back({o.score_at_least, o.score_marker});
                }
                for (const dp::RiskException* e : o.exceptions) {
                    cp.exceptions.push_back(e);
                    snap_->any_exceptions = true;
                }
                if (!default_set && o.has_default) {
                    cp.default_marker = snap_->markers[o.default_marker];
                    default_set = true;
                }
            }
            if (!default_set) {
                cp.default_marker.reason = ctx_.reasons->id(cp.name + "/default", ctx_.generation);
            }
            for (const uint32_t packed : cp.protocols) {
                if (packed != dp::kNoPos) {
                    l7_markers.emplace_back(dp::rule_pos(packed >> 24, MarkerKind::Protocols), packed & 0xffffffu);
                }
            }
            for (const uint32_t packed : cp.categories) {
                if (packed != dp::kNoPos) {
                    l7_markers.emplace_back(dp::rule_pos(packed >> 24, MarkerKind::Categories), packed & 0xffffffu);
                }
            }
            // l7_floor[i]: the least strict of the markers above at a position below i, the
            // earliest on a tie.
            std::sort(l7_markers.begin(), l7_markers.end());
            cp.l7_floor.assign(static_cast<size_t>(cp.depth) * 8 + 1, dp::kNoPos);
            uint32_t floor = dp::kNoPos;
            size_t next = 0;
            for (size_t i = 1; i < cp.l7_floor.size(); ++i) {
                for (; next < l7_markers.size() && l7_markers[next].first < i; ++next) {
                    const uint32_t m = l7_markers[next].second;
                    if (floor == dp::kNoPos ||
                        dp::strictness(snap_->markers[m].action) < dp::strictness(snap_->markers[floor].action)) {
                        floor = m;
                    }
                }
                cp.l7_floor[i] = floor;
            }
            if (!any_country) {
                cp.countries.clear();
                cp.continents.clear();
            }
            cp.hosts.build();
            cp.ips4.build(std::move(p4));
            cp.ips6.build(std::move(p6));
            std::sort(cp.regexes.begin(), cp.regexes.end(),
                      [](const dp::CompiledPolicy::Regex& a, const dp::CompiledPolicy::Regex& b) { return a.pattern < b.pattern; });
        }
    }

    uint32_t regex_id(const std::string& re) {
        auto it = regex_idx_.find(re);
        if (it != regex_idx_.end()) {
            return it->second;
        }
        const auto id = static_cast<uint32_t>(regex_list_.size());
        regex_idx_[re] = id;
        regex_list_.push_back(re);
        return id;
    }

    void regexes() {
        if (regex_list_.empty()) {
            return;
        }
        std::vector<const char*> exprs;
        std::vector<unsigned> flags;
        std::vector<unsigned> ids;
        for (size_t i = 0; i < regex_list_.size(); ++i) {
            exprs.push_back(regex_list_[i].c_str());
            flags.push_back(HS_FLAG_CASELESS | HS_FLAG_SINGLEMATCH | HS_FLAG_DOTALL);
            ids.push_back(static_cast<unsigned>(i));
        }
        hs_database_t* db = nullptr;
        hs_compile_error_t* err = nullptr;
        if (hs_compile_multi(exprs.data(), flags.data(), ids.data(), static_cast<unsigned>(exprs.size()), HS_MODE_BLOCK,
                             nullptr, &db, &err) != HS_SUCCESS) {
            const int bad = err != nullptr ? err->expression : -1;
            const std::string re = bad >= 0 && static_cast<size_t>(bad) < regex_list_.size() ? regex_list_[bad] : "";
            SourcePos at{cfg_.file, 0, 0};
            if (auto it = regex_pos_.find(re); it != regex_pos_.end()) {
                at = it->second;
            }
            error(at, "bad hostname regex '~" + re + "': " + (err != nullptr ? err->message : "compile failed"));
            hs_free_compile_error(err);
            return;
        }
        snap_->regex_db = db;
        snap_->regex_count = regex_list_.size();
        hs_scratch_t* proto = nullptr;
        if (hs_alloc_scratch(db, &proto) != HS_SUCCESS) {
            error({cfg_.file, 0, 0}, "cannot allocate Hyperscan scratch space");
            return;
        }
        for (unsigned w = 0; w < ctx_.workers; ++w) {
            hs_scratch_t* s = nullptr;
            if (hs_clone_scratch(proto, &s) != HS_SUCCESS) {
                error({cfg_.file, 0, 0}, "cannot allocate Hyperscan scratch space");
                break;
            }
            snap_->regex_scratch.push_back(s);
        }
        hs_free_scratch(proto);
    }

    const PolicyConfig& cfg_;
    CompileContext& ctx_;
    std::vector<PolicyError>& errors_;
    std::unique_ptr<dp::PolicySnapshot> snap_;
    std::map<std::string, uint8_t> shaper_idx_;
    std::map<std::string, const ListSpec*> lists_;
    std::map<std::string, uint16_t> policy_idx_;
    std::vector<const PolicySpec*> specs_;
    std::vector<int> parent_;
    std::vector<std::vector<uint16_t>> chains_;
    std::map<std::string, uint32_t> country_idx_;
    std::vector<Own> own_;
    std::map<std::string, uint32_t> regex_idx_;
    std::vector<std::string> regex_list_;
    std::map<std::string, SourcePos> regex_pos_;
};

} // namespace

std::unique_ptr<dp::PolicySnapshot> compile_policy(const PolicyConfig& cfg, CompileContext& ctx,
                                                   std::vector<PolicyError>& errors) {
    return Compiler(cfg, ctx, errors).run();
}

std::unique_ptr<dp::PolicySnapshot> compile_policy_file(const std::string& path, const std::string& format,
                                                        CompileContext& ctx, std::vector<PolicyError>& errors) {
    PolicyConfig cfg;
    const PolicyFormat f = format == "yaml" ? PolicyFormat::Yaml : format == "nprobe" ? PolicyFormat::Nprobe : PolicyFormat::Auto;
    if (!load_policy_file(path, f, cfg, errors)) {
        return nullptr;
    }
    return compile_policy(cfg, ctx, errors);
}

} // namespace l7gate::ctl
