#pragma once
// HostTable: exact hostnames and "*.suffix" wildcards in one flat open-addressing hash table,
// built on the control thread, read by workers once per flow when a hostname becomes known.
//
// A lookup hashes the name once for the exact entry, then every suffix that starts after a
// dot for the wildcards: "a.b.example.com" probes "a.b.example.com" (exact), then
// "b.example.com", "example.com", "com" (wildcards). "*.example.com" therefore matches
// "x.example.com" and "x.y.example.com" but neither "example.com" nor "notexample.com".
// Every entry carries a priority; the best match wins. Names are compared lowercased: the
// table stores them lowercased and callers pass a lowercased name.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace l7gate::dp {

class HostTable {
public:
    static constexpr uint32_t kNone = UINT32_MAX;

    struct Match {
        uint32_t value = kNone;
        uint32_t priority = 0;
    };

    // pattern: "name" or "*.suffix" (any case). Later inserts of the same pattern keep the
    // higher priority. Call before build().
    void add(std::string_view pattern, uint32_t priority, uint32_t value) {
        Pending p;
        p.wildcard = pattern.size() > 2 && pattern[0] == '*' && pattern[1] == '.';
        p.name.assign(p.wildcard ? pattern.substr(2) : pattern);
        for (char& c : p.name) {
            c = lower(c);
        }
        p.priority = priority;
        p.value = value;
        pending_.push_back(std::move(p));
    }

    void build() {
        size_t cap = 16;
        while (cap < pending_.size() * 2) {
            cap <<= 1;
        }
        slots_.assign(cap, Slot{});
        chars_.clear();
        mask_ = cap - 1;
        size_ = 0;
        for (const Pending& p : pending_) {
            const uint64_t h = hash(p.name, p.wildcard);
            size_t i = h & mask_;
            for (;; i = (i + 1) & mask_) {
                Slot& s = slots_[i];
                if (s.value == kNone) {
                    s.hash = h;
                    s.off = static_cast<uint32_t>(chars_.size());
                    s.len = static_cast<uint16_t>(p.name.size());
                    s.wildcard = p.wildcard;
                    s.priority = p.priority;
                    s.value = p.value;
                    chars_ += p.name;
                    ++size_;
                    break;
                }
                if (s.hash == h && s.wildcard == p.wildcard && view(s) == p.name) {
                    if (p.priority > s.priority) {
                        s.priority = p.priority;
                        s.value = p.value;
                    }
                    break;
                }
            }
        }
        pending_.clear();
        pending_.shrink_to_fit();
    }

    // host must be lowercase. Returns the best match (value kNone when none).
    Match lookup(std::string_view host) const noexcept {
        Match best;
        if (size_ == 0 || host.empty()) {
            return best;
        }
        probe(host, false, best);
        for (size_t i = 0; i < host.size(); ++i) {
            if (host[i] == '.' && i + 1 < host.size()) {
                probe(host.substr(i + 1), true, best);
            }
        }
        return best;
    }

    size_t size() const noexcept { return size_; }
    size_t memory_bytes() const noexcept { return slots_.size() * sizeof(Slot) + chars_.size(); }

    static char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

private:
    struct Slot {
        uint64_t hash = 0;
        uint32_t off = 0;
        uint16_t len = 0;
        bool wildcard = false;
        uint32_t priority = 0;
        uint32_t value = kNone;
    };
    struct Pending {
        std::string name;
        bool wildcard;
        uint32_t priority;
        uint32_t value;
    };

    static uint64_t hash(std::string_view s, bool wildcard) noexcept {
        uint64_t h = wildcard ? 0x84222325cbf29ce4ull : 0xcbf29ce484222325ull;  // FNV-1a
        for (char c : s) {
            h ^= static_cast<uint8_t>(c);
            h *= 0x100000001b3ull;
        }
        return h;
    }
    std::string_view view(const Slot& s) const noexcept { return std::string_view(chars_).substr(s.off, s.len); }

    void probe(std::string_view name, bool wildcard, Match& best) const noexcept {
        const uint64_t h = hash(name, wildcard);
        for (size_t i = h & mask_;; i = (i + 1) & mask_) {
            const Slot& s = slots_[i];
            if (s.value == kNone) {
                return;
            }
            if (s.hash == h && s.wildcard == wildcard && view(s) == name) {
                if (best.value == kNone || s.priority > best.priority) {
                    best.value = s.value;
                    best.priority = s.priority;
                }
                return;
            }
        }
    }

    std::vector<Slot> slots_;
    std::string chars_;
    std::vector<Pending> pending_;
    size_t mask_ = 0;
    size_t size_ = 0;
};

} // namespace l7gate::dp
