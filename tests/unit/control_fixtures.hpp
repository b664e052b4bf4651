#pragma once
// Fixtures the control-side unit tests share: the nDPI names module (built once per process)
// and a worker-style ring (single producer, single consumer) in heap memory, without EAL.

#include <gtest/gtest.h>

#include <cstdlib>

#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "control/base/ndpi_names.hpp"

namespace l7gate::test {

inline ctl::NdpiNames& shared_names() {
    static ctl::NdpiNames* n = [] {
        auto* p = new ctl::NdpiNames();
        EXPECT_EQ(p->init("", ""), "");
        return p;
    }();
    return *n;
}

// A ring of `count` elements of `elem` bytes, as a worker's, in aligned heap memory.
struct HeapRing {
    rte_ring* r = nullptr;
    HeapRing(size_t elem, unsigned count, const char* name) {
        const ssize_t sz = rte_ring_get_memsize_elem(static_cast<unsigned>(elem), count);
        EXPECT_GT(sz, 0);
        r = static_cast<rte_ring*>(std::aligned_alloc(64, (static_cast<size_t>(sz) + 63) / 64 * 64));
        EXPECT_EQ(rte_ring_init(r, name, count, RING_F_SP_ENQ | RING_F_SC_DEQ), 0);
    }
    ~HeapRing() { std::free(r); }
    HeapRing(const HeapRing&) = delete;
    HeapRing& operator=(const HeapRing&) = delete;
};

} // namespace l7gate::test
