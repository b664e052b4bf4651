#pragma once
// The generated l7 traffic (tools/gen_traffic.py --set l7, named by L7GATE_L7_PCAP) as frames
// for tier-2 tests that drive a worker directly.

#include <pcap/pcap.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace l7gate::test {

// Every frame of a capture; empty when it cannot be read.
inline std::vector<std::vector<uint8_t>> read_pcap(const std::string& path) {
    char err[PCAP_ERRBUF_SIZE];
    pcap_t* p = pcap_open_offline(path.c_str(), err);
    std::vector<std::vector<uint8_t>> out;
    if (p == nullptr) {
        return out;
    }
    pcap_pkthdr* h;
    const u_char* d;
    while (pcap_next_ex(p, &h, &d) == 1) {
        out.emplace_back(d, d + h->caplen);
    }
    pcap_close(p);
    return out;
}

// The l7 set; empty when L7GATE_L7_PCAP is unset or unreadable.
inline std::vector<std::vector<uint8_t>> l7_frames() {
    const char* path = std::getenv("L7GATE_L7_PCAP");
    return path == nullptr ? std::vector<std::vector<uint8_t>>() : read_pcap(path);
}

// Flips the last byte of both addresses of untagged IPv4/IPv6 frames: new flows, same payload.
inline void remap(std::vector<uint8_t>& f, uint8_t salt) {
    const uint16_t et = f.size() >= 14 ? static_cast<uint16_t>(f[12] << 8 | f[13]) : 0;
    if (et == 0x0800 && f.size() >= 34) {
        f[14 + 15] ^= salt;
        f[14 + 19] ^= salt;
    } else if (et == 0x86dd && f.size() >= 54) {
        f[14 + 23] ^= salt;
        f[14 + 39] ^= salt;
    }
}

} // namespace l7gate::test
