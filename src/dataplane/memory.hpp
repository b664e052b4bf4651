#pragma once
// Start-up allocation for data-plane tables. With EAL running, memory comes from DPDK's
// heap on the requested NUMA socket (hugepages when available); without EAL (unit tests,
// fuzzers) it comes from the C heap. Never called from the per-packet path.

#include <cstddef>

namespace l7gate::dp {

// Called once by main() after rte_eal_init() succeeded.
void memory_use_eal(bool on) noexcept;

// Zeroed, cache-line aligned memory; nullptr when out of memory.
void* table_alloc(size_t size, int socket) noexcept;
void table_free(void* p) noexcept;

} // namespace l7gate::dp
