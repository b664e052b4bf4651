#pragma once
// The WorkerConfig of one worker bridging one pair of ports, as the tier-2 tests and the
// worker fuzz target drive it (gtest-free, for the fuzz target).

#include <cstdint>

#include "dataplane/worker.hpp"

namespace l7gate::test {

// What the worker receives on port a leaves on port b, and back; everything else keeps
// WorkerConfig's defaults.
inline dp::WorkerConfig bridge_pair_config(uint16_t a, uint16_t b) {
    dp::WorkerConfig cfg;
    cfg.nb_ports = 2;
    cfg.port[0] = a;
    cfg.peer[0] = b;
    cfg.port[1] = b;
    cfg.peer[1] = a;
    return cfg;
}

} // namespace l7gate::test
