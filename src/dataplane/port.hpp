#pragma once
// Ethernet port setup: queues, symmetric RSS, descriptor rings, start/stop.

#include <cstdint>
#include <string>

struct rte_mempool;

namespace l7gate::dp {

// Symmetric Toeplitz key: the 16-bit pattern 0x6d5a repeated makes the hash of
// (src, dst, sport, dport) equal to that of (dst, src, dport, sport), so both directions of
// a flow, arriving on the two ports of a bridge pair, land on the same queue index.
inline constexpr uint8_t kSymmetricRssKeyByte0 = 0x6d;
inline constexpr uint8_t kSymmetricRssKeyByte1 = 0x5a;
void make_symmetric_rss_key(uint8_t* key, unsigned len) noexcept;
// The RSS hash types l7gate asks of a port (rss_hf, masked by what it offers): the IP
// addresses only, so that a flow's fragments reach the worker of its other packets.
uint64_t rss_hash_functions() noexcept;

struct PortSetup {
    uint16_t queues = 1;        // RX and TX queues (one per worker)
    bool require_rss = true;    // queues > 1 need symmetric RSS from the port
    uint16_t rx_desc = 1024;
    uint16_t tx_desc = 1024;
    rte_mempool* pool = nullptr;
    bool rx_timestamp = false;  // ask the port for RX timestamps (--clock capture)
    uint16_t extra_tx = 0;      // TX queues beyond `queues` (index queues: the fail-open path)
    uint16_t mtu = 0;           // --mtu: the port's MTU (rxmode.mtu); 0: the driver's default
    // The pool's mbufs hold less than a whole frame (memory.hpp: mbuf_data_room): the port
    // must scatter (port_scatters), and gets RTE_ETH_RX_OFFLOAD_SCATTER when it advertises it.
    bool scatter = false;
};

// The port can receive a frame into a chain of mbufs: it advertises
// RTE_ETH_RX_OFFLOAD_SCATTER, or it is net_pcap, which chains a frame longer than one mbuf
// itself without advertising the offload (drivers/net/pcap: eth_pcap_rx_jumbo).
bool port_scatters(uint16_t port);

// Checks what the port can do against what is asked. Returns "" when it fits, else one line
// naming the port, what was asked and what it supports.
std::string port_check(uint16_t port, const PortSetup& s);

// Configures and starts the port. Returns "" or an error line.
std::string port_start(uint16_t port, const PortSetup& s);

void port_stop(uint16_t port) noexcept;

// Driver name, for messages.
std::string port_driver(uint16_t port);

} // namespace l7gate::dp
