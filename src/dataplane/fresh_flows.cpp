#include "dataplane/fresh_flows.hpp"

#include <deque>

#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

namespace l7gate::dp {

namespace {

struct QueueState {
    uint64_t seen = 0;    // packets received on the queue
    uint32_t period = 0;  // packets per pass
    bool syns_only = false;
};

// Lives as long as the process: the callbacks stay registered until the ports close.
std::deque<QueueState>& states() {
    static std::deque<QueueState> s;
    return s;
}

uint16_t on_rx(uint16_t, uint16_t, rte_mbuf* pkts[], uint16_t n, uint16_t, void* arg) {
    auto* q = static_cast<QueueState*>(arg);
    for (uint16_t i = 0; i < n; ++i) {
        const uint16_t v = fresh_flows_value(q->seen++ / q->period);
        if (v != 0) {
            fresh_flows_rewrite(rte_pktmbuf_mtod(pkts[i], uint8_t*), pkts[i]->data_len, v, q->syns_only);
        }
    }
    return n;
}

} // namespace

uint16_t fresh_flows_value(uint64_t pass) noexcept {
    // An odd multiplier: passes close in time get far-apart values, so a flow of one pass
    // cannot land on a still-live flow of a recent one. Skips 0 (the captured addresses).
    uint16_t v = static_cast<uint16_t>(pass * 0x9E37u);
    return pass != 0 && v == 0 ? 1 : v;
}

void fresh_flows_rewrite(uint8_t* f, uint32_t len, uint16_t v, bool syns_only) noexcept {
    if (v == 0 || len < 14) {
        return;
    }
    uint32_t off = 12;
    uint16_t et = static_cast<uint16_t>(f[12] << 8 | f[13]);
    while ((et == 0x8100 || et == 0x88a8) && off + 6 <= len) {
        off += 4;
        et = static_cast<uint16_t>(f[off] << 8 | f[off + 1]);
    }
    off += 2;  // the IP header
    // The low 16 bits of each address: IPv4 bytes 14-15 and 18-19, IPv6 bytes 20-21 and 36-37.
    uint32_t at[2];
    uint32_t l4 = 0;     // the TCP header, when the IP header is followed by one
    uint8_t proto = 0;
    if (et == 0x0800 && len >= off + 20 && (f[off] >> 4) == 4 && (f[off] & 0x0f) * 4u <= len - off) {
        at[0] = off + 14;
        at[1] = off + 18;
        proto = f[off + 9];
        l4 = off + (f[off] & 0x0fu) * 4u;
    } else if (et == 0x86dd && len >= off + 40 && (f[off] >> 4) == 6) {
        at[0] = off + 8 + 12;
        at[1] = off + 24 + 12;
        proto = f[off + 6];
        l4 = off + 40;
    } else {
        return;
    }
    if (syns_only && (proto != 6 || l4 + 14 > len || (f[l4 + 13] & 0x12) != 0x02)) {
        return;  // not a TCP SYN without ACK
    }
    for (uint32_t a : at) {
        f[a] ^= static_cast<uint8_t>(v >> 8);
        f[a + 1] ^= static_cast<uint8_t>(v);
    }
    if (et == 0x0800) {
        auto* ip = reinterpret_cast<rte_ipv4_hdr*>(f + off);
        ip->hdr_checksum = 0;
        ip->hdr_checksum = rte_ipv4_cksum(ip);
    }
}

std::string fresh_flows_install(uint16_t port, uint16_t queues, uint32_t period, bool syns_only) {
    for (uint16_t q = 0; q < queues; ++q) {
        QueueState& s = states().emplace_back();
        s.period = period;
        s.syns_only = syns_only;
        if (rte_eth_add_rx_callback(port, q, on_rx, &s) == nullptr) {
            return "port " + std::to_string(port) + " queue " + std::to_string(q) +
                   ": cannot add the --bench-fresh-flows RX callback: " + rte_strerror(rte_errno);
        }
    }
    return {};
}

} // namespace l7gate::dp
