#include "dataplane/policy_snapshot.hpp"

#include <algorithm>

#include <hs/hs.h>
#include <ndpi_api.h>

namespace l7gate::dp {

namespace {

inline uint32_t level_of(uint32_t packed) noexcept { return packed >> 24; }
inline uint32_t marker_of(uint32_t packed) noexcept { return packed & 0xffffffu; }

inline void consider(uint32_t packed, MarkerKind kind, uint32_t& best_pos, uint32_t& best_marker) noexcept {
    if (packed == kNoPos) {
        return;
    }
    const uint32_t pos = rule_pos(level_of(packed), kind);
    if (pos < best_pos) {
        best_pos = pos;
        best_marker = marker_of(packed);
    }
}

inline uint64_t mac_u64(const uint8_t* m) noexcept {
    uint64_t v = 0;
    for (int i = 0; i < 6; ++i) {
        v = v << 8 | m[i];
    }
    return v;
}

struct RegexCtx {
    const CompiledPolicy* policy;
    uint32_t best_priority;
    uint32_t best_marker;
    bool found;
};

int on_regex(unsigned int id, unsigned long long, unsigned long long, unsigned int, void* c) {
    auto* ctx = static_cast<RegexCtx*>(c);
    const auto& rules = ctx->policy->regexes;
    auto it = std::lower_bound(rules.begin(), rules.end(), id,
                               [](const CompiledPolicy::Regex& r, unsigned v) { return r.pattern < v; });
    for (; it != rules.end() && it->pattern == id; ++it) {
        if (!ctx->found || it->priority > ctx->best_priority) {
            ctx->found = true;
            ctx->best_priority = it->priority;
            ctx->best_marker = it->marker;
        }
    }
    return 0;
}

} // namespace

PolicySnapshot::~PolicySnapshot() {
    for (hs_scratch* s : regex_scratch) {
        hs_free_scratch(s);
    }
    hs_free_database(regex_db);
}

uint16_t PolicySnapshot::pool_policy(const FlowFacts& f, bool& local_is_server) const noexcept {
    for (int side = 0; side < 2; ++side) {
        const uint8_t* mac = side == 0 ? f.client_mac : f.server_mac;
        if (mac != nullptr && !pool_macs.empty()) {
            const uint64_t key = mac_u64(mac);
            const size_t mask = pool_macs.size() - 1;
            for (size_t i = (key * 0x9e3779b97f4a7c15ull) >> 40 & mask;; i = (i + 1) & mask) {
                if (pool_macs[i].mac == UINT64_MAX) {
                    break;
                }
                if (pool_macs[i].mac == key) {
                    local_is_server = side == 1;
                    return pool_macs[i].policy;
                }
            }
        }
        const uint8_t* ip = side == 0 ? f.client_ip : f.server_ip;
        const uint32_t v = f.ip_version == 4 ? pool_ips4.lookup(ip4_from_bytes(ip))
                                             : pool_ips6.lookup(ip6_from_bytes(ip));
        if (v != PrefixTable4::kNone) {
            local_is_server = side == 1;
            return static_cast<uint16_t>(v);
        }
    }
    local_is_server = false;
    return default_policy;
}

void PolicySnapshot::apply_first_match(const CompiledPolicy& p, const FlowFacts& f, const uint8_t* peer,
                                       unsigned worker, uint32_t& best_pos, uint32_t& best_marker) const noexcept {
    if (f.l7_known && !f.host.empty()) {
        const HostTable::Match m = p.hosts.lookup(f.host);
        if (m.value != HostTable::kNone) {
            consider(m.value, MarkerKind::Hostnames, best_pos, best_marker);
        }
        if (!p.regexes.empty() && regex_db != nullptr && worker < regex_scratch.size()) {
            RegexCtx ctx{&p, 0, 0, false};
            hs_scan(regex_db, f.host.data(), static_cast<unsigned>(f.host.size()), 0, regex_scratch[worker],
                    on_regex, &ctx);
            if (ctx.found) {
                // Regexes rank below exact and wildcard names of the same level.
                const uint32_t pos = rule_pos(level_of(ctx.best_marker), MarkerKind::Hostnames);
                if (pos < best_pos) {
                    best_pos = pos;
                    best_marker = marker_of(ctx.best_marker);
                }
            }
        }
    }
    const uint32_t ip = f.ip_version == 4 ? p.ips4.lookup(ip4_from_bytes(peer)) : p.ips6.lookup(ip6_from_bytes(peer));
    if (ip != PrefixTable4::kNone) {
        consider(ip, MarkerKind::Ips, best_pos, best_marker);
    }
    if (f.l7_known) {
        if (f.app_proto < p.protocols.size()) {
            consider(p.protocols[f.app_proto], MarkerKind::Protocols, best_pos, best_marker);
        }
        // Master id 0 (Unknown) means no master: it must not match an Unknown marker.
        if (f.master_proto != NDPI_PROTOCOL_UNKNOWN && f.master_proto != f.app_proto &&
            f.master_proto < p.protocols.size()) {
            // The app id was considered first: only a strictly earlier level can win.
            const uint32_t packed = p.protocols[f.master_proto];
            if (packed != kNoPos && rule_pos(level_of(packed), MarkerKind::Protocols) < best_pos) {
                consider(packed, MarkerKind::Protocols, best_pos, best_marker);
            }
        }
        if (f.category < p.categories.size()) {
            consider(p.categories[f.category], MarkerKind::Categories, best_pos, best_marker);
        }
    }
    if (!p.countries.empty() || !p.continents.empty()) {
        const uint32_t ci = f.ip_version == 4 ? geo4.lookup(ip4_from_bytes(peer)) : geo6.lookup(ip6_from_bytes(peer));
        if (ci != PrefixTable4::kNone) {
            if (ci < p.countries.size()) {
                consider(p.countries[ci], MarkerKind::Countries, best_pos, best_marker);
            }
            const uint8_t cont = ci < country_continent.size() ? country_continent[ci] : 0xff;
            if (cont < p.continents.size()) {
                consider(p.continents[cont], MarkerKind::Continents, best_pos, best_marker);
            }
        }
    }
}

// The risks of f that an exception of p covers (peer: the remote endpoint).
uint64_t PolicySnapshot::excepted(const CompiledPolicy& p, const FlowFacts& f, const uint8_t* peer) const noexcept {
    uint64_t mask = 0;
    for (const RiskException* e : p.exceptions) {
        if ((e->risks & f.risk) == 0) {
            continue;
        }
        bool match = true;
        if (e->has_hosts) {
            match = !f.host.empty() && e->hosts.lookup(f.host).value != HostTable::kNone;
        }
        if (match && e->has_ips) {
            const uint32_t v = f.ip_version == 4 ? e->ips4.lookup(ip4_from_bytes(peer)) : e->ips6.lookup(ip6_from_bytes(peer));
            match = v != PrefixTable4::kNone;
        }
        if (match && !e->protocols.empty()) {
            // Master id 0 (Unknown) means no master, as in apply_first_match().
            const auto& ps = e->protocols;
            const auto has = [&](uint16_t id) {
                return std::find(ps.begin(), ps.end(), id) != ps.end();
            };
            match = has(f.app_proto) ||
                    (f.master_proto != NDPI_PROTOCOL_UNKNOWN && has(f.master_proto));
        }
        if (match) {
            mask |= e->risks;
        }
    }
    return mask & f.risk;
}

uint64_t PolicySnapshot::excepted_risks(const FlowFacts& f) const noexcept {
    bool local_is_server = false;
    const CompiledPolicy& p = policies[pool_policy(f, local_is_server)];
    return excepted(p, f, local_is_server ? f.client_ip : f.server_ip);
}

Verdict PolicySnapshot::evaluate(const FlowFacts& f, unsigned worker) const noexcept {
    Verdict v;
    bool local_is_server = false;
    const uint16_t leaf = pool_policy(f, local_is_server);
    const CompiledPolicy& p = policies[leaf];
    const uint8_t* peer = local_is_server ? f.client_ip : f.server_ip;
    v.policy = leaf;
    v.local_is_server = local_is_server;
    v.enforced = p.enforce;

    // Risks and score: strictest over the chain.
    const uint64_t exc = p.exceptions.empty() ? 0 : excepted(p, f, peer);
    const uint64_t risk = f.risk & ~exc;
    v.excepted_risks = exc;
    uint32_t risk_marker = kNoPos;
    auto stricter = [&](uint32_t m) {
        if (m == kNoPos) {
            return;
        }
        if (risk_marker == kNoPos || strictness(markers[m].action) > strictness(markers[risk_marker].action)) {
            risk_marker = m;
        }
    };
    if (risk != 0) {
        uint16_t cs = 0;
        uint16_t ss = 0;
        v.risk_score = ndpi_risk2score(risk, &cs, &ss);
        for (uint64_t bits = risk; bits != 0; bits &= bits - 1) {
            stricter(p.risk_marker[__builtin_ctzll(bits)]);
        }
        stricter(p.any_risk_marker);
        for (const CompiledPolicy::ScoreRule& r : p.score_rules) {
            if (v.risk_score >= r.at_least) {
                stricter(r.marker);
            }
        }
    }

    // First match.
    uint32_t best_pos = kNoPos;
    uint32_t best_marker = 0;
    apply_first_match(p, f, peer, worker, best_pos, best_marker);
    Marker fm;
    if (!f.l7_known && p.first_l7_pos != kNoPos && (best_pos == kNoPos || best_pos > p.first_l7_pos)) {
        // Pending: nDPI's answer could still bring a marker that precedes the one that matched
        // (or the default). Until then the least strict of them all applies, the matched one
        // on a tie: a verdict that every outcome shares is certain from the first packet.
        v.pending = true;
        const Marker& rest = best_pos == kNoPos ? p.default_marker : markers[best_marker];
        const size_t i = best_pos < p.l7_floor.size() ? best_pos : p.l7_floor.size() - 1;
        const uint32_t l7 = p.l7_floor.empty() ? kNoPos : p.l7_floor[i];
        // No floor (a snapshot not from the compiler): nothing is known, the flow passes.
        fm = l7 == kNoPos ? Marker{} : strictness(markers[l7].action) < strictness(rest.action) ? markers[l7] : rest;
        if (fm.action == Action::Pass) {
            fm = Marker{};
            fm.reason = pending_reason;
        }
    } else if (best_pos == kNoPos) {
        fm = p.default_marker;
    } else {
        fm = markers[best_marker];
    }
    Marker out = fm;
    if (risk_marker != kNoPos && markers[risk_marker].action != Action::Pass &&
        strictness(markers[risk_marker].action) >= strictness(fm.action)) {
        out = markers[risk_marker];
    }
    v.action = out.action;
    v.shaper = out.shaper;
    v.reason = out.reason;
    return v;
}

} // namespace l7gate::dp
