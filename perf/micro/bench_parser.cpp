// parse_packet() per frame shape, and flow_key_hash() on the keys it produces.

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <vector>

#include "dataplane/flow_key.hpp"
#include "dataplane/packet_parser.hpp"
#include "frames.hpp"

namespace l7gate::perf {
namespace {

using dp::PacketKind;
using dp::PacketMeta;

const dp::HashKey kBenchSecret{0x0123456789abcdefull, 0xfedcba9876543210ull};

constexpr unsigned kRing = 256;  // distinct frames per shape, cycled through

struct FrameSet {
    std::vector<std::vector<uint8_t>> frames;
};

FrameSet build(FrameKind k) {
    FrameSet s;
    for (unsigned i = 0; i < kRing; ++i) {
        s.frames.push_back(make_frame(k, i));
    }
    // A parser bug would make the numbers meaningless: insist on what each shape is.
    PacketMeta m{};
    dp::parse_packet(s.frames[0].data(), static_cast<uint32_t>(s.frames[0].size()), m);
    if (m.kind != PacketKind::Ip) {
        std::fprintf(stderr, "bench_parser: frame %s does not parse as IP (kind %d, error %d)\n",
                     kind_name(k), static_cast<int>(m.kind), static_cast<int>(m.error));
        std::abort();
    }
    return s;
}

void BM_Parse(benchmark::State& state, FrameKind k) {
    const FrameSet s = build(k);
    PacketMeta m{};
    unsigned i = 0;
    for (auto _ : state) {
        const auto& f = s.frames[i++ & (kRing - 1)];
        dp::parse_packet(f.data(), static_cast<uint32_t>(f.size()), m);
        benchmark::DoNotOptimize(m);
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

// Every shape in turn: the branch predictor cannot learn one path.
void BM_ParseMix(benchmark::State& state) {
    std::vector<std::vector<uint8_t>> frames;
    for (unsigned i = 0; i < kRing; ++i) {
        frames.push_back(make_frame(kAllKinds[(i * 5) % std::size(kAllKinds)], i));
    }
    PacketMeta m{};
    unsigned i = 0;
    for (auto _ : state) {
        const auto& f = frames[i++ & (kRing - 1)];
        dp::parse_packet(f.data(), static_cast<uint32_t>(f.size()), m);
        benchmark::DoNotOptimize(m);
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

// range(0): IP version; range(1): 1 = AES-round hash, 0 = SipHash-1-3 (FlowHasher; the AES
// one falls back to SipHash on a CPU without AES-NI).
void BM_FlowKeyHash(benchmark::State& state) {
    const bool v6 = state.range(0) == 6;
    const dp::FlowHasher hasher(kBenchSecret, state.range(1) == 1 ? dp::FlowHasher::Kind::AesRounds
                                                                  : dp::FlowHasher::Kind::SipHash13);
    state.SetLabel(dp::FlowHasher::name(hasher.kind()));
    std::vector<dp::FlowKey> keys;
    for (unsigned i = 0; i < 4096; ++i) {
        const auto f = make_frame(v6 ? FrameKind::Ipv6Tcp : FrameKind::Ipv4TcpSyn, i);
        PacketMeta m{};
        dp::parse_packet(f.data(), static_cast<uint32_t>(f.size()), m);
        keys.push_back(m.key);
    }
    unsigned i = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(hasher(keys[i++ & 4095]));
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

} // namespace

BENCHMARK_CAPTURE(BM_Parse, ipv4_tcp_syn, FrameKind::Ipv4TcpSyn);
BENCHMARK_CAPTURE(BM_Parse, ipv4_udp_dns, FrameKind::Ipv4UdpDns);
BENCHMARK_CAPTURE(BM_Parse, ipv4_tcp_1514, FrameKind::Ipv4TcpData);
BENCHMARK_CAPTURE(BM_Parse, ipv6_tcp, FrameKind::Ipv6Tcp);
BENCHMARK_CAPTURE(BM_Parse, qinq_ipv4_udp, FrameKind::QinQIpv4Udp);
BENCHMARK_CAPTURE(BM_Parse, ipv6_ext_udp, FrameKind::Ipv6ExtUdp);
BENCHMARK_CAPTURE(BM_Parse, ipv4_frag_first, FrameKind::Ipv4FragFirst);
BENCHMARK(BM_ParseMix);
BENCHMARK(BM_FlowKeyHash)->Args({4, 1})->Args({6, 1})->Args({4, 0})->Args({6, 0});

} // namespace l7gate::perf
