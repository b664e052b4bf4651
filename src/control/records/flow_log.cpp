#include "control/records/flow_log.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include <cerrno>
#include <cinttypes>
#include <cstring>

#include <ndpi_api.h>

#include "control/base/json.hpp"
#include "control/base/log.hpp"
#include "control/policy/compiler.hpp"
#include "dataplane/packet_parser.hpp"

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
    append_u64(s, r.key.vlan & 0x00ffffffu);  // the top byte is the encapsulation
    if (const unsigned enc = r.key.vlan >> 24; enc != 0) {
        // A tunnelled flow (README "Tunnels"): the encapsulation that carried it and the
        // tunnel discriminator that keeps it apart from the same 5-tuple in other tunnels.
        s += ",\"encap\":";
        json_escape_to(s, enc < static_cast<unsigned>(dp::Encap::Count) ? dp::kEncapNames[enc] : "unknown");
        s += ",\"tunnel\":";
        append_u64(s, r.key.tunnel);
        if (r.outer_version == 4 || r.outer_version == 6) {
            // The carrier's addresses (none for PPPoE or MPLS alone): the source and
            // destination of the IP header that carried the flow's first packet.
            s += ",\"outer_src\":";
            json_escape_to(s, addr_str(r.outer_src, r.outer_version));
            s += ",\"outer_dst\":";
            json_escape_to(s, addr_str(r.outer_dst, r.outer_version));
        }
    }
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
                      : r.end == static_cast<uint8_t>(dp::FlowEnd::Active) ? "active"  // not offered: wants_interim()
                                                                           : "idle");
    s += ",\"worker\":";
    append_u64(s, r.worker);
    s += ",\"verdict\":";
    json_escape_to(s, verdict_name(r.verdict, policy));
    s += ",\"verdict_reason\":";
    json_escape_to(s, reasons != nullptr && r.reason != 0 ? reasons->name(r.reason) : std::string());
    s += r.unenforced != 0 ? ",\"enforced\":false" : ",\"enforced\":true";
    s += "}\n";
    return s;
}

FlowLog::~FlowLog() { close(); }

std::string FlowLog::open(const std::string& path, ndpi_detection_module_struct* names, size_t buffer_bytes) {
    names_ = names;
    path_ = path;
    cap_ = buffer_bytes;
    if (path == "-") {
        stdout_ = true;
        fd_ = STDOUT_FILENO;
        struct stat st {};
        chunked_ = fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode);
        configured_ = true;
        return {};
    }
    if (std::string err = open_fd(true); !err.empty()) {
        return err;
    }
    configured_ = true;
    return {};
}

// first: at start-up, where an error other than a FIFO without reader stops l7gate (exit 2).
std::string FlowLog::open_fd(bool first) {
    const int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0640);
    if (fd < 0) {
        const int e = errno;
        ++c_.open_failures;
        next_open_ = Clock::now() + kRetryOpen;
        std::string option = std::string("--") + name_;
        std::replace(option.begin(), option.end(), '_', '-');
        if (e == ENXIO) {
            if (last_errno_ != ENXIO) {
                log_info("ctl.records", option + " " + path_ + ": a FIFO with no reader yet; opened again every " +
                                            std::to_string(kRetryOpen.count()) + " ms, records wait in memory");
            }
            last_errno_ = ENXIO;
            return {};
        }
        const std::string msg = "cannot open " + path_ + ": " + std::strerror(e);
        if (first) {
            return option + ": " + msg;
        }
        if (last_errno_ != e) {
            log_warning("ctl.records", option + ": " + msg + " (tried again every " +
                                           std::to_string(kRetryOpen.count()) + " ms)");
        }
        last_errno_ = e;
        return msg;
    }
    struct stat st {};
    // Not a regular file (a FIFO, a socket, a terminal): writes end on line ends, PIPE_BUF
    // at most, so a reader never sees half a line.
    chunked_ = fstat(fd, &st) != 0 || !S_ISREG(st.st_mode);
    fd_ = fd;
    if (last_errno_ != 0) {
        log_info("ctl.records", std::string(name_) + ": " + path_ + " open, writing");
    }
    last_errno_ = 0;
    return {};
}

void FlowLog::close_fd() {
    if (fd_ >= 0 && !stdout_) {
        ::close(fd_);
    }
    if (!stdout_) {
        fd_ = -1;
    }
}

void FlowLog::pop_written() {
    while (!lines_.empty() && lines_.front().end <= written_) {
        if (lines_.front().record) {
            ++c_.sent;
            --c_.queued;
        } else {
            ++c_.events_sent;
        }
        done_ = lines_.front().end;
        lines_.pop_front();
    }
    if (written_ == base_ + buf_.size()) {
        buf_.clear();
        base_ = written_;
    }
}

// The line being written cannot be finished where it started (its output is closed): the rest
// of it is dropped and counted; the output shows a line without its end.
void FlowLog::drop_partial_line() {
    if (!partial() || lines_.empty()) {
        return;
    }
    if (lines_.front().record) {
        ++c_.write_errors;
        --c_.queued;
    } else {
        ++c_.events_lost;
    }
    written_ = done_ = lines_.front().end;
    lines_.pop_front();
    pop_written();
}

void FlowLog::write_some(Clock::time_point deadline, bool to_line_end) {
    while (written_ < base_ + buf_.size()) {
        if (fd_ < 0) {
            if (stdout_ || Clock::now() < next_open_) {
                return;
            }
            open_fd(false);
            if (fd_ < 0) {
                return;
            }
        }
        const char* p = buf_.data() + (written_ - base_);
        size_t len = base_ + buf_.size() - written_;
        if (to_line_end) {
            len = lines_.front().end - written_;
        } else if (chunked_) {
            len = lines_.front().end - written_;  // the front line whole, even beyond PIPE_BUF
            for (size_t i = 1; i < lines_.size() && lines_[i].end - written_ <= PIPE_BUF; ++i) {
                len = lines_[i].end - written_;
            }
        } else {
            len = std::min<size_t>(len, size_t{1} << 20);
        }
        if (stdout_) {
            // stdout is not ours to make non-blocking: write when it can take PIPE_BUF bytes.
            pollfd pfd{fd_, POLLOUT, 0};
            if (::poll(&pfd, 1, 0) != 1 || (pfd.revents & POLLOUT) == 0) {
                return;
            }
        }
        const ssize_t w = ::write(fd_, p, len);
        if (w > 0) {
            written_ += static_cast<uint64_t>(w);
            pop_written();
            last_errno_ = 0;
            if (to_line_end && !partial()) {
                return;
            }
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;  // a slow reader: the bytes stay
        } else {
            const int e = w < 0 ? errno : EIO;
            if (e != last_errno_) {
                log_warning("ctl.records", std::string(name_) + ": writing " + path_ + ": " + std::strerror(e));
            }
            last_errno_ = e;
            if (!stdout_ && (e == EPIPE || e == EBADF || e == EIO || e == EINVAL)) {
                // The reader went away (or the output broke): open it again later; a line cut
                // here is lost (counted), the lines after it wait.
                drop_partial_line();
                close_fd();
                next_open_ = Clock::now() + kRetryOpen;
            }
            // Disk full and the like: everything stays queued, tried again next flush.
            return;
        }
        if (Clock::now() >= deadline) {
            return;
        }
    }
}

bool FlowLog::append_line(const std::string& line, bool record) {
    if (written_ > base_ && written_ - base_ >= buf_.size() / 2) {
        buf_.erase(0, written_ - base_);
        base_ = written_;
    }
    buf_ += line;
    lines_.push_back({base_ + buf_.size(), record});
    if (record) {
        ++c_.queued;
    }
    return true;
}

size_t FlowLog::offer(const dp::FlowRecord* recs, size_t n) {
    if (!configured_) {
        return 0;
    }
    constexpr size_t kMinLine = 400;  // a record line is longer (~450 bytes with every field empty)
    bool tried = false;
    // Room for len more bytes, writing once (per offer) to make it.
    auto fits = [&](size_t len) {
        if (base_ + buf_.size() - written_ + len <= cap_) {
            return true;
        }
        if (tried) {
            return false;
        }
        tried = true;
        write_some(Clock::now(), false);
        return base_ + buf_.size() - written_ + len <= cap_;
    };
    const dp::PolicySnapshot* policy = verdict_names_.snapshot();
    for (size_t i = 0; i < n; ++i) {
        if (!fits(kMinLine)) {
            return i;
        }
        const std::string line = format_flow_record(recs[i], names_, verdict_names_.reasons, policy);
        if (!fits(line.size())) {
            return i;
        }
        append_line(line, true);
    }
    return n;
}

void FlowLog::write_line(const std::string& line) {
    if (!configured_) {
        return;
    }
    if (base_ + buf_.size() - written_ + line.size() > cap_) {
        write_some(Clock::now(), false);
        if (base_ + buf_.size() - written_ + line.size() > cap_) {
            ++c_.events_lost;
            return;
        }
    }
    append_line(line, false);
    write_some(Clock::now(), false);
}

void FlowLog::flush(Clock::time_point deadline) {
    if (!configured_) {
        return;
    }
    if (reopen_pending_) {
        write_some(deadline, true);
        if (!partial()) {
            reopen();
        }
    }
    if (!reopen_pending_) {
        write_some(deadline, false);
    }
}

std::string FlowLog::reopen() {
    if (!configured_) {
        return "not open";
    }
    if (stdout_) {
        return "stdout, nothing to reopen";
    }
    if (partial() && fd_ >= 0) {
        write_some(Clock::now(), true);  // finish the line under way where it started
    }
    if (partial()) {
        reopen_pending_ = true;
        return "reopen pending: a line is half written, reopened once it is out";
    }
    reopen_pending_ = false;
    close_fd();
    ++c_.reopens;
    last_errno_ = 0;
    const std::string err = open_fd(false);
    if (!err.empty()) {
        return err;
    }
    return fd_ < 0 ? "FIFO without a reader, opened once one comes" : std::string();
}

void FlowLog::close(Clock::time_point deadline) {
    if (!configured_) {
        return;
    }
    write_some(deadline, false);
    while (written_ < base_ + buf_.size() && Clock::now() < deadline) {
        const uint64_t before = written_;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (fd_ >= 0 && chunked_) {
            pollfd pfd{fd_, POLLOUT, 0};
            (void)::poll(&pfd, 1, static_cast<int>(std::clamp<int64_t>(left.count(), 1, 10)));
        }
        write_some(deadline, false);
        if (written_ == before) {
            ::usleep(1000);  // no reader, disk full: try again until the deadline
        }
    }
    // What could not be written within the bound is lost, counted (a line cut short included).
    for (const Line& l : lines_) {
        if (l.record) {
            ++c_.abandoned;
        } else {
            ++c_.events_lost;
        }
    }
    lines_.clear();
    c_.queued = 0;
    buf_.clear();
    base_ = written_ = done_;
    close_fd();
    if (stdout_) {
        fd_ = -1;
    }
    configured_ = false;
}

SinkCounters FlowLog::counters() const { return c_; }

} // namespace l7gate::ctl
