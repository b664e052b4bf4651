#pragma once
// EAL for the tier-2 tests: started once per process (no hugepages, no PCI), with one mbuf
// pool every test shares.

#include <gtest/gtest.h>

#include <rte_eal.h>
#include <rte_mbuf.h>

#include "bridge_config.hpp"
#include "dataplane/memory.hpp"
#include "dataplane/ndpi_arena.hpp"

namespace l7gate::test {

inline rte_mempool* eal_pool() {
    static rte_mempool* pool = [] {
        dp::NdpiArena::install_hooks();
        const char* argv[] = {"test", "--no-huge", "--no-pci", "-m", "512", "--log-level=*:error",
                              "--file-prefix", "l7g-eal-tests", "--no-shconf"};
        if (rte_eal_init(sizeof(argv) / sizeof(argv[0]), const_cast<char**>(argv)) < 0) {
            return static_cast<rte_mempool*>(nullptr);
        }
        dp::memory_use_eal(true);
        return rte_pktmbuf_pool_create("t_pool", 16383, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    }();
    return pool;
}

// bridge_pair_config() with the table sizes the tier-2 tests' traffic is made for.
inline dp::WorkerConfig eal_worker_config(uint16_t a, uint16_t b) {
    dp::WorkerConfig cfg = bridge_pair_config(a, b);
    cfg.flows = 4096;
    cfg.frags = 256;
    cfg.classifier.dpi_flows = 1024;
    cfg.classifier.meta_records = 4096;
    return cfg;
}

} // namespace l7gate::test
