#pragma once
// Benchmark source of new flows (--bench-fresh-flows): an RX callback that makes every pass of
// a replayed capture (net_pcap infinite_rx repeats it endlessly) a set of new flows.
//
// Every `period` packets received on a queue (one pass of the capture) the pass number moves
// on, and each IPv4 source and destination address gets the pass's 16-bit value XORed into
// its low 16 bits (IPv6: bits 96-111). Both directions of a flow get the same value, so a
// pass's flows stay whole and distinct; the IPv4 header checksum is updated, the TCP/UDP
// checksums are not (nothing l7gate does reads them). The first pass is left as captured;
// the values repeat after 65,536 passes (keep a pass at thousands of packets or more).
// Runs inside rte_eth_rx_burst(), so it is outside l7gate's busy cycles and inside its wall
// clock. Benchmarks only: it rewrites traffic.
//
// SYNs only (--bench-fresh-syns): only TCP SYNs without ACK are rewritten. Replaying a SYN
// flood interleaved with established connections, every pass's flood is then new half-open
// flows while the connections' other packets stay with the flows of the first pass (known
// flows, the fast path); their own SYNs become half-open flows like the flood's.

#include <cstdint>
#include <string>

struct rte_mbuf;

namespace l7gate::dp {

// The value XORed into the addresses on pass `pass` (0 for the first pass).
uint16_t fresh_flows_value(uint64_t pass) noexcept;

// Rewrites one frame for pass value `v` (no-op for v == 0, a frame that is not IP, and with
// syns_only a frame that is not a TCP SYN without ACK directly after the IP header).
void fresh_flows_rewrite(uint8_t* frame, uint32_t len, uint16_t v, bool syns_only = false) noexcept;

// Installs the callback on every RX queue of `port`. Returns "" or an error line.
std::string fresh_flows_install(uint16_t port, uint16_t queues, uint32_t period, bool syns_only = false);

} // namespace l7gate::dp
