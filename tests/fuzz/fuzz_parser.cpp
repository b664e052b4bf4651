// libFuzzer target: the packet parser on arbitrary bytes.
//
// Besides "no crash, no out-of-bounds read" (ASan), every parse must leave a consistent
// PacketMeta: offsets inside the frame, and a malformed verdict always naming its reason.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "dataplane/packet_parser.hpp"

using l7gate::dp::DropReason;
using l7gate::dp::PacketKind;
using l7gate::dp::PacketMeta;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > 65535) {
        return 0;
    }
    // A private copy of exactly `size` bytes, so ASan sees any read past the frame.
    std::vector<uint8_t> frame(data, data + size);
    PacketMeta m{};
    l7gate::dp::parse_packet(frame.data(), static_cast<uint32_t>(size), m);
    switch (m.kind) {
    case PacketKind::Malformed:
        if (m.error == DropReason::None) {
            std::abort();  // a malformed packet must say why
        }
        break;
    case PacketKind::Ip:
        if (m.error != DropReason::None || m.l3_offset > size ||
            static_cast<size_t>(m.l3_offset) + m.l3_length > size || m.l4_offset > size ||
            m.payload_offset > size || static_cast<size_t>(m.payload_offset) + m.payload_length > size ||
            (m.ip_version != 4 && m.ip_version != 6) || m.vlan_count > l7gate::dp::kMaxVlanTags) {
            std::abort();
        }
        break;
    case PacketKind::NonIp:
        break;
    }
    return 0;
}
