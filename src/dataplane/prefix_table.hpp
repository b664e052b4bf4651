#pragma once
// PrefixTable: maps an IPv4 or IPv6 address to a value through a set of prefixes, where each
// prefix carries a priority; the covering prefix with the highest priority wins (ties: the
// longer prefix). With priority = prefix length it is a plain longest-prefix match.
//
// Built once on the control thread: the prefixes are flattened into sorted disjoint
// intervals, each with its winning value, so a lookup is one binary search over an array
// (about 20 steps for a million intervals), no pointers chased, no allocation. Lookups happen
// once per flow (pools, peer address lists, GeoIP), never per packet.

#include <algorithm>
#include <cstdint>
#include <vector>

namespace l7gate::dp {

using Ip6 = unsigned __int128;

inline Ip6 ip6_from_bytes(const uint8_t* b) noexcept {
    Ip6 v = 0;
    for (int i = 0; i < 16; ++i) {
        v = v << 8 | b[i];
    }
    return v;
}
inline uint32_t ip4_from_bytes(const uint8_t* b) noexcept {
    return static_cast<uint32_t>(b[0]) << 24 | static_cast<uint32_t>(b[1]) << 16 |
           static_cast<uint32_t>(b[2]) << 8 | b[3];
}

template <typename Addr>
class PrefixTable {
public:
    static constexpr unsigned kBits = sizeof(Addr) * 8;
    static constexpr uint32_t kNone = UINT32_MAX;

    struct Prefix {
        Addr addr;        // host bits are ignored
        uint8_t len;
        uint32_t priority;
        uint32_t value;
    };

    // Replaces the contents. Prefixes may nest and repeat in any order.
    void build(std::vector<Prefix> prefixes) {
        starts_.assign(1, Addr{0});
        values_.assign(1, kNone);
        for (Prefix& p : prefixes) {
            p.addr &= mask(p.len);
        }
        // Outer prefixes first: by start, then shorter length.
        std::sort(prefixes.begin(), prefixes.end(), [](const Prefix& a, const Prefix& b) {
            return a.addr != b.addr ? a.addr < b.addr : a.len < b.len;
        });
        // Sweep with the stack of prefixes covering the current position (prefixes nest or
        // are disjoint). Each stack entry holds the best prefix among itself and those
        // under it, so the top always says what the current position maps to.
        struct Open {
            Addr last;
            uint32_t prio;
            uint8_t len;
            uint32_t value;
        };
        std::vector<Open> stack;
        auto emit = [&](Addr from, uint32_t value) {
            if (starts_.back() == from) {
                values_.back() = value;
            } else {
                starts_.push_back(from);
                values_.push_back(value);
            }
        };
        auto pop = [&]() {
            const Addr end = stack.back().last;
            stack.pop_back();
            if (end != static_cast<Addr>(~Addr{0})) {
                emit(end + 1, stack.empty() ? kNone : stack.back().value);
            }
        };
        for (const Prefix& p : prefixes) {
            while (!stack.empty() && stack.back().last < p.addr) {
                pop();
            }
            Open o{static_cast<Addr>(p.addr | ~mask(p.len)), p.priority, p.len, p.value};
            if (!stack.empty()) {
                const Open& t = stack.back();
                if (t.prio > o.prio || (t.prio == o.prio && t.len >= o.len)) {
                    o.prio = t.prio;
                    o.len = t.len;
                    o.value = t.value;
                }
            }
            emit(p.addr, o.value);
            stack.push_back(o);
        }
        while (!stack.empty()) {
            pop();
        }
        // Merge neighbours that map to the same value.
        size_t w = 0;
        for (size_t r = 0; r < starts_.size(); ++r) {
            if (w > 0 && values_[w - 1] == values_[r]) {
                continue;
            }
            starts_[w] = starts_[r];
            values_[w] = values_[r];
            ++w;
        }
        starts_.resize(w);
        values_.resize(w);
        // Large tables get a first-level index on the top 16 address bits, so a lookup
        // binary-searches only the intervals that start in its /16 (a few, not ~20 steps).
        index_.clear();
        if (starts_.size() > kIndexFrom) {
            index_.resize((size_t{1} << 16) + 1);
            size_t j = 0;
            for (size_t k = 0; k <= (size_t{1} << 16); ++k) {
                const Addr at = k == (size_t{1} << 16) ? Addr{0} : static_cast<Addr>(static_cast<Addr>(k) << (kBits - 16));
                if (k == (size_t{1} << 16)) {
                    j = starts_.size();
                } else {
                    while (j < starts_.size() && starts_[j] < at) {
                        ++j;
                    }
                }
                index_[k] = static_cast<uint32_t>(j);
            }
        }
    }

    uint32_t lookup(Addr a) const noexcept {
        // Last interval whose start <= a.
        auto first = starts_.begin();
        auto last = starts_.end();
        if (!index_.empty()) {
            const size_t k = static_cast<size_t>(a >> (kBits - 16));
            first += index_[k];
            last = starts_.begin() + index_[k + 1];
        }
        auto it = std::upper_bound(first, last, a);
        if (it == starts_.begin()) {
            return kNone;
        }
        return values_[static_cast<size_t>(it - starts_.begin()) - 1];
    }

    bool empty() const noexcept { return values_.size() <= 1 && (values_.empty() || values_[0] == kNone); }
    size_t intervals() const noexcept { return starts_.size(); }
    size_t memory_bytes() const noexcept {
        return starts_.size() * (sizeof(Addr) + sizeof(uint32_t)) + index_.size() * sizeof(uint32_t);
    }

    static Addr mask(unsigned len) noexcept {
        if (len == 0) {
            return 0;
        }
        return static_cast<Addr>(~Addr{0}) << (kBits - len);
    }

    static constexpr size_t kIndexFrom = 4096;  // intervals; smaller tables search directly

private:
    std::vector<Addr> starts_;
    std::vector<uint32_t> values_;
    std::vector<uint32_t> index_;   // [top 16 bits] -> first interval starting at or after
};

using PrefixTable4 = PrefixTable<uint32_t>;
using PrefixTable6 = PrefixTable<Ip6>;

} // namespace l7gate::dp
