#include "dataplane/classifier_ndpi.hpp"

#include <cstring>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <rte_cycles.h>

#include <ndpi_api.h>

#include "dataplane/memory.hpp"
#include "dataplane/ndpi_tree.hpp"
#include "dataplane/packet_parser.hpp"

namespace l7gate::dp {

namespace {

// DpiState::Pending: FlowEntry::ext records what nDPI 4.2 would have learnt from the flow's
// payload-less packets (ndpi_detection_process_packet, ndpi_init_packet,
// ndpi_connection_tracking and the dissectors called without payload).
namespace pending {
constexpr uint32_t kCount = 0x0fff;        // packets processed (num_processed_pkts), saturating
constexpr uint32_t kInit = 1u << 12;       // init_finished
constexpr uint32_t kSetupDir = 1u << 13;   // setup_packet_direction
constexpr uint32_t kSeenSyn = 1u << 14;    // l4.tcp.seen_syn / seen_syn_ack / seen_ack
constexpr uint32_t kSeenSynAck = 1u << 15;
constexpr uint32_t kSeenAck = 1u << 16;
constexpr uint32_t kSyn = 1u << 17;        // a bare SYN was seen (TINC entry, the guesses)
constexpr uint32_t kSynSlot = 1u << 18;    // key slot of the latest bare SYN's sender
constexpr uint32_t kLastSlot = 1u << 19;   // key slot of the latest packet's sender
} // namespace pending

// ndpiReader copies the URL into a 256-byte buffer before validating it; do the same so
// long URLs give the same verdict.
constexpr size_t kUrlCopy = 256;

bool is_tls_family(uint16_t p) noexcept {
    return p == NDPI_PROTOCOL_TLS || p == NDPI_PROTOCOL_DTLS || p == NDPI_PROTOCOL_QUIC;
}

int hexval(char c) noexcept {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

// 32 hex digits -> 16 bytes; false (and zeroes) when the string is not a digest.
bool md5_from_hex(const char* hex, uint8_t out[16]) noexcept {
    for (unsigned i = 0; i < 16; ++i) {
        const int hi = hexval(hex[2 * i]);
        const int lo = hi < 0 ? -1 : hexval(hex[2 * i + 1]);
        if (lo < 0) {
            std::memset(out, 0, 16);
            return false;
        }
        out[i] = static_cast<uint8_t>(hi << 4 | lo);
    }
    return true;
}

} // namespace

uint64_t AppClassifier::url_risk_bits() noexcept {
    return uint64_t{1} << NDPI_URL_POSSIBLE_XSS | uint64_t{1} << NDPI_URL_POSSIBLE_SQL_INJECTION |
           uint64_t{1} << NDPI_URL_POSSIBLE_RCE_INJECTION;
}

uint64_t AppClassifier::url_risk(const FlowEntry& e, const ndpi_flow_struct* f) noexcept {
    if ((e.master_proto != NDPI_PROTOCOL_HTTP && e.app_proto != NDPI_PROTOCOL_HTTP) || f->http.url == nullptr) {
        return 0;
    }
    char url[kUrlCopy];
    std::strncpy(url, f->http.url, sizeof(url) - 1);
    url[sizeof(url) - 1] = '\0';
    const ndpi_risk_enum r = ndpi_validate_url(url);
    return r == NDPI_NO_RISK ? 0 : uint64_t{1} << static_cast<unsigned>(r);
}

AppClassifier::~AppClassifier() {
    if (ndpi_ != nullptr) {
        for (uint32_t i = 0; i < dpi_capacity_; ++i) {
            // States still held at shutdown were given up by the worker; nothing to free.
            (void)i;
        }
        ndpi_exit_detection_module(ndpi_);
    }
    table_free(dpi_mem_);
    table_free(dpi_packets_);
    table_free(dpi_free_);
    table_free(scratch_);
    table_free(v4_nets_);
}

namespace {

constexpr size_t kNet16Bits = 65536;

// Patricia walk callback: sets the bit of every /16 that the node's IPv4 prefix covers.
void mark_net16(ndpi_patricia_node_t* node, void* /*data*/, void* user) {
    const ndpi_prefix_t* p = ndpi_patricia_get_node_prefix(node);
    if (p == nullptr || p->family != AF_INET) {
        return;
    }
    auto* bits = static_cast<uint64_t*>(user);
    const uint32_t count = p->bitlen >= 16 ? 1u : 1u << (16 - p->bitlen);  // /16s covered
    const uint32_t first = (ntohl(p->add.sin.s_addr) >> 16) & ~(count - 1);
    for (uint32_t n = first; n < first + count; ++n) {
        bits[n >> 6] |= uint64_t{1} << (n & 63);
    }
}

} // namespace

const char* AppClassifier::init(const ClassifierConfig& cfg, int socket) noexcept {
    cfg_ = cfg;
    if (ndpi_detection_get_sizeof_ndpi_flow_struct() != sizeof(ndpi_flow_struct)) {
        return "the nDPI library and its headers disagree on sizeof(struct ndpi_flow_struct)";
    }
    ndpi_ = ndpi_init_detection_module(ndpi_no_prefs);
    if (ndpi_ == nullptr) {
        return "nDPI detection module initialisation failed";
    }
    NDPI_PROTOCOL_BITMASK all;
    NDPI_BITMASK_SET_ALL(all);
    ndpi_set_protocol_detection_bitmask2(ndpi_, &all);
    if (cfg.protos_file != nullptr && ndpi_load_protocols_file(ndpi_, cfg.protos_file) < 0) {
        return "cannot load the nDPI protocols file (--ndpi-protos)";
    }
    if (cfg.categories_file != nullptr && ndpi_load_categories_file(ndpi_, cfg.categories_file) < 0) {
        return "cannot load the nDPI categories file (--ndpi-categories)";
    }
    ndpi_finalize_initialization(ndpi_);

    slot_size_ = static_cast<uint32_t>((sizeof(ndpi_flow_struct) + 63) & ~size_t{63});
    dpi_capacity_ = cfg.dpi_flows;
    dpi_mem_ = static_cast<uint8_t*>(table_alloc(size_t{slot_size_} * dpi_capacity_, socket));
    dpi_packets_ = static_cast<uint16_t*>(table_alloc(sizeof(uint16_t) * dpi_capacity_, socket));
    dpi_free_ = static_cast<uint32_t*>(table_alloc(sizeof(uint32_t) * dpi_capacity_, socket));
    scratch_ = static_cast<ndpi_flow_struct*>(table_alloc(slot_size_, socket));
    v4_nets_ = static_cast<uint64_t*>(table_alloc(kNet16Bits / 8, socket));
    if (dpi_mem_ == nullptr || dpi_packets_ == nullptr || dpi_free_ == nullptr || scratch_ == nullptr ||
        v4_nets_ == nullptr) {
        return "cannot allocate the nDPI flow-state pool (lower --dpi-flows or --flows)";
    }
    if (!metas_.init(cfg.meta_records, socket)) {
        return "cannot allocate the flow metadata records (lower --meta-records or --flows)";
    }
    // The /16s that nDPI's host-protocol networks touch (its own lists and --ndpi-protos'
    // ip: rules; the tree does not change after initialisation).
    if (ndpi_patricia_tree_t* tree = ndpi_host_protocol_tree(ndpi_); tree != nullptr) {
        std::memset(v4_nets_, 0, kNet16Bits / 8);
        ndpi_patricia_walk_tree_inorder(tree, mark_net16, v4_nets_);
    } else {
        std::memset(v4_nets_, 0xff, kNet16Bits / 8);  // unknown: every lookup is made
    }
    for (uint32_t i = 0; i < dpi_capacity_; ++i) {
        dpi_free_[i] = dpi_capacity_ - 1 - i;
    }
    dpi_free_top_ = dpi_capacity_;
    cfg_.arena_bytes = cfg.arena_bytes != 0 ? cfg.arena_bytes : NdpiArena::bytes_for(cfg.dpi_flows);
    if (!arena_.init(cfg_.arena_bytes, socket, &counters_.arena_refused)) {
        return "cannot allocate the nDPI arena";
    }
    return nullptr;
}

ndpi_flow_struct* AppClassifier::take_state(FlowEntry& e, uint16_t packets_seen) noexcept {
    if (dpi_free_top_ == 0) {
        counters_.dpi_pool_full.inc();
        e.set_dpi_state(DpiState::None);
        e.ext = kNoExt;
        return nullptr;
    }
    const uint32_t idx = dpi_free_[--dpi_free_top_];
    ndpi_flow_struct* f = slot(idx);
    std::memset(f, 0, sizeof(ndpi_flow_struct));
    dpi_packets_[idx] = packets_seen;
    e.ext = idx;
    e.set_dpi_state(DpiState::Classifying);
    return f;
}

void AppClassifier::start(FlowEntry& e) noexcept { (void)take_state(e, 0); }

bool AppClassifier::deferrable(const FlowKey& k) const noexcept {
    if (cfg_.protos_file != nullptr) {
        return false;  // a custom protocol matched by port is decided on the SYN
    }
    if (k.ip_version != 4) {
        return true;
    }
    // The payload-less dissectors that can detect on a SYN (IPv4 only in 4.2).
    for (unsigned s = 0; s < 2; ++s) {
        if (k.port[s] == 5001 || k.port[s] == 5201) {
            return false;  // Targus Dataspeed
        }
        const uint32_t a = detail::load_be32(k.addr[s]);
        if ((a >= 0x5FD325C3u && a <= 0x5FD325CBu) || (a & 0xFFFFFF80u) == 0xB24D7800u) {
            return false;  // TeamViewer: 95.211.37.195-203, 178.77.120.0/25
        }
    }
    return true;
}

void AppClassifier::skip(FlowEntry& e, uint8_t tcp_flags, uint8_t sender) noexcept {
    using namespace pending;
    uint32_t r = e.ext;
    const bool syn = (tcp_flags & tcp_flag::kSyn) != 0;
    const bool ack = (tcp_flags & tcp_flag::kAck) != 0;
    const uint32_t n = (r & kCount) < kCount ? (r & kCount) + 1 : kCount;
    if (syn && !ack && (r & kInit) != 0) {
        r = 0;  // a new SYN resets an unknown flow's state; the packet count survives
    }
    r = (r & ~kCount) | n;
    if ((r & kInit) == 0) {
        // nDPI's direction of a TCP packet: 1 when its source port is the lower one.
        r |= kInit | (e.key.port[sender] < e.key.port[sender ^ 1] ? kSetupDir : 0);
    }
    const uint32_t seen = r & (kSeenSyn | kSeenSynAck | kSeenAck);
    if (syn && !ack && seen == 0) {
        r |= kSeenSyn;
    } else if (syn && ack && seen == kSeenSyn) {
        r |= kSeenSynAck;
    } else if (!syn && ack && seen == (kSeenSyn | kSeenSynAck)) {
        r |= kSeenAck;
    }
    if (syn && !ack) {
        r = (r | kSyn) & ~kSynSlot;
        r |= sender != 0 ? kSynSlot : 0;
    }
    r = (r & ~kLastSlot) | (sender != 0 ? kLastSlot : 0);
    e.ext = r;
}

void AppClassifier::prime(ndpi_flow_struct* f, const FlowKey& k, uint32_t r, bool for_giveup) const noexcept {
    using namespace pending;
    f->num_processed_pkts = static_cast<uint16_t>(r & kCount);
    f->init_finished = (r & kInit) != 0;
    f->setup_packet_direction = (r & kSetupDir) != 0;
    f->l4.tcp.seen_syn = (r & kSeenSyn) != 0;
    f->l4.tcp.seen_syn_ack = (r & kSeenSynAck) != 0;
    f->l4.tcp.seen_ack = (r & kSeenAck) != 0;
    if ((r & kCount) != 0) {
        // Both exclude themselves on a packet without payload (Targus: its ports ruled out).
        NDPI_ADD_PROTOCOL_TO_BITMASK(f->excluded_protocol_bitmask, NDPI_PROTOCOL_EDONKEY);
        NDPI_ADD_PROTOCOL_TO_BITMASK(f->excluded_protocol_bitmask, NDPI_PROTOCOL_TARGUS_GETDATA);
    }
    const unsigned s = (r & kSynSlot) != 0 ? 1 : 0;  // the SYN's sender: nDPI's first packet
    const bool v4 = k.ip_version == 4;
    if ((r & kSyn) != 0 && v4) {
        std::memcpy(&f->tinc_cache_entry.src_address, k.addr[s], 4);
        std::memcpy(&f->tinc_cache_entry.dst_address, k.addr[s ^ 1], 4);
        f->tinc_cache_entry.dst_port = htons(k.port[s ^ 1]);
    }
    if (!for_giveup) {
        return;  // the first payload packet sets the rest, the guesses included
    }
    f->l4_proto = IPPROTO_TCP;
    f->is_ipv6 = !v4;
    const unsigned l = (r & kLastSlot) != 0 ? 1 : 0;  // nDPI keeps the latest packet's view
    if (v4) {
        std::memcpy(&f->saddr, k.addr[l], 4);
        std::memcpy(&f->daddr, k.addr[l ^ 1], 4);
    }
    f->sport = htons(k.port[l]);
    f->dport = htons(k.port[l ^ 1]);
    uint8_t user_defined = 0;
    f->guessed_protocol_id = static_cast<int16_t>(
        ndpi_guess_protocol_id(ndpi_, f, IPPROTO_TCP, k.port[s], k.port[s ^ 1], &user_defined));
    if (v4) {
        // nDPI's two Patricia lookups, skipped for an address outside every /16 its networks
        // touch (a flood's random sources, most of all): the result would be unknown.
        in_addr a;
        uint16_t host = NDPI_PROTOCOL_UNKNOWN;
        if (may_match_host(k.addr[s])) {
            std::memcpy(&a.s_addr, k.addr[s], 4);
            host = ndpi_network_port_ptree_match(ndpi_, &a, htons(k.port[s]));
        }
        if (host == NDPI_PROTOCOL_UNKNOWN && may_match_host(k.addr[s ^ 1])) {
            std::memcpy(&a.s_addr, k.addr[s ^ 1], 4);
            host = ndpi_network_port_ptree_match(ndpi_, &a, htons(k.port[s ^ 1]));
        }
        f->guessed_host_protocol_id = host;
    }
    f->protocol_id_already_guessed = 1;
}

void AppClassifier::begin(FlowEntry& e, uint32_t bytes) noexcept {
    const uint32_t rec = e.ext;  // the record, before the state's index takes its place
    if (ndpi_flow_struct* f = take_state(e, static_cast<uint16_t>(rec & pending::kCount)); f != nullptr) {
        prime(f, e.key, rec, false);
        return;
    }
    // None: never classified, so its packets count per packet from this one on; the
    // payload-less ones before it (Pending, not counted yet) count now, under the same Unknown.
    const uint64_t packets = e.packets[0] + e.packets[1] - 1;
    const uint64_t before = e.bytes[0] + e.bytes[1] - bytes;
    const unsigned p = (e.app_proto != 0 ? e.app_proto : e.master_proto) & (kMaxNdpiProtocols - 1);
    counters_.proto_packets[p].add(packets);
    counters_.proto_bytes[p].add(before);
    counters_.category_bytes[e.category].add(before);
}

bool AppClassifier::packet(FlowEntry& e, const uint8_t* ip, uint32_t ip_len, uint64_t time_ms) noexcept {
    const uint32_t idx = e.ext;
    ndpi_flow_struct* f = slot(idx);
    const uint16_t n = ++dpi_packets_[idx];
    const uint16_t limit = e.key.proto == 6    ? cfg_.max_packets_tcp
                           : e.key.proto == 17 ? cfg_.max_packets_udp
                                               : cfg_.max_packets_other;
    const bool enough = n > limit;
    if (arena_.headroom() < NdpiArena::kReserveBytes) [[unlikely]] {
        // Too little arena left for whatever this packet's dissection may ask: the flow ends
        // its classification now, as at the packet limit (given up, results so far kept).
        counters_.arena_full.inc();
        finish(e, f, true, 0, 0, 0);
        return true;
    }
    const uint64_t refused = arena_.refused();
    const uint64_t t0 = rte_rdtsc();
    const ndpi_protocol p = ndpi_detection_process_packet(
        ndpi_, f, ip, static_cast<unsigned short>(ip_len > 65535 ? 65535 : ip_len), time_ms);
    counters_.ndpi_cycles.add(rte_rdtsc() - t0);
    counters_.ndpi_packets.inc();
    if (arena_.refused() != refused) [[unlikely]] {
        // nDPI was refused memory while dissecting: what it has now is all it will have.
        counters_.arena_full.inc();
        finish(e, f, true, 0, 0, 0);
        return true;
    }
    // Interim results: the policy may act on a protocol or risk before nDPI is done.
    bool changed = false;
    if (p.app_protocol != NDPI_PROTOCOL_UNKNOWN && (p.app_protocol != e.app_proto || p.master_protocol != e.master_proto)) {
        e.master_proto = p.master_protocol;
        e.app_proto = p.app_protocol;
        e.category = static_cast<uint8_t>(p.category);
        changed = true;
    }
    // The URL risks (SQL injection, XSS) are not set by nDPI itself; check the URL as soon as
    // nDPI has parsed it, so a policy can drop the request before it reaches the server.
    const uint64_t risk = f->risk | url_risk(e, f);
    if (risk != e.risk) {
        e.risk = risk;
        changed = true;
    }
    if (!enough && p.app_protocol == NDPI_PROTOCOL_UNKNOWN) {
        return changed;
    }
    if (!enough && cfg_.extra_dissection && ndpi_extra_dissection_possible(ndpi_, f) != 0) {
        return changed;
    }
    finish(e, f, p.app_protocol == NDPI_PROTOCOL_UNKNOWN, p.master_protocol, p.app_protocol,
           static_cast<uint16_t>(p.category));
    return true;
}

std::string_view AppClassifier::host(const FlowEntry& e) const noexcept {
    const char* h = nullptr;
    size_t cap = 0;
    if (e.dpi_state() == DpiState::Classifying) {
        h = slot(e.ext)->host_server_name;
        cap = sizeof(slot(e.ext)->host_server_name);
    } else if (const FlowMeta* m = meta(e); m != nullptr) {
        h = m->host;
        cap = sizeof(m->host);
    } else if (&e == lost_entry_) {
        h = lost_host_;
        cap = sizeof(lost_host_);
    }
    return h == nullptr ? std::string_view() : std::string_view(h, strnlen(h, cap));
}

void AppClassifier::finish_at_end(FlowEntry& e) noexcept {
    if (e.dpi_state() == DpiState::Pending) {
        // Never carried payload: nDPI would have seen its SYN only; give up from the record.
        std::memset(scratch_, 0, sizeof(ndpi_flow_struct));
        prime(scratch_, e.key, e.ext, true);
        counters_.deferred_no_payload.inc();
        finish(e, scratch_, true, 0, 0, 0);
        return;
    }
    if (e.dpi_state() != DpiState::Classifying) {
        return;
    }
    finish(e, slot(e.ext), true, 0, 0, 0);
}

namespace {
bool is_zero(const uint8_t (&digest)[16]) noexcept {
    uint64_t w[2];
    std::memcpy(w, digest, sizeof(w));
    return (w[0] | w[1]) == 0;
}
} // namespace

void AppClassifier::finish(FlowEntry& e, ndpi_flow_struct* f, bool give_up, uint16_t master,
                           uint16_t app, uint16_t category) noexcept {
    if (give_up) {
        uint8_t guessed = 0;
        const ndpi_protocol p = ndpi_detection_giveup(ndpi_, f, 1, &guessed);
        master = p.master_protocol;
        app = p.app_protocol;
        category = static_cast<uint16_t>(p.category);
        counters_.giveups.inc();
    }
    e.master_proto = master;
    e.app_proto = app;
    e.category = static_cast<uint8_t>(category);
    // Interim URL risks already in e.risk stay: the verdict may have acted on them.
    const uint64_t risk = f->risk | url_risk(e, f) | (e.risk & url_risk_bits());
    e.risk = risk;

    // Keep what the flow log and the policy need; drop nDPI's state.
    const bool tls = is_tls_family(master) || is_tls_family(app);
    const bool has_host = f->host_server_name[0] != '\0';
    uint32_t m = kNoExt;
    if (has_host || tls) {
        FlowMeta fm;
        std::memset(&fm, 0, sizeof(fm));  // zero padding after the name: equal values compare equal
        std::memcpy(fm.host, f->host_server_name, strnlen(f->host_server_name, sizeof(fm.host) - 1));
        if (tls) {
            md5_from_hex(f->protos.tls_quic.ja3_client, fm.ja3c);
            md5_from_hex(f->protos.tls_quic.ja3_server, fm.ja3s);
            fm.tls_version = f->protos.tls_quic.ssl_version;
        }
        // Nothing learnt (a TLS flow given up on its port before any handshake: a SYN flood's
        // flows) keeps no record: it would read back as the all-zero value anyway.
        const bool empty = !has_host && fm.tls_version == 0 && is_zero(fm.ja3c) && is_zero(fm.ja3s);
        m = empty ? kNoExt : metas_.intern(fm);  // MetaTable::kNone is kNoExt
        if (m == kNoExt && !empty) {
            counters_.meta_pool_full.inc();
            e.set_meta_lost();
            lost_entry_ = &e;
            std::memcpy(lost_host_, fm.host, sizeof(lost_host_));
        }
    }
    const uint32_t idx = e.ext;
    ndpi_free_flow_data(f);
    if (f != scratch_) {
        dpi_free_[dpi_free_top_++] = idx;
    }
    e.ext = m;
    e.set_dpi_state(DpiState::Done);

    const unsigned p = (app != 0 ? app : master) & (kMaxNdpiProtocols - 1);
    counters_.classified.inc();
    counters_.proto_flows[p].inc();
    counters_.proto_packets[p].add(e.packets[0] + e.packets[1]);
    counters_.proto_bytes[p].add(e.bytes[0] + e.bytes[1]);
    counters_.category_bytes[e.category].add(e.bytes[0] + e.bytes[1]);
    for (uint64_t bits = risk; bits != 0; bits &= bits - 1) {
        counters_.risk_flows[__builtin_ctzll(bits)].inc();
    }
}

void AppClassifier::release(FlowEntry& e) noexcept {
    if (e.dpi_state() == DpiState::Classifying) {
        ndpi_free_flow_data(slot(e.ext));
        dpi_free_[dpi_free_top_++] = e.ext;
    } else if (e.dpi_state() == DpiState::Done && e.ext != kNoExt) {
        metas_.release(e.ext);
    }
    if (&e == lost_entry_) {
        lost_entry_ = nullptr;
    }
    e.ext = kNoExt;
    e.set_dpi_state(DpiState::None);
}

} // namespace l7gate::dp
