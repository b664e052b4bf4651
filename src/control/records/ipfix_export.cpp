#include "control/records/ipfix_export.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fixbuf/public.h>
#include <ndpi_api.h>

#include "control/base/log.hpp"
#include "control/policy/compiler.hpp"
#include "control/records/flow_log.hpp"
#include "dataplane/packet_parser.hpp"

namespace l7gate::ctl {

namespace {

// ntop's elements (nProbe's numbering) and l7gate's own; added to libfixbuf's model.
fbInfoElement_t kElements[] = {
    FB_IE_INIT_FULL("L7_PROTO", ipfix::kPenNtop, 118, 2, FB_IE_F_ENDIAN | FB_IE_IDENTIFIER, 0, 0, FB_UINT_16,
                    nullptr),
    FB_IE_INIT_FULL("L7_PROTO_NAME", ipfix::kPenNtop, 119, FB_IE_VARLEN, FB_IE_F_NONE, 0, 0, FB_STRING, nullptr),
    FB_IE_INIT_FULL("L7_PROTO_CATEGORY", ipfix::kPenNtop, 501, FB_IE_VARLEN, FB_IE_F_NONE, 0, 0, FB_STRING,
                    nullptr),
    FB_IE_INIT_FULL("L7_PROTO_RISK", ipfix::kPenNtop, 509, 4, FB_IE_F_ENDIAN | FB_IE_FLAGS, 0, 0, FB_UINT_32,
                    nullptr),
    FB_IE_INIT_FULL("L7_PROTO_RISK_NAME", ipfix::kPenNtop, 510, FB_IE_VARLEN, FB_IE_F_NONE, 0, 0, FB_STRING,
                    nullptr),
    FB_IE_INIT_FULL("L7_RISK_SCORE", ipfix::kPenNtop, 527, 2, FB_IE_F_ENDIAN | FB_IE_QUANTITY, 0, 0, FB_UINT_16,
                    nullptr),
    FB_IE_INIT_FULL("l7gateRiskBitmap", ipfix::kPenL7gate, 1, 8, FB_IE_F_ENDIAN | FB_IE_FLAGS, 0, 0, FB_UINT_64,
                    nullptr),
    FB_IE_INIT_FULL("l7gateRiskExceptedBitmap", ipfix::kPenL7gate, 2, 8, FB_IE_F_ENDIAN | FB_IE_FLAGS, 0, 0,
                    FB_UINT_64, nullptr),
    FB_IE_INIT_FULL("l7gateVerdict", ipfix::kPenL7gate, 3, FB_IE_VARLEN, FB_IE_F_NONE, 0, 0, FB_STRING, nullptr),
    FB_IE_INIT_FULL("l7gateVerdictReason", ipfix::kPenL7gate, 4, FB_IE_VARLEN, FB_IE_F_NONE, 0, 0, FB_STRING,
                    nullptr),
    FB_IE_INIT_FULL("l7gateServerName", ipfix::kPenL7gate, 5, FB_IE_VARLEN, FB_IE_F_NONE, 0, 0, FB_STRING,
                    nullptr),
    FB_IE_INIT_FULL("l7gateJa3Client", ipfix::kPenL7gate, 6, FB_IE_VARLEN, FB_IE_F_NONE, 0, 0, FB_STRING,
                    nullptr),
    FB_IE_INIT_FULL("l7gateJa3Server", ipfix::kPenL7gate, 7, FB_IE_VARLEN, FB_IE_F_NONE, 0, 0, FB_STRING,
                    nullptr),
    FB_IE_INIT_FULL("l7gateTunnel", ipfix::kPenL7gate, 8, 2, FB_IE_F_ENDIAN | FB_IE_IDENTIFIER, 0, 0, FB_UINT_16,
                    nullptr),
    FB_IE_INIT_FULL("l7gateEncap", ipfix::kPenL7gate, 9, FB_IE_VARLEN, FB_IE_F_NONE, 0, 0, FB_STRING, nullptr),
    FB_IE_INIT_FULL("l7gateEnforced", ipfix::kPenL7gate, 10, 1, FB_IE_F_ENDIAN, 0, 0, FB_UINT_8, nullptr),
    FB_IE_NULL,
};

// The record as libfixbuf reads it (its internal template): the fields in template order,
// packed, so the specs below and these structs must agree field for field.
#define L7G_IPFIX_HEAD                                                                                   \
    uint64_t start_ms, end_ms, octets, packets, rev_octets, rev_packets, risk, risk_excepted;         \
    fbVarfield_t proto_name, category, risk_names, verdict, reason, host, ja3c, ja3s, encap;
#define L7G_IPFIX_TAIL                                                                                   \
    uint32_t risk32;                                                                                 \
    uint16_t sport, dport, vlan, inner_vlan, l7_proto, score, tunnel;                                \
    uint8_t l4_proto, end_reason, enforced;

#pragma pack(push, 1)
struct RecV4 {
    L7G_IPFIX_HEAD
    uint32_t src, dst;  // host byte order (libfixbuf converts ipv4Address like an integer)
    L7G_IPFIX_TAIL
};
struct RecV6 {
    L7G_IPFIX_HEAD
    uint8_t src[16], dst[16];
    L7G_IPFIX_TAIL
};
#pragma pack(pop)
static_assert(sizeof(RecV4) == 8 * 8 + 9 * sizeof(fbVarfield_t) + 8 + 4 + 14 + 3, "RecV4 has padding");
static_assert(sizeof(RecV6) == 8 * 8 + 9 * sizeof(fbVarfield_t) + 32 + 4 + 14 + 3, "RecV6 has padding");

#define L7G_SPEC(n, len) {const_cast<char*>(n), len, 0}
#define L7G_SPEC_HEAD                                                                                    \
    L7G_SPEC("flowStartMilliseconds", 8), L7G_SPEC("flowEndMilliseconds", 8),                          \
        L7G_SPEC("octetDeltaCount", 8), L7G_SPEC("packetDeltaCount", 8),                               \
        L7G_SPEC("reverseOctetDeltaCount", 8), L7G_SPEC("reversePacketDeltaCount", 8),                 \
        L7G_SPEC("l7gateRiskBitmap", 8), L7G_SPEC("l7gateRiskExceptedBitmap", 8),                      \
        L7G_SPEC("L7_PROTO_NAME", FB_IE_VARLEN), L7G_SPEC("L7_PROTO_CATEGORY", FB_IE_VARLEN),          \
        L7G_SPEC("L7_PROTO_RISK_NAME", FB_IE_VARLEN), L7G_SPEC("l7gateVerdict", FB_IE_VARLEN),         \
        L7G_SPEC("l7gateVerdictReason", FB_IE_VARLEN), L7G_SPEC("l7gateServerName", FB_IE_VARLEN),     \
        L7G_SPEC("l7gateJa3Client", FB_IE_VARLEN), L7G_SPEC("l7gateJa3Server", FB_IE_VARLEN),          \
        L7G_SPEC("l7gateEncap", FB_IE_VARLEN)
#define L7G_SPEC_TAIL                                                                                    \
    L7G_SPEC("L7_PROTO_RISK", 4), L7G_SPEC("sourceTransportPort", 2),                                  \
        L7G_SPEC("destinationTransportPort", 2), L7G_SPEC("vlanId", 2),                                \
        L7G_SPEC("dot1qCustomerVlanId", 2), L7G_SPEC("L7_PROTO", 2),                                   \
        L7G_SPEC("L7_RISK_SCORE", 2), L7G_SPEC("l7gateTunnel", 2), L7G_SPEC("protocolIdentifier", 1),  \
        L7G_SPEC("flowEndReason", 1), L7G_SPEC("l7gateEnforced", 1), {nullptr, 0, 0}

fbInfoElementSpec_t kSpecV4[] = {
    L7G_SPEC_HEAD, L7G_SPEC("sourceIPv4Address", 4), L7G_SPEC("destinationIPv4Address", 4), L7G_SPEC_TAIL};
fbInfoElementSpec_t kSpecV6[] = {
    L7G_SPEC_HEAD, L7G_SPEC("sourceIPv6Address", 16), L7G_SPEC("destinationIPv6Address", 16), L7G_SPEC_TAIL};

// 32 hex digits into out (33 bytes); the length written: 0 for an all-zero hash (none).
size_t hex16(const uint8_t* d, char* out) {
    static constexpr char kHex[] = "0123456789abcdef";
    bool any = false;
    for (unsigned i = 0; i < 16; ++i) {
        any = any || d[i] != 0;
    }
    if (!any) {
        return 0;
    }
    for (unsigned i = 0; i < 16; ++i) {
        out[2 * i] = kHex[d[i] >> 4];
        out[2 * i + 1] = kHex[d[i] & 15];
    }
    return 32;
}

fbVarfield_t var(const char* p, size_t n) {
    fbVarfield_t v;
    v.len = n;
    v.buf = reinterpret_cast<uint8_t*>(const_cast<char*>(p));
    return v;
}

std::string gerror_text(GError* e) {
    std::string s = e != nullptr && e->message != nullptr ? e->message : "unknown libfixbuf error";
    if (e != nullptr) {
        g_clear_error(&e);
    }
    return s;
}

} // namespace

struct IpfixExporter::Domain {
    uint32_t id = 0;
    fbSession_t* session = nullptr;
    fbExporter_t* exporter = nullptr;
    fBuf_t* fbuf = nullptr;
    std::vector<uint8_t> buf;        // where libfixbuf writes each message it emits
    uint16_t tid = 0;                // template of the data set in progress
    uint32_t records = 0;            // records in the message in progress
    bool content = false;            // the message in progress holds a set (templates or records)
    Clock::time_point first_content{};
    Clock::time_point templates_at{};
    uint32_t messages_since_templates = 0;
    bool templates_due = true;
};

IpfixExporter::IpfixExporter() = default;

IpfixExporter::~IpfixExporter() {
    for (auto& d : domains_) {
        if (d->fbuf != nullptr) {
            fBufFree(d->fbuf);  // frees the session and the exporter with it
        } else if (d->session != nullptr) {
            fbSessionFree(d->session);
        }
    }
    domains_.clear();
    if (model_ != nullptr) {
        fbInfoModelFree(static_cast<fbInfoModel_t*>(model_));
    }
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

std::string IpfixExporter::open(const IpfixConfig& cfg, unsigned workers, ndpi_detection_module_struct* names) {
    cfg_ = cfg;
    names_ = names;
    const std::string& t = cfg.target;
    const size_t colon = t.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == t.size()) {
        return "--ipfix: expected HOST:PORT, got '" + t + "'";
    }
    std::string host = t.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    addrinfo hints{};
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_protocol = IPPROTO_UDP;
    addrinfo* res = nullptr;
    if (int rc = getaddrinfo(host.c_str(), t.c_str() + colon + 1, &hints, &res); rc != 0 || res == nullptr) {
        return "--ipfix " + t + ": " + gai_strerror(rc);
    }
    fd_ = ::socket(res->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
    // Connected: the kernel reports the collector's ICMP port unreachable as ECONNREFUSED.
    const int rc = fd_ < 0 ? -1 : ::connect(fd_, res->ai_addr, res->ai_addrlen);
    const int e = errno;
    freeaddrinfo(res);
    if (rc != 0) {
        return "--ipfix " + t + ": " + std::strerror(e);
    }
    fbInfoModel_t* model = fbInfoModelAlloc();
    model_ = model;
    fbInfoModelAddElementArray(model, kElements);
    for (unsigned w = 0; w < workers; ++w) {
        auto d = std::make_unique<Domain>();
        d->id = cfg.domain_base + w;
        d->buf.resize(cfg.mtu);
        d->session = fbSessionAlloc(model);
        fbSessionSetDomain(d->session, d->id);
        GError* err = nullptr;
        for (auto [tid, spec] : {std::pair{ipfix::kTidV4, kSpecV4}, std::pair{ipfix::kTidV6, kSpecV6}}) {
            fbTemplate_t* tmpl = fbTemplateAlloc(model);
            if (!fbTemplateAppendSpecArray(tmpl, spec, 0, &err) ||
                fbSessionAddTemplate(d->session, TRUE, tid, tmpl, &err) == 0 ||
                fbSessionAddTemplate(d->session, FALSE, tid, tmpl, &err) == 0) {
                return "--ipfix: template: " + gerror_text(err);
            }
        }
        d->exporter = fbExporterAllocBuffer(d->buf.data(), cfg.mtu);
        d->fbuf = fBufAllocForExport(d->session, d->exporter);
        fBufSetAutomaticMode(d->fbuf, FALSE);
        domains_.push_back(std::move(d));
    }
    return {};
}

// The message in progress goes out of libfixbuf into the queue (even when the queue is full:
// its records were taken already; the queue's bound is checked before taking records).
bool IpfixExporter::emit(Domain& d) {
    if (!d.content) {
        return true;
    }
    GError* err = nullptr;
    if (!fBufEmit(d.fbuf, &err)) {
        log_warning("ctl.records", "--ipfix: cannot emit a message: " + gerror_text(err));
        c_.write_errors += d.records;
        c_.queued -= d.records;
    } else {
        const size_t len = fbExporterGetMsgLen(d.exporter);
        queue_.push_back({std::vector<uint8_t>(d.buf.begin(), d.buf.begin() + static_cast<long>(len)), d.records});
    }
    d.records = 0;
    d.content = false;
    d.tid = 0;
    ++d.messages_since_templates;
    return true;
}

// Templates at the start, every template_refresh_s and every template_messages messages.
bool IpfixExporter::maybe_templates(Domain& d, Clock::time_point now) {
    const auto refresh = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(cfg_.template_refresh_s));
    if (!d.templates_due && now - d.templates_at < refresh && d.messages_since_templates < cfg_.template_messages) {
        return true;
    }
    emit(d);
    // After a data set libfixbuf refuses the first template once (end of message: templates
    // start a message of their own); the message is out already, so the second try writes.
    for (int attempt = 0;; ++attempt) {
        GError* err = nullptr;
        if (fbSessionExportTemplates(d.session, &err)) {
            break;
        }
        const bool eom = g_error_matches(err, FB_ERROR_DOMAIN, FB_ERROR_EOM);
        const std::string why = gerror_text(err);
        if (!eom || attempt == 1) {
            log_warning("ctl.records", "--ipfix: cannot write the templates: " + why);
            return false;
        }
    }
    d.content = true;
    d.first_content = now;
    d.templates_at = now;
    d.templates_due = false;
    d.messages_since_templates = 0;
    d.tid = 0;
    return true;
}

bool IpfixExporter::append(Domain& d, const dp::FlowRecord& r, Clock::time_point now) {
    const unsigned c = r.client_slot & 1u;
    const unsigned s = c ^ 1u;
    ndpi_protocol p{};
    p.master_protocol = r.master_proto;
    p.app_protocol = r.app_proto;
    p.category = static_cast<ndpi_protocol_category_t>(r.category);
    char nb[128];
    const char* proto_name = ndpi_protocol2name(names_, p, nb, sizeof(nb));
    const char* cat = ndpi_category_get_name(names_, p.category);
    cat = cat != nullptr ? cat : "";
    std::string risk_names;
    uint16_t score = 0;
    if (r.risk != 0) {
        for (unsigned i = 0; i < 64; ++i) {
            if ((r.risk >> i) & 1u) {
                risk_names += risk_names.empty() ? "" : ",";
                risk_names += ndpi_risk2str(static_cast<ndpi_risk_enum>(i));
            }
        }
        uint16_t cs = 0;
        uint16_t ss = 0;
        score = ndpi_risk2score(r.risk, &cs, &ss);
    }
    const dp::PolicySnapshot* pol = verdict_names_.snapshot();
    const std::string verdict = verdict_name(r.verdict, pol);
    const std::string reason = verdict_names_.reasons != nullptr && r.reason != 0 ? verdict_names_.reasons->name(r.reason) : std::string();
    char ja3c[33];
    char ja3s[33];
    const size_t ja3c_len = hex16(r.ja3c, ja3c);
    const size_t ja3s_len = hex16(r.ja3s, ja3s);

    auto fill = [&](auto& rec) {
        rec.start_ms = r.first_ns / 1000000u;
        rec.end_ms = r.last_ns / 1000000u;
        // Delta counts (collectors add them up): since the flow's previous interim record.
        rec.octets = r.bytes[c] - r.reported_bytes[c];
        rec.packets = r.packets[c] - r.reported_packets[c];
        rec.rev_octets = r.bytes[s] - r.reported_bytes[s];
        rec.rev_packets = r.packets[s] - r.reported_packets[s];
        rec.risk = r.risk;
        rec.risk_excepted = r.risk & r.risk_excepted;
        rec.proto_name = var(proto_name, std::strlen(proto_name));
        rec.category = var(cat, std::strlen(cat));
        rec.risk_names = var(risk_names.data(), risk_names.size());
        rec.verdict = var(verdict.data(), verdict.size());
        rec.reason = var(reason.data(), reason.size());
        rec.host = var(r.host, strnlen(r.host, sizeof(r.host)));
        rec.ja3c = var(ja3c, ja3c_len);
        rec.ja3s = var(ja3s, ja3s_len);
        rec.risk32 = static_cast<uint32_t>(r.risk);
        rec.sport = r.key.port[c];
        rec.dport = r.key.port[s];
        // The key holds outer VID << 12 | inner VID: one tag is vlanId, two are vlanId
        // (the outer, service tag) and dot1qCustomerVlanId (the inner one).
        // The top byte is a tunnelled flow's encapsulation (README "Tunnels"), not a tag.
        const uint32_t tags = r.key.vlan & 0x00ffffffu;
        rec.vlan = static_cast<uint16_t>((tags >> 12) != 0 ? (tags >> 12) & 0xfffu : tags & 0xfffu);
        rec.inner_vlan = static_cast<uint16_t>((tags >> 12) != 0 ? tags & 0xfffu : 0u);
        const unsigned enc = r.key.vlan >> 24;
        const char* encap = enc == 0 ? "" : enc < static_cast<unsigned>(dp::Encap::Count) ? dp::kEncapNames[enc] : "unknown";
        rec.encap = var(encap, std::strlen(encap));
        rec.tunnel = r.key.tunnel;
        rec.enforced = r.unenforced != 0 ? 0 : 1;
        rec.l7_proto = r.app_proto != 0 ? r.app_proto : r.master_proto;
        rec.score = score;
        rec.l4_proto = r.key.proto;
        rec.end_reason = r.end == static_cast<uint8_t>(dp::FlowEnd::Shutdown) ? 4   // forced end
                         : r.end == static_cast<uint8_t>(dp::FlowEnd::Reused) ? 3   // end of flow detected
                         : r.end == static_cast<uint8_t>(dp::FlowEnd::Active) ? 2   // active timeout
                                                                              : 1;  // idle timeout
    };
    RecV4 v4{};
    RecV6 v6{};
    uint8_t* base;
    size_t size;
    uint16_t tid;
    if (r.key.ip_version == 4) {
        fill(v4);
        uint32_t a;
        std::memcpy(&a, r.key.addr[c], 4);
        v4.src = ntohl(a);
        std::memcpy(&a, r.key.addr[s], 4);
        v4.dst = ntohl(a);
        base = reinterpret_cast<uint8_t*>(&v4);
        size = sizeof(v4);
        tid = ipfix::kTidV4;
    } else {
        fill(v6);
        std::memcpy(v6.src, r.key.addr[c], 16);
        std::memcpy(v6.dst, r.key.addr[s], 16);
        base = reinterpret_cast<uint8_t*>(&v6);
        size = sizeof(v6);
        tid = ipfix::kTidV6;
    }
    // libfixbuf (manual mode) answers end of message when the message is full, and once when
    // a data set would follow templates (they end their message): out with it, and again.
    for (int attempt = 0; attempt < 3; ++attempt) {
        if (!maybe_templates(d, now)) {
            return false;
        }
        GError* err = nullptr;
        if (d.tid != tid) {
            // libfixbuf ignores setting the export template it has already and would append
            // the records to the template set just written: switching through the other
            // template closes that set first.
            const uint16_t other = tid == ipfix::kTidV4 ? ipfix::kTidV6 : ipfix::kTidV4;
            if ((d.tid == 0 && !fBufSetExportTemplate(d.fbuf, other, &err)) ||
                !fBufSetInternalTemplate(d.fbuf, tid, &err) || !fBufSetExportTemplate(d.fbuf, tid, &err)) {
                log_warning("ctl.records", "--ipfix: " + gerror_text(err));
                return false;
            }
            d.tid = tid;
        }
        if (fBufAppend(d.fbuf, base, size, &err)) {
            if (!d.content) {
                d.first_content = now;
            }
            d.content = true;
            ++d.records;
            return true;
        }
        const bool eom = g_error_matches(err, FB_ERROR_DOMAIN, FB_ERROR_EOM);
        const std::string why = gerror_text(err);
        if (!eom || attempt == 2) {
            log_warning("ctl.records", "--ipfix: cannot encode a record: " + why);
            return false;
        }
        emit(d);  // the record starts the next message
    }
    return false;
}

size_t IpfixExporter::offer(const dp::FlowRecord* recs, size_t n) {
    if (domains_.empty()) {
        return 0;
    }
    const Clock::time_point now = Clock::now();
    size_t k = 0;
    bool tried = false;
    for (; k < n; ++k) {
        if (queue_.size() >= kMaxQueuedMessages) {
            if (!tried) {  // once per offer, as the flow log's file: room by sending
                tried = true;
                send_queued(Clock::now() + kSendSlice);
            }
            if (queue_.size() >= kMaxQueuedMessages) {
                break;  // the collector's path is slower than the records: the stream counts the rest
            }
        }
        const dp::FlowRecord& r = recs[k];
        Domain& d = *domains_[r.worker < domains_.size() ? r.worker : 0];
        ++c_.queued;
        if (!append(d, r, now)) {
            --c_.queued;
            ++c_.write_errors;
        }
    }
    // Messages leave as they are made (a batch of records makes two or three), bounded by
    // kSendSlice: under a backlog the record stream takes records until its tick's budget
    // is spent and its flush() then has no time left, so sending only there would let one
    // message a tick out and refuse the rest (sink_full) however fast the collector is.
    if (!queue_.empty()) {
        send_queued(Clock::now() + kSendSlice);
    }
    return k;
}

void IpfixExporter::send_queued(Clock::time_point deadline) {
    bool first = true;
    while (!queue_.empty() && (first || Clock::now() < deadline)) {
        first = false;
        Message& m = queue_.front();
        const ssize_t w = ::send(fd_, m.bytes.data(), m.bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            return;  // the socket buffer is full: tried again next flush
        }
        if (w < 0) {
            const int e = errno;
            ++send_errors_;
            c_.write_errors += m.records;
            if (e != last_errno_) {
                log_warning("ctl.records", "--ipfix " + cfg_.target + ": " + std::strerror(e) +
                                               " (messages lost, counted; l7gate keeps sending)");
            }
            last_errno_ = e;
        } else {
            ++messages_sent_;
            c_.sent += m.records;
            if (last_errno_ != 0) {
                log_info("ctl.records", "--ipfix " + cfg_.target + ": sending again");
            }
            last_errno_ = 0;
        }
        c_.queued -= m.records;
        queue_.pop_front();
    }
}

void IpfixExporter::flush(Clock::time_point deadline) {
    const Clock::time_point now = Clock::now();
    for (auto& d : domains_) {
        maybe_templates(*d, now);  // the timer refresh comes even when no flow ends
        if (d->content && now - d->first_content >= kMaxDelay) {
            emit(*d);
        }
    }
    send_queued(deadline);
}

void IpfixExporter::close(Clock::time_point deadline) {
    for (auto& d : domains_) {
        emit(*d);
    }
    send_queued(deadline);
    c_.abandoned += c_.queued;
    c_.queued = 0;
    queue_.clear();
}

} // namespace l7gate::ctl
