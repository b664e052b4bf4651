#include "dataplane/flow_key.hpp"

#include "dataplane/hash.hpp"

namespace l7gate::dp {

uint32_t flow_key_hash(const FlowKey& k) noexcept { return crc32c_key<sizeof(FlowKey)>(&k, 0x9e3779b9u); }

} // namespace l7gate::dp
