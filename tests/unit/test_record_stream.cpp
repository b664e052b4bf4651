// The flow-record stream (control/record_stream.hpp) and its JSON Lines sink (FlowLog):
//   - one poll() takes at most Budget::records records and stops after Budget::time;
//   - a sink that refuses loses those records for itself only, counted exactly (sink_full),
//     while the other sinks get every record;
//   - the file sink never blocks on a FIFO: without a reader it opens later, with a reader that
//     does not read it buffers up to its bound and then refuses; lines are never torn; what is
//     left at close is counted (shutdown); offered = refused + sent + errors + abandoned + queued;
//   - the file is opened for append (a restart keeps the old lines) and reopen() follows a
//     rename (logrotate): no record lost, none twice.
// No EAL: the rings are rte_ring_init()ed in plain memory, as in the TSan handoff test.

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "control/records/flow_log.hpp"
#include "control/observe/metrics.hpp"
#include "control/policy/compiler.hpp"
#include "control/base/ndpi_names.hpp"
#include "control/records/record_stream.hpp"
#include "control/observe/stats_report.hpp"
#include "control_fixtures.hpp"

namespace l7gate::test {
namespace {

using Clock = std::chrono::steady_clock;

ctl::NdpiNames& names() { return shared_names(); }

struct Ring : HeapRing {
    explicit Ring(unsigned size, const char* name = "rs_test") : HeapRing(sizeof(dp::FlowRecord), size, name) {}
    // Enqueues n records numbered from `first` (the number in the source port and packets[0]).
    void fill(unsigned first, unsigned n) {
        for (unsigned i = first; i < first + n; ++i) {
            dp::FlowRecord rec{};
            rec.key.ip_version = 4;
            rec.key.proto = 17;
            rec.key.addr[0][0] = 198;
            rec.key.addr[1][0] = 198;
            rec.key.port[0] = static_cast<uint16_t>(i);
            rec.packets[0] = i;
            ASSERT_EQ(rte_ring_sp_enqueue_elem(r, &rec, sizeof(rec)), 0);
        }
    }
};

// A sink that takes `limit` records in all (then refuses), optionally slowly.
class CountingSink : public ctl::RecordSink {
public:
    explicit CountingSink(uint64_t limit = UINT64_MAX, std::chrono::microseconds per_record = {})
        : limit_(limit), per_record_(per_record) {}
    const char* name() const override { return "counting"; }
    size_t offer(const dp::FlowRecord* recs, size_t n) override {
        size_t k = 0;
        while (k < n && c_.sent < limit_) {
            if (per_record_.count() != 0) {
                const auto until = Clock::now() + per_record_;
                while (Clock::now() < until) {
                }
            }
            seen.push_back(recs[k].packets[0]);
            ++c_.sent;
            ++k;
        }
        return k;
    }
    void flush(Clock::time_point) override { ++flushes; }
    std::string reopen() override {
        ++c_.reopens;
        return {};
    }
    void close(Clock::time_point) override {}
    ctl::SinkCounters counters() const override { return c_; }
    bool wants_interim() const override { return interim; }

    std::vector<uint64_t> seen;
    bool interim = false;
    unsigned flushes = 0;

private:
    uint64_t limit_;
    std::chrono::microseconds per_record_;
    ctl::SinkCounters c_;
};

std::string temp_dir() {
    char tmpl[] = "/tmp/l7gate-records-XXXXXX";
    const char* d = mkdtemp(tmpl);
    return d != nullptr ? d : "/tmp";
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> v;
    size_t at = 0;
    while (at < text.size()) {
        const size_t nl = text.find('\n', at);
        v.push_back(text.substr(at, nl == std::string::npos ? std::string::npos : nl + 1 - at));
        at = nl == std::string::npos ? text.size() : nl + 1;
    }
    return v;
}

std::string read_all(const std::string& path) {
    std::ifstream f(path);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

// The "src_port" of a flow-log line (the record's number in these tests).
long src_port(const std::string& line) {
    const size_t at = line.find("\"src_port\":");
    return at == std::string::npos ? -1 : std::strtol(line.c_str() + at + 11, nullptr, 10);
}

TEST(RecordStream, TakesAtMostTheRecordBudget) {
    Ring ring(16384);
    ring.fill(0, 10000);
    CountingSink sink;
    ctl::RecordStream s;
    s.add_ring(ring.r);
    s.add_sink(sink);
    EXPECT_EQ(s.poll({100, std::chrono::seconds(1)}), 100u);
    EXPECT_EQ(s.backlog(), 9900u);
    EXPECT_EQ(s.poll(), ctl::RecordStream::kMaxRecordsPerPoll);  // the default budget
    EXPECT_EQ(s.backlog(), 9900u - ctl::RecordStream::kMaxRecordsPerPoll);
    EXPECT_EQ(sink.flushes, 2u);  // one flush per poll
    while (s.poll() != 0) {
    }
    ASSERT_EQ(sink.seen.size(), 10000u);
    for (uint64_t i = 0; i < 10000; ++i) {
        ASSERT_EQ(sink.seen[i], i) << "in ring order";
    }
}

TEST(RecordStream, StopsAtTheTimeBudget) {
    Ring ring(16384);
    ring.fill(0, 10000);
    CountingSink slow(UINT64_MAX, std::chrono::microseconds(20));  // 50,000 records/s at most
    ctl::RecordStream s;
    s.add_ring(ring.r);
    s.add_sink(slow);
    const auto t0 = Clock::now();
    const size_t n = s.poll({100000, std::chrono::microseconds(2000)});
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    // 2 ms at 20 us a record is 100 records; the check comes after each batch of kBatch.
    EXPECT_GE(n, ctl::RecordStream::kBatch);
    EXPECT_LE(n, 100 + ctl::RecordStream::kBatch);
    // Wall time: 2.6 ms here; the bound leaves room for a preempted test on a shared machine
    // (the whole ring would take 200 ms).
    EXPECT_LT(ms, 100.0);
    EXPECT_EQ(s.backlog(), 10000u - n);
}

TEST(RecordStream, RoundRobinOverTheRings) {
    Ring a(4096, "rs_a");
    Ring b(4096, "rs_b");
    a.fill(0, 1000);
    b.fill(5000, 1000);
    CountingSink sink;
    ctl::RecordStream s;
    s.add_ring(a.r);
    s.add_ring(b.r);
    s.add_sink(sink);
    EXPECT_EQ(s.poll({2 * ctl::RecordStream::kBatch, std::chrono::seconds(1)}), 2 * ctl::RecordStream::kBatch);
    EXPECT_EQ(rte_ring_count(a.r), 1000u - ctl::RecordStream::kBatch);
    EXPECT_EQ(rte_ring_count(b.r), 1000u - ctl::RecordStream::kBatch);
}

TEST(RecordStream, ARefusingSinkLosesOnlyItsOwnRecordsCounted) {
    Ring ring(16384);
    ring.fill(0, 10000);
    CountingSink all;
    CountingSink full(3000);  // then full: refuses every record
    ctl::RecordStream s;
    s.add_ring(ring.r);
    s.add_sink(all);
    s.add_sink(full);
    s.finish();
    EXPECT_EQ(s.backlog(), 0u);
    EXPECT_EQ(s.taken(), 10000u);
    const auto st = s.stats();
    ASSERT_EQ(st.size(), 2u);
    EXPECT_EQ(st[0].offered, 10000u);
    EXPECT_EQ(st[0].refused, 0u);
    EXPECT_EQ(st[0].c.sent, 10000u);
    EXPECT_EQ(all.seen.size(), 10000u);
    EXPECT_EQ(st[1].offered, 10000u);
    EXPECT_EQ(st[1].c.sent, 3000u);
    EXPECT_EQ(st[1].refused, 7000u);
    // The snapshot the metrics and the summary read.
    ctl::StatsSnapshot snap;
    ctl::fill_record_stats(snap, &s);
    ASSERT_EQ(snap.record_sinks.size(), 2u);
    EXPECT_EQ(snap.record_sinks[1].written + snap.record_sinks[1].sink_full, 10000u);
}

// --ipfix-active-timeout: interim records (FlowEnd::Active) reach only the sinks that want
// them, in order; the others get every final record, in order, and count the rest skipped.
TEST(RecordStream, InterimRecordsGoOnlyToSinksThatWantThem) {
    Ring ring(4096);
    unsigned interim = 0;
    for (unsigned i = 0; i < 3000; ++i) {
        dp::FlowRecord rec{};
        rec.key.ip_version = 4;
        rec.packets[0] = i;
        // Batches of every kind: all interim (the first 40), mixed, none (the last 1000).
        const bool active = i < 40 || (i < 2000 && i % 3 == 0);
        rec.end = static_cast<uint8_t>(active ? dp::FlowEnd::Active : dp::FlowEnd::Idle);
        interim += active;
        ASSERT_EQ(rte_ring_sp_enqueue_elem(ring.r, &rec, sizeof(rec)), 0);
    }
    CountingSink finals;
    CountingSink all;
    all.interim = true;
    ctl::RecordStream s;
    s.add_ring(ring.r);
    s.add_sink(finals);
    s.add_sink(all);
    s.finish();
    ASSERT_EQ(all.seen.size(), 3000u);
    ASSERT_EQ(finals.seen.size(), 3000u - interim);
    std::vector<uint64_t> want;
    for (unsigned i = 0; i < 3000; ++i) {
        EXPECT_EQ(all.seen[i], i);
        if (!(i < 40 || (i < 2000 && i % 3 == 0))) {
            want.push_back(i);
        }
    }
    EXPECT_EQ(finals.seen, want);
    const auto st = s.stats();
    EXPECT_EQ(st[0].skipped, interim);
    EXPECT_EQ(st[0].offered, 3000u - interim);
    EXPECT_EQ(st[0].offered + st[0].skipped, s.taken());
    EXPECT_EQ(st[1].skipped, 0u);
    EXPECT_EQ(st[1].offered, 3000u);
    ctl::StatsSnapshot snap;
    ctl::fill_record_stats(snap, &s);
    EXPECT_EQ(snap.record_sinks[0].skipped + snap.record_sinks[0].written, 3000u);
}

TEST(RecordStream, ReopenFlagReopensEverySinkAtTheNextPoll) {
    CountingSink a, b;
    ctl::RecordStream s;
    s.add_sink(a);
    s.add_output(b);
    std::atomic<bool> flag{false};
    s.set_reopen_flag(&flag);
    s.poll();
    EXPECT_EQ(a.counters().reopens, 0u);
    flag = true;
    s.poll();
    EXPECT_FALSE(flag.load());
    EXPECT_EQ(a.counters().reopens, 1u);
    EXPECT_EQ(b.counters().reopens, 1u);
    EXPECT_EQ(s.reopen(), "counting: reopened\ncounting: reopened\n");
    EXPECT_TRUE(b.seen.empty()) << "an output gets no records";
}

TEST(FlowLog, FifoNeverBlocksAndEveryRecordIsCounted) {
    const std::string dir = temp_dir();
    const std::string fifo = dir + "/flows.fifo";
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
    constexpr size_t kCap = 256 * 1024;  // more than the pipe holds (64 KiB): writes that do not all fit
    ctl::FlowLog log;
    // No reader: not an error, the records wait.
    ASSERT_EQ(log.open(fifo, names().module(), kCap), "");
    EXPECT_EQ(log.counters().open_failures, 1u);
    Ring ring(65536);
    ring.fill(0, 20000);
    ctl::RecordStream s;
    s.add_ring(ring.r);
    s.add_sink(log);
    auto t0 = Clock::now();
    s.poll();
    EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(200)) << "no reader: no wait";
    const ctl::SinkCounters before = log.counters();
    EXPECT_GT(before.queued, 0u);
    EXPECT_LE(before.queued * 400, kCap) << "the buffer is bounded";
    EXPECT_EQ(s.stats()[0].refused + before.queued, s.taken());

    // A reader that does not read: the pipe fills, the sink refuses, nothing blocks.
    const int rfd = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
    ASSERT_GE(rfd, 0);
    std::this_thread::sleep_for(ctl::FlowLog::kRetryOpen + std::chrono::milliseconds(10));
    t0 = Clock::now();
    while (s.backlog() != 0) {
        s.poll();
    }
    EXPECT_LT(Clock::now() - t0, std::chrono::seconds(2));
    // Drain the pipe, let the sink write the rest, then close with what the pipe cannot take.
    std::string got;
    char buf[65536];
    for (int i = 0; i < 50; ++i) {
        ssize_t r;
        while ((r = ::read(rfd, buf, sizeof(buf))) > 0) {
            got.append(buf, static_cast<size_t>(r));
        }
        s.poll();
    }
    ring.fill(20000, 5000);  // and more than the pipe and buffer hold, left at close
    while (s.backlog() != 0) {
        s.poll();
    }
    s.finish(std::chrono::milliseconds(50));
    ssize_t r;
    while ((r = ::read(rfd, buf, sizeof(buf))) > 0) {
        got.append(buf, static_cast<size_t>(r));
    }
    ::close(rfd);

    const ctl::SinkCounters c = log.counters();
    const auto st = s.stats()[0];
    EXPECT_EQ(st.offered, 25000u);
    EXPECT_EQ(st.offered, st.refused + c.sent + c.write_errors + c.abandoned + c.queued);
    EXPECT_EQ(c.queued, 0u);
    EXPECT_GT(c.abandoned, 0u) << "the pipe was full at close";
    EXPECT_GT(st.refused, 0u);
    const std::vector<std::string> lines = lines_of(got);
    EXPECT_EQ(lines.size(), c.sent);
    std::set<long> ports;
    for (const std::string& l : lines) {
        ASSERT_EQ(l.front(), '{');
        ASSERT_EQ(l.substr(l.size() - 2), "}\n") << "torn line: " << l;
        EXPECT_TRUE(ports.insert(src_port(l)).second) << "twice: " << l;
    }
    std::filesystem::remove_all(dir);
}

TEST(FlowLog, AppendsAndReopensAfterARename) {
    const std::string dir = temp_dir();
    const std::string path = dir + "/flows.jsonl";
    {
        std::ofstream f(path);
        f << "{\"old\":true}\n";  // a previous run's line
    }
    ctl::FlowLog log;
    ASSERT_EQ(log.open(path, names().module()), "");
    Ring ring(4096);
    ctl::RecordStream s;
    s.add_ring(ring.r);
    s.add_sink(log);
    const ctl::RecordStream::Budget all{4096, std::chrono::seconds(10)};  // not cut by a busy machine
    ring.fill(0, 100);
    s.poll(all);
    std::filesystem::rename(path, path + ".1");
    ring.fill(100, 100);
    s.poll(all);  // still to the renamed file: no reopen yet
    EXPECT_EQ(s.reopen(), "flow_log: reopened\n");
    ring.fill(200, 100);
    s.finish();
    const auto old_lines = lines_of(read_all(path + ".1"));
    const auto new_lines = lines_of(read_all(path));
    ASSERT_EQ(old_lines.size(), 201u);
    EXPECT_EQ(old_lines[0], "{\"old\":true}\n") << "opened for append";
    ASSERT_EQ(new_lines.size(), 100u);
    EXPECT_EQ(src_port(old_lines[1]), 0);
    EXPECT_EQ(src_port(old_lines[200]), 199);
    EXPECT_EQ(src_port(new_lines[0]), 200);
    EXPECT_EQ(log.counters().sent, 300u);
    EXPECT_EQ(log.counters().reopens, 1u);
    std::filesystem::remove_all(dir);
}

TEST(FlowLog, EventLinesAreCountedApartFromRecords) {
    const std::string dir = temp_dir();
    const std::string path = dir + "/events.jsonl";
    ctl::FlowLog log("event_log");
    ASSERT_EQ(log.open(path, names().module(), 100), "");
    log.write_line("{\"event\":\"host_blocked\"}\n");
    log.write_line(std::string(200, 'x') + "\n");  // beyond the buffer: refused, counted
    log.close();
    EXPECT_EQ(read_all(path), "{\"event\":\"host_blocked\"}\n");
    EXPECT_EQ(log.counters().events_sent, 1u);
    EXPECT_EQ(log.counters().events_lost, 1u);
    EXPECT_EQ(log.counters().sent, 0u);
    std::filesystem::remove_all(dir);
}

TEST(RecordStream, MetricsNameEveryCauseOfLoss) {
    ctl::StatsSnapshot s;
    s.flow_log_records = 90;
    s.flow_log_lost = 10;
    s.record_backlog = 3;
    ctl::StatsSnapshot::RecordSinkStats k;
    k.name = "flow_log";
    k.written = 70;
    k.sink_full = 12;
    k.write_error = 1;
    k.shutdown = 4;
    s.record_sinks.push_back(k);
    ctl::ReasonRegistry reasons;
    ctl::MetricsExporter m;
    m.update_at(1.0, s, names(), reasons, ctl::PolicyStatus{}, 2.0e9);
    const std::string t = m.text();
    for (const char* line : {
             "l7gate_flow_records_written_total{sink=\"flow_log\"} 70\n",
             "l7gate_flow_records_lost_total{cause=\"ring_full\",sink=\"flow_log\"} 10\n",
             "l7gate_flow_records_lost_total{cause=\"sink_full\",sink=\"flow_log\"} 12\n",
             "l7gate_flow_records_lost_total{cause=\"write_error\",sink=\"flow_log\"} 1\n",
             "l7gate_flow_records_lost_total{cause=\"shutdown\",sink=\"flow_log\"} 4\n",
             "l7gate_flow_records_queued{sink=\"flow_log\"} 0\n",
             "l7gate_flow_records_backlog 3\n",
         }) {
        EXPECT_NE(t.find(line), std::string::npos) << line;
    }
    // produced (100) = written 70 + lost 10 + 12 + 1 + 4 + backlog 3
    EXPECT_EQ(s.flow_log_records + s.flow_log_lost, 70u + 10 + 12 + 1 + 4 + 3);
}

} // namespace
} // namespace l7gate::test
