// libFuzzer target: the whole per-packet path of one worker (parse, fragment table, flow
// table, nDPI, policy, verdict, shaper admission) on real mbufs, EAL up without hugepages.
//
// Input: a sequence of records [h][len_hi][len_lo][len bytes of Ethernet frame].
//   h bit 0      port index the frame arrives on (0 or 1)
//   h bit 1      "fold": rewrite the IPv4/IPv6 addresses and TCP/UDP client port onto one
//                of four client/server conversations, oriented by the port (port 0: client
//                to server, port 1: back), so mutated frames keep landing in shared
//                multi-packet flows that nDPI dissects in both directions
//   h bits 2-3   which of the four conversations
//   h bits 4-7   k: the clock advances 2^k ms before this frame (0: not at all), enough to
//                cross every idle timeout
// Frames go to Worker::process_burst() in bursts (a new burst at a port change, a clock step
// or 32 frames), housekeeping (expiry) runs after each burst. After the input every flow is
// ended and the shaper queues dropped; then every mbuf must be back in the pool (the leak
// oracle) and rx = tx + dropped must hold.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "../eal/bridge_config.hpp"
#include "dataplane/memory.hpp"
#include "dataplane/ndpi_arena.hpp"
#include "dataplane/worker.hpp"
#include "fuzz_policy_common.hpp"

namespace dp = l7gate::dp;
namespace ctl = l7gate::ctl;

namespace {

// Markers of every kind, keyed by what nDPI finds in the seed traffic. reject acts as drop
// here (--reject-rate 0): injected packets leave only from Worker::run().
const char* kPolicy = R"Y(version: 1
default_policy: p
shapers:
  s: {rate: 1mbit, burst: 16kb, queue: 64, max_delay: 10ms}
  h: {rate: 2mbit, burst: 16kb, per: host, queue: 32, max_delay: 5ms}
pools:
  - {name: lan, ip: [10.0.0.0/24, "fd00::1:0/112"], policy: q}
policies:
  p:
    default: pass
    risks: {url_possible_sql_injection: reject, url_possible_xss: drop}
    score: {at_least: 250, marker: drop}
  q:
    parent: p
    default: pass
    protocols: {SSH: drop, BitTorrent: "shape:h", DNS: "police:s", QUIC: "shape:s"}
    categories: {Video: "shape:s"}
    hostnames: {"*.blocked.test": drop, "~^cdn[0-9]+\\.": "shape:s", "allowed.test": pass}
    ips: {"10.1.0.3/32": drop}
)Y";

struct State {
    rte_mempool* pool = nullptr;
    unsigned pool_size = 0;
    dp::Worker* worker = nullptr;
    std::atomic<const dp::PolicySnapshot*> policy{nullptr};
    uint64_t now = 1700000000ull * 1000000000ull;
};

State* setup() {
    auto* s = new State();
    dp::NdpiArena::install_hooks();
    const char* argv[] = {"fuzz_worker", "--no-huge", "--no-pci", "-m", "256", "--log-level=*:error",
                          "--file-prefix", "l7g-fuzz-worker", "--no-shconf", "--no-telemetry",
                          "--vdev", "net_null0", "--vdev", "net_null1"};
    if (rte_eal_init(sizeof(argv) / sizeof(argv[0]), const_cast<char**>(argv)) < 0) {
        std::fprintf(stderr, "fuzz_worker: EAL init failed\n");
        std::abort();
    }
    dp::memory_use_eal(true);
    s->pool_size = 4095;
    s->pool = rte_pktmbuf_pool_create("fuzz_pool", s->pool_size, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    if (s->pool == nullptr) {
        std::abort();
    }

    // Two net_null ports (from the EAL arguments): what the shaper releases later really
    // leaves through rte_eth_tx_burst(), and the null PMD frees it.
    for (uint16_t port = 0; port < 2; ++port) {
        rte_eth_conf conf{};
        if (rte_eth_dev_configure(port, 1, 1, &conf) != 0 ||
            rte_eth_rx_queue_setup(port, 0, 64, 0, nullptr, s->pool) != 0 ||
            rte_eth_tx_queue_setup(port, 0, 64, 0, nullptr) != 0 || rte_eth_dev_start(port) != 0) {
            std::fprintf(stderr, "fuzz_worker: cannot start net_null port %u\n", port);
            std::abort();
        }
    }

    static ctl::ReasonRegistry reasons;
    ctl::PolicyConfig pc;
    std::vector<ctl::PolicyError> errors;
    if (!ctl::load_policy_text(kPolicy, "fuzz-policy.yaml", ctl::PolicyFormat::Yaml, pc, errors)) {
        std::fprintf(stderr, "fuzz_worker: policy: %s\n", errors.empty() ? "?" : errors[0].str().c_str());
        std::abort();
    }
    ctl::CompileContext ctx{&l7gate::fuzz::ndpi_names(), nullptr, &reasons, 1};
    auto snap = ctl::compile_policy(pc, ctx, errors);
    if (snap == nullptr) {
        std::fprintf(stderr, "fuzz_worker: policy: %s\n", errors.empty() ? "?" : errors[0].str().c_str());
        std::abort();
    }
    s->policy.store(snap.release());

    s->worker = new dp::Worker();
    dp::WorkerConfig cfg = l7gate::test::bridge_pair_config(0, 1);
    cfg.flows = 1024;  // small tables: fuzzed inputs reach "full" quickly
    cfg.frags = 64;
    cfg.classifier.dpi_flows = 64;
    cfg.classifier.meta_records = 1024;
    cfg.classifier.arena_bytes = 8u << 20;
    cfg.reject_rate = 0;
    cfg.policy = &s->policy;
    if (const char* e = s->worker->init(cfg)) {
        std::fprintf(stderr, "fuzz_worker: worker init: %s\n", e);
        std::abort();
    }
    s->worker->classifier_attach_for_test();
    return s;
}

void put16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}

// See "fold" above; untagged IPv4 / IPv6 only (tagged frames keep their addresses).
void fold(uint8_t* f, size_t len, unsigned port, unsigned conv) {
    if (len < 14) {
        return;
    }
    const uint16_t et = static_cast<uint16_t>(f[12] << 8 | f[13]);
    uint8_t proto = 0;
    size_t l4 = 0;
    if (et == 0x0800 && len >= 34) {
        uint8_t c[4] = {10, 0, 0, static_cast<uint8_t>(1 + conv)};
        uint8_t v[4] = {10, 1, 0, static_cast<uint8_t>(1 + conv)};
        std::memcpy(f + 26, port == 0 ? c : v, 4);
        std::memcpy(f + 30, port == 0 ? v : c, 4);
        proto = f[23];
        l4 = 14 + static_cast<size_t>(f[14] & 15) * 4;
    } else if (et == 0x86dd && len >= 54) {
        uint8_t c[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, static_cast<uint8_t>(conv)};
        uint8_t v[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, static_cast<uint8_t>(conv)};
        std::memcpy(f + 22, port == 0 ? c : v, 16);
        std::memcpy(f + 38, port == 0 ? v : c, 16);
        proto = f[20];
        l4 = 54;
    } else {
        return;
    }
    if ((proto == 6 || proto == 17) && len >= l4 + 4) {
        put16(f + l4 + (port == 0 ? 0 : 2), static_cast<uint16_t>(40000 + conv));
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static State* s = setup();
    dp::Worker& w = *s->worker;
    dp::Burst& b = w.burst();
    const dp::WorkerCounters& c = w.counters();
    auto sum = [&] {
        uint64_t v = c.port[0].tx_packets.get() + c.port[1].tx_packets.get();
        for (const auto& d : c.drops) {
            v += d.get();
        }
        return v;
    };
    const uint64_t rx0 = c.port[0].rx_packets.get() + c.port[1].rx_packets.get();
    const uint64_t gone0 = sum();

    uint64_t out_total = 0;
    unsigned n = 0;
    unsigned burst_port = 0;
    auto flush = [&] {
        if (n == 0) {
            return;
        }
        const unsigned nout = w.process_burst(burst_port, n, s->now);
        for (unsigned k = 0; k < nout; ++k) {
            rte_pktmbuf_free(b.out[k]);
        }
        out_total += nout;
        n = 0;
        w.drain_shaper(s->now);
        w.housekeeping(s->now);
    };

    size_t off = 0;
    while (off + 3 <= size) {
        const uint8_t h = data[off];
        size_t len = static_cast<size_t>(data[off + 1] << 8 | data[off + 2]);
        off += 3;
        if (len > size - off) {
            len = size - off;
        }
        if (len > 2048) {
            len = 2048;
        }
        const unsigned port = h & 1;
        const unsigned k = h >> 4;
        if (n != 0 && (port != burst_port || k != 0 || n == dp::kMaxBurst)) {
            flush();
        }
        if (k != 0) {
            s->now += (1ull << k) * 1000000ull;
        }
        rte_mbuf* m = rte_pktmbuf_alloc(s->pool);
        if (m == nullptr) {
            std::abort();  // cannot happen: the pool holds more than a few bursts
        }
        auto* d = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, static_cast<uint16_t>(len)));
        if (len != 0) {
            std::memcpy(d, data + off, len);
        }
        if ((h & 2) != 0) {
            fold(d, len, port, (h >> 2) & 3);
        }
        // process_burst() counts rx as run() does, per port index.
        burst_port = port;
        b.mbufs[n++] = m;
        off += len;
    }
    flush();
    s->now += 1000000;
    w.flush_flows();
    w.flush_shaper();
    if (rte_mempool_in_use_count(s->pool) != 0) {
        std::fprintf(stderr, "fuzz_worker: %u mbufs not returned to the pool\n",
                     rte_mempool_in_use_count(s->pool));
        std::abort();
    }
    if (std::getenv("L7GATE_FUZZ_VERBOSE") != nullptr) {
        const auto& cc = w.classifier().counters();
        std::fprintf(stderr, "fuzz_worker: rx %llu, out %llu, flows %llu, nDPI packets %llu, classified %llu\n",
                     static_cast<unsigned long long>(c.port[0].rx_packets.get() + c.port[1].rx_packets.get() - rx0),
                     static_cast<unsigned long long>(out_total),
                     static_cast<unsigned long long>(c.flows_created.get()),
                     static_cast<unsigned long long>(cc.ndpi_packets.get()),
                     static_cast<unsigned long long>(cc.classified.get()));
    }
    // Every frame received left (process_burst's output, or later from the shaper) or was
    // dropped under exactly one reason.
    const uint64_t rx = c.port[0].rx_packets.get() + c.port[1].rx_packets.get() - rx0;
    if (rx != out_total + (sum() - gone0)) {
        std::fprintf(stderr, "fuzz_worker: rx %llu != out %llu + shaper tx and drops %llu\n",
                     static_cast<unsigned long long>(rx), static_cast<unsigned long long>(out_total),
                     static_cast<unsigned long long>(sum() - gone0));
        std::abort();
    }
    return 0;
}
