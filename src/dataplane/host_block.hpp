#pragma once
// Host scores and auto-block, the data-plane side.
//
// When a flow's classification ends with a risk score, its worker queues two ScoreEvents
// (the client's part for the client, the server's part for the server) on its ring to the
// control thread, which keeps each host's score over a sliding window (HostScores) and
// decides blocks. Blocked hosts reach the workers as an immutable BlockedSet published like
// a policy snapshot (one pointer, retired after an RCU grace period); a flow whose client or
// server is in it is dropped with the set's reason (hosts/auto_block).

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

namespace l7gate::dp {

struct ScoreEvent {
    uint8_t addr[16];
    uint8_t ip_version;
    uint8_t role;      // 0: the host was the client, 1: the server
    uint16_t score;    // its part of the flow's nDPI risk score
    uint32_t pad;
    uint64_t time_ns;  // the worker's clock (capture time under --clock capture)
};
static_assert(sizeof(ScoreEvent) % 4 == 0);

// A host address as one comparable key: version + 16 bytes.
using HostKey = std::array<uint8_t, 17>;

inline HostKey host_key(uint8_t ip_version, const uint8_t* addr) noexcept {
    HostKey k{};
    k[0] = ip_version;
    std::memcpy(k.data() + 1, addr, ip_version == 4 ? 4 : 16);
    return k;
}

struct BlockedSet {
    uint64_t generation = 0;     // grows with every published set
    uint16_t reason = 0;         // reason id of "hosts/auto_block"
    std::vector<HostKey> hosts;  // sorted

    bool contains(uint8_t ip_version, const uint8_t* addr) const noexcept {
        if (hosts.empty()) {
            return false;
        }
        const HostKey k = host_key(ip_version, addr);
        return std::binary_search(hosts.begin(), hosts.end(), k);
    }
};

} // namespace l7gate::dp
