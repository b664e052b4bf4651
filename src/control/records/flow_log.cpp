#include "control/records/flow_log.hpp"

#include <arpa/inet.h>

#include <cerrno>
#include <cinttypes>
#include <cstring>

#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <ndpi_api.h>

#include "control/base/json.hpp"
#include "control/policy/compiler.hpp"

namespace l7gate::ctl {

namespace {

void append_u64(std::string& s, uint64_t v) {
    char b[24];
    std::snprintf(b, sizeof(b), "%" PRIu64, v);
    s += b;
}

void append_ts(std::string& s, uint64_t ns) {
    char b[32];
    std::snprintf(b, sizeof(b), "%" PRIu64 ".%06" PRIu64, ns / 1000000000u, (ns / 1000u) % 1000000u);
    s += b;
}

std::string addr_str(const uint8_t* a, uint8_t version) {
    char b[INET6_ADDRSTRLEN];
    inet_ntop(version == 4 ? AF_INET : AF_INET6, a, b, sizeof(b));
    return b;
}

std::string md5_hex(const uint8_t* d) {
    static constexpr char kHex[] = "0123456789abcdef";
    bool any = false;
    for (unsigned i = 0; i < 16; ++i) {
        any = any || d[i] != 0;
    }
    if (!any) {
        return {};
    }
    std::string s;
    for (unsigned i = 0; i < 16; ++i) {
        s += kHex[d[i] >> 4];
        s += kHex[d[i] & 15];
    }
    return s;
}

const char* l4_name(uint8_t proto) {
    switch (proto) {
    case 6:
        return "TCP";
    case 17:
        return "UDP";
    case 1:
        return "ICMP";
    case 58:
        return "ICMPv6";
    default:
        return nullptr;
    }
}

} // namespace

std::string verdict_name(uint8_t verdict, const dp::PolicySnapshot* policy) {
    if (verdict == dp::cached::kDrop) {
        return "drop";
    }
    if (verdict == dp::cached::kReject) {
        return "reject";
    }
    if (!dp::cached::shaped(verdict)) {
        return "pass";
    }
    const unsigned sh = dp::cached::shaper(verdict);
    return std::string(dp::cached::police(verdict) ? "police:" : "shape:") +
           (policy != nullptr && sh < policy->shapers.size() ? policy->shapers[sh].name : std::to_string(sh));
}

std::string format_flow_record(const dp::FlowRecord& r, ndpi_detection_module_struct* names,
                               const ReasonRegistry* reasons, const dp::PolicySnapshot* policy) {
    const unsigned c = r.client_slot & 1u;
    const unsigned sv = c ^ 1u;
    std::string s;
    s.reserve(512);
    s += "{\"ts_first\":";
    append_ts(s, r.first_ns);
    s += ",\"ts_last\":";
    append_ts(s, r.last_ns);
    s += ",\"vlan\":";
    append_u64(s, r.key.vlan);
    s += ",\"ip_version\":";
    append_u64(s, r.key.ip_version);
    s += ",\"l4_proto\":";
    if (const char* n = l4_name(r.key.proto); n != nullptr) {
        json_escape_to(s, n);
    } else {
        json_escape_to(s, std::to_string(r.key.proto));
    }
    s += ",\"src_ip\":";
    json_escape_to(s, addr_str(r.key.addr[c], r.key.ip_version));
    s += ",\"src_port\":";
    append_u64(s, r.key.port[c]);
    s += ",\"dst_ip\":";
    json_escape_to(s, addr_str(r.key.addr[sv], r.key.ip_version));
    s += ",\"dst_port\":";
    append_u64(s, r.key.port[sv]);

    ndpi_protocol p{};
    p.master_protocol = r.master_proto;
    p.app_protocol = r.app_proto;
    p.category = static_cast<ndpi_protocol_category_t>(r.category);
    char buf[128];
    s += ",\"l7_proto\":";
    json_escape_to(s, ndpi_protocol2name(names, p, buf, sizeof(buf)));
    s += ",\"l7_proto_id\":";
    json_escape_to(s, ndpi_protocol2id(names, p, buf, sizeof(buf)));
    s += ",\"category\":";
    const char* cat = ndpi_category_get_name(names, p.category);
    json_escape_to(s, cat != nullptr ? cat : "");
    s += ",\"host\":";
    json_escape_to(s, std::string_view(r.host, strnlen(r.host, sizeof(r.host))));
    s += ",\"ja3c\":";
    json_escape_to(s, md5_hex(r.ja3c));
    s += ",\"ja3s\":";
    json_escape_to(s, md5_hex(r.ja3s));
    s += ",\"tls_version\":";
    if (r.tls_version != 0) {
        uint8_t unknown = 0;
        json_escape_to(s, ndpi_ssl_version2str(buf, sizeof(buf), r.tls_version, &unknown));
    } else {
        s += "\"\"";
    }
    s += ",\"risks\":[";
    bool first = true;
    for (unsigned i = 0; i < 64; ++i) {
        if ((r.risk >> i) & 1u) {
            if (!first) {
                s += ',';
            }
            first = false;
            json_escape_to(s, ndpi_risk2str(static_cast<ndpi_risk_enum>(i)));
        }
    }
    uint16_t cs = 0;
    uint16_t ss = 0;
    const uint16_t score = ndpi_risk2score(r.risk, &cs, &ss);
    s += "],\"risks_excepted\":[";
    first = true;
    for (unsigned i = 0; i < 64; ++i) {
        if ((r.risk & r.risk_excepted) >> i & 1u) {
            if (!first) {
                s += ',';
            }
            first = false;
            json_escape_to(s, ndpi_risk2str(static_cast<ndpi_risk_enum>(i)));
        }
    }
    s += "],\"risk_score\":";
    append_u64(s, score);
    s += ",\"risk_score_client\":";
    append_u64(s, cs);
    s += ",\"risk_score_server\":";
    append_u64(s, ss);
    s += ",\"c2s_packets\":";
    append_u64(s, r.packets[c]);
    s += ",\"c2s_bytes\":";
    append_u64(s, r.bytes[c]);
    s += ",\"s2c_packets\":";
    append_u64(s, r.packets[sv]);
    s += ",\"s2c_bytes\":";
    append_u64(s, r.bytes[sv]);
    s += ",\"end\":";
    json_escape_to(s, r.end == static_cast<uint8_t>(dp::FlowEnd::Shutdown) ? "shutdown"
                      : r.end == static_cast<uint8_t>(dp::FlowEnd::Reused) ? "reused"
                                                                           : "idle");
    s += ",\"worker\":";
    append_u64(s, r.worker);
    s += ",\"verdict\":";
    json_escape_to(s, verdict_name(r.verdict, policy));
    s += ",\"verdict_reason\":";
    json_escape_to(s, reasons != nullptr && r.reason != 0 ? reasons->name(r.reason) : std::string());
    s += "}\n";
    return s;
}

FlowLog::~FlowLog() { close(); }

std::string FlowLog::open(const std::string& path, ndpi_detection_module_struct* names) {
    names_ = names;
    if (path == "-") {
        out_ = stdout;
        own_ = false;
    } else {
        out_ = std::fopen(path.c_str(), "w");
        if (out_ == nullptr) {
            return "--flow-log: cannot open " + path + ": " + std::strerror(errno);
        }
        own_ = true;
    }
    return {};
}

void FlowLog::write_line(const std::string& line) {
    if (out_ != nullptr) {
        std::fwrite(line.data(), 1, line.size(), out_);
        std::fflush(out_);
    }
}

size_t FlowLog::drain() {
    if (out_ == nullptr) {
        return 0;
    }
    constexpr unsigned kBatch = 64;
    dp::FlowRecord recs[kBatch];
    size_t total = 0;
    for (rte_ring* ring : rings_) {
        unsigned n;
        while ((n = rte_ring_sc_dequeue_burst_elem(ring, recs, sizeof(dp::FlowRecord), kBatch, nullptr)) > 0) {
            for (unsigned i = 0; i < n; ++i) {
                const std::string line = format_flow_record(recs[i], names_, reasons_,
                                                            policy_ != nullptr ? policy_->load(std::memory_order_acquire) : nullptr);
                std::fwrite(line.data(), 1, line.size(), out_);
            }
            total += n;
        }
    }
    if (total != 0) {
        std::fflush(out_);
        written_ += total;
    }
    return total;
}

void FlowLog::close() {
    if (out_ != nullptr && own_) {
        std::fclose(out_);
    } else if (out_ != nullptr) {
        std::fflush(out_);
    }
    out_ = nullptr;
}

} // namespace l7gate::ctl
