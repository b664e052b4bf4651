// IpfixExporter (records/ipfix_export.hpp) on loopback UDP: message framing and size, the
// accounting when the collector is down, and the encode rate of one core (printed; the
// figure perf/RESULTS.md quotes).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "control/records/ipfix_export.hpp"
#include "control_fixtures.hpp"

namespace l7gate::ctl {
namespace {

using Clock = RecordSink::Clock;

struct Udp {
    int fd = -1;
    uint16_t port = 0;
    explicit Udp(bool keep) {
        fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
        socklen_t l = sizeof(a);
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &l);
        port = ntohs(a.sin_port);
        if (!keep) {  // a port nothing listens on: the kernel answers port unreachable
            ::close(fd);
            fd = -1;
        } else {
            int sz = 8 << 20;
            ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
        }
    }
    ~Udp() {
        if (fd >= 0) {
            ::close(fd);
        }
    }
    std::vector<std::vector<uint8_t>> drain() {
        std::vector<std::vector<uint8_t>> out;
        uint8_t b[70000];
        for (ssize_t n; (n = ::recv(fd, b, sizeof(b), 0)) > 0;) {
            out.emplace_back(b, b + n);
        }
        return out;
    }
};

dp::FlowRecord record(unsigned i) {
    dp::FlowRecord r{};
    r.key.ip_version = (i % 4 == 0) ? 6 : 4;
    r.key.proto = 6;
    if (r.key.ip_version == 4) {
        const uint8_t a[4] = {198, 18, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
        const uint8_t b[4] = {198, 19, 0, 1};
        std::memcpy(r.key.addr[0], a, 4);
        std::memcpy(r.key.addr[1], b, 4);
    } else {
        r.key.addr[0][0] = 0x20;
        r.key.addr[0][15] = static_cast<uint8_t>(i);
        r.key.addr[1][0] = 0x20;
        r.key.addr[1][15] = 1;
    }
    r.key.port[0] = static_cast<uint16_t>(40000 + i % 20000);
    r.key.port[1] = 443;
    r.first_ns = 1700000000000000000ull + i;
    r.last_ns = r.first_ns + 5000000;
    r.packets[0] = 10;
    r.packets[1] = 12;
    r.bytes[0] = 1500;
    r.bytes[1] = 9000;
    r.master_proto = 91;
    r.app_proto = 126;
    r.category = 5;
    r.risk = (1ull << 9) | (1ull << 40);
    r.worker = static_cast<uint16_t>(i % 2);
    std::snprintf(r.host, sizeof(r.host), "host%u.example.com", i);
    r.ja3c[0] = 0xab;
    return r;
}

std::vector<dp::FlowRecord> records(unsigned n) {
    std::vector<dp::FlowRecord> v;
    for (unsigned i = 0; i < n; ++i) {
        v.push_back(record(i));
    }
    return v;
}

IpfixConfig config(uint16_t port, uint16_t mtu = 1400) {
    IpfixConfig c;
    c.target = "127.0.0.1:" + std::to_string(port);
    c.mtu = mtu;
    c.domain_base = 10;
    return c;
}

TEST(IpfixExport, MessagesFitTheMtuWithSequencePerDomain) {
    Udp coll(true);
    IpfixExporter x;
    ASSERT_EQ(x.open(config(coll.port, 512), 2, test::shared_names().module()), "");
    std::vector<dp::FlowRecord> recs;
    for (unsigned i = 0; i < 100; ++i) {
        recs.push_back(record(i));
    }
    ASSERT_EQ(x.offer(recs.data(), recs.size()), recs.size());
    x.close(Clock::now() + std::chrono::seconds(1));
    const auto msgs = coll.drain();
    ASSERT_FALSE(msgs.empty());
    uint32_t seq[2] = {0, 0};
    for (const auto& m : msgs) {
        ASSERT_GE(m.size(), 16u);
        EXPECT_LE(m.size(), 512u);
        EXPECT_EQ((m[0] << 8) | m[1], 10);                     // version
        EXPECT_EQ(static_cast<size_t>((m[2] << 8) | m[3]), m.size());  // length
        const uint32_t s = (uint32_t{m[8]} << 24) | (uint32_t{m[9]} << 16) | (uint32_t{m[10]} << 8) | m[11];
        const uint32_t dom = (uint32_t{m[12]} << 24) | (uint32_t{m[13]} << 16) | (uint32_t{m[14]} << 8) | m[15];
        ASSERT_TRUE(dom == 10 || dom == 11) << dom;
        EXPECT_GE(s, seq[dom - 10]);  // exact sequences: tests/integration/test_ipfix.py
        seq[dom - 10] = s;
        // Count the data records: walk the sets (template sets have id 2).
        for (size_t off = 16; off + 4 <= m.size();) {
            const unsigned id = (m[off] << 8) | m[off + 1];
            const unsigned len = (m[off + 2] << 8) | m[off + 3];
            ASSERT_GE(len, 4u);
            if (id >= 256) {
                // Records are variable-length: count them by the sequence of the next message
                // instead; here only check the set stays inside the message.
                EXPECT_LE(off + len, m.size());
            }
            off += len;
        }
    }
    const SinkCounters c = x.counters();
    EXPECT_EQ(c.sent, 100u);
    EXPECT_EQ(c.write_errors, 0u);
    EXPECT_EQ(c.queued, 0u);
}

TEST(IpfixExport, DownCollectorCountsSendErrorsAndNeverWaits) {
    Udp down(false);
    IpfixExporter x;
    ASSERT_EQ(x.open(config(down.port), 1, test::shared_names().module()), "");
    const std::vector<dp::FlowRecord> recs = records(64);
    size_t offered = 0;
    double worst_ms = 0;
    for (int round = 0; round < 50; ++round) {
        const auto t0 = Clock::now();
        offered += x.offer(recs.data(), recs.size());
        x.close(Clock::now());  // every queued message tried at once
        worst_ms = std::max(worst_ms, std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    const SinkCounters c = x.counters();
    EXPECT_GT(c.write_errors, 0u) << "ECONNREFUSED not counted";
    EXPECT_GT(x.send_errors(), 0u);
    EXPECT_EQ(offered, c.sent + c.write_errors + c.abandoned + c.queued);
    EXPECT_LT(worst_ms, 50.0);
}

// The record stream under a backlog takes records until its tick's time is spent, so the
// flush() after it comes with a deadline already past: one message a tick. The sink sends what
// it makes as it goes, so a live collector gets every record and nothing is refused.
TEST(IpfixExport, SendsAsItGoesWhenFlushHasNoTimeLeft) {
    Udp coll(true);
    IpfixExporter x;
    ASSERT_EQ(x.open(config(coll.port), 2, test::shared_names().module()), "");
    const std::vector<dp::FlowRecord> recs = records(256);
    constexpr unsigned kRounds = 400;  // ~9,000 messages: twice the queue's bound
    size_t n = 0;
    for (unsigned r = 0; r < kRounds; ++r) {
        n += x.offer(recs.data(), recs.size());
        x.flush(Clock::now() - std::chrono::milliseconds(1));
        coll.drain();
    }
    EXPECT_EQ(n, size_t{kRounds} * recs.size()) << "records refused (sink_full) with a collector keeping up";
    x.close(Clock::now() + std::chrono::seconds(1));
    coll.drain();
    EXPECT_EQ(x.counters().sent, n);
}

TEST(IpfixExport, EncodeRateOnOneCore) {
    Udp coll(true);
    IpfixExporter x;
    ASSERT_EQ(x.open(config(coll.port), 2, test::shared_names().module()), "");
    const std::vector<dp::FlowRecord> recs = records(256);
    constexpr unsigned kRounds = 400;  // 102,400 records
    const auto t0 = Clock::now();
    size_t n = 0;
    for (unsigned r = 0; r < kRounds; ++r) {
        n += x.offer(recs.data(), recs.size());
        x.flush(Clock::now() + std::chrono::milliseconds(1));
        coll.drain();
    }
    x.close(Clock::now() + std::chrono::seconds(1));
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    const SinkCounters c = x.counters();
    std::printf("IPFIX encode+send: %zu records in %.3f s = %.0f records/s on one core (%llu messages)\n", n, s,
                static_cast<double>(n) / s, static_cast<unsigned long long>(x.messages_sent()));
    EXPECT_EQ(n, size_t{kRounds} * recs.size());
    EXPECT_EQ(c.sent + c.write_errors + c.abandoned, n);
}

} // namespace
} // namespace l7gate::ctl
