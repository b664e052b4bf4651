#include "control/policy/geoip.hpp"

#include <arpa/inet.h>

#include <cerrno>
#include <cstring>
#include <unordered_map>
#include <vector>

#include <maxminddb.h>

namespace l7gate::ctl {

namespace {

// Where the IPv4 part of an IPv6 tree starts: MaxMind stores IPv4 addresses as ::a.b.c.d.
constexpr unsigned kIpv4Depth = 96;
constexpr uint32_t kNoNode = UINT32_MAX;

struct Codes {
    std::string country;
    std::string continent;
};

// Reads the string at (key, subkey) of a data record into out ("" when the record has no such
// key or it is not a string). False only when the record cannot be decoded (corrupt file).
bool get_string(MMDB_entry_s entry, const char* key, const char* subkey, std::string& out) {
    out.clear();
    MMDB_entry_data_s d{};
    int rc = MMDB_get_value(&entry, &d, key, subkey, static_cast<const char*>(nullptr));
    if (rc == MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR) {
        return true;  // the key is missing, or the value is not a map: a record without it
    }
    if (rc != MMDB_SUCCESS) {
        return false;
    }
    if (d.has_data && d.type == MMDB_DATA_TYPE_UTF8_STRING) {
        // MMDB strings are not NUL-terminated: they point into the mapped file.
        out.assign(d.utf8_string, d.data_size);
    }
    return true;
}

bool decode(const MMDB_entry_s& entry, Codes& c) {
    // GeoLite2/GeoIP2 layout: {country: {iso_code}, continent: {code}}. registered_country is
    // deliberately ignored: a policy on "country" means where the address is used.
    return get_string(entry, "country", "iso_code", c.country) &&
           get_string(entry, "continent", "code", c.continent);
}

// One record still to visit: a search-node pointer or a data pointer, with the network it
// covers (the path bits taken so far and their count).
struct Pending {
    uint64_t record;
    MMDB_entry_s entry;
    uint8_t type;
    uint8_t depth;
    uint8_t addr[16];
};

bool zero_bytes(const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

// Node number of the IPv4 subtree of an IPv6 tree: the node reached by 96 left (zero-bit)
// records from the root. kNoNode when the zero path ends earlier (no IPv4 subtree: the
// record found there covers more than ::/96 and is an IPv6 network).
uint32_t find_ipv4_root(const MMDB_s* m) {
    uint32_t node = 0;
    for (unsigned d = 0; d < kIpv4Depth; ++d) {
        MMDB_search_node_s sn{};
        if (MMDB_read_node(m, node, &sn) != MMDB_SUCCESS ||
            sn.left_record_type != MMDB_RECORD_TYPE_SEARCH_NODE) {
            return kNoNode;
        }
        node = static_cast<uint32_t>(sn.left_record);
    }
    return node;
}

} // namespace

void GeoIpDb::Closer::operator()(MMDB_s* m) const {
    MMDB_close(m);
    delete m;
}

GeoIpDb::~GeoIpDb() = default;

std::string GeoIpDb::open(const std::string& path) {
    mmdb_.reset();
    auto* m = new MMDB_s{};
    errno = 0;
    int rc = MMDB_open(path.c_str(), MMDB_MODE_MMAP, m);
    int err = errno;
    if (rc != MMDB_SUCCESS) {
        // A failed MMDB_open has already freed what it allocated: MMDB_close must not run.
        delete m;
        std::string msg = path + ": " + MMDB_strerror(rc);
        if ((rc == MMDB_FILE_OPEN_ERROR || rc == MMDB_IO_ERROR) && err != 0) {
            msg += std::string(" (") + std::strerror(err) + ")";
        }
        return msg;
    }
    mmdb_.reset(m);
    uint16_t v = m->metadata.ip_version;
    if (v != 4 && v != 6) {
        mmdb_.reset();
        return path + ": unsupported ip_version " + std::to_string(v) + " in metadata";
    }
    return {};
}

std::string GeoIpDb::database_type() const {
    if (!mmdb_ || mmdb_->metadata.database_type == nullptr) {
        return {};
    }
    return mmdb_->metadata.database_type;
}

bool GeoIpDb::lookup(const std::string& ip, std::string& country, std::string& continent) const {
    country.clear();
    continent.clear();
    if (!mmdb_) {
        return false;
    }
    // libmaxminddb parses with getaddrinfo, which also takes inet_aton's shorthand
    // ("198.19.200" is 198.19.0.200): accept only the canonical forms.
    unsigned char buf[16];
    if (inet_pton(AF_INET, ip.c_str(), buf) != 1 && inet_pton(AF_INET6, ip.c_str(), buf) != 1) {
        return false;
    }
    int gai_error = 0;
    int mmdb_error = MMDB_SUCCESS;
    MMDB_lookup_result_s r = MMDB_lookup_string(mmdb_.get(), ip.c_str(), &gai_error, &mmdb_error);
    if (gai_error != 0 || mmdb_error != MMDB_SUCCESS || !r.found_entry) {
        return false;
    }
    Codes c;
    if (!decode(r.entry, c)) {
        return false;
    }
    country = std::move(c.country);
    continent = std::move(c.continent);
    return true;
}

bool GeoIpDb::for_each_network(const std::function<void(const GeoNet&)>& fn) const {
    if (!mmdb_) {
        return false;
    }
    const MMDB_s* m = mmdb_.get();
    const bool v6 = m->metadata.ip_version == 6;
    const unsigned max_depth = v6 ? 128 : 32;
    const uint32_t node_count = m->metadata.node_count;
    const uint32_t v4_root = v6 ? find_ipv4_root(m) : kNoNode;

    // In a MaxMind tree every node has one parent, except the IPv4 root that the aliases
    // also point at (and those are skipped). A node reached twice means a corrupt file, and
    // a cycle would never end, so the walk stops there.
    std::vector<uint8_t> seen(node_count, 0);
    // Country data is shared by many networks (GeoLite2-Country has ~250 distinct records
    // for ~500k leaves): decode each data offset once.
    std::unordered_map<uint32_t, Codes> cache;

    // Depth-first, right child pushed first so networks come out in address order. The
    // stack holds at most one pending sibling per level, so it stays under 130 entries.
    std::vector<Pending> stack;
    stack.reserve(max_depth + 2);
    Pending root{};
    root.record = 0;
    root.type = MMDB_RECORD_TYPE_SEARCH_NODE;
    stack.push_back(root);

    GeoNet net{};
    while (!stack.empty()) {
        Pending p = stack.back();
        stack.pop_back();

        if (p.type == MMDB_RECORD_TYPE_DATA) {
            auto it = cache.find(p.entry.offset);
            if (it == cache.end()) {
                Codes c;
                if (!decode(p.entry, c)) {
                    return false;
                }
                it = cache.emplace(p.entry.offset, std::move(c)).first;
            }
            // The ::/96 part of an IPv6 tree is IPv4 space; a record above depth 96 on the
            // zero path covers IPv6 addresses too and stays an IPv6 network.
            std::memset(net.addr, 0, sizeof(net.addr));
            if (v6 && p.depth >= kIpv4Depth && zero_bytes(p.addr, 12)) {
                net.ip_version = 4;
                net.prefix_len = static_cast<uint8_t>(p.depth - kIpv4Depth);
                std::memcpy(net.addr, p.addr + 12, 4);
            } else {
                net.ip_version = v6 ? 6 : 4;
                net.prefix_len = p.depth;
                std::memcpy(net.addr, p.addr, v6 ? 16 : 4);
            }
            net.country = it->second.country;
            net.continent = it->second.continent;
            fn(net);
            continue;
        }

        // A search node.
        uint32_t node = static_cast<uint32_t>(p.record);
        if (node >= node_count || seen[node] != 0) {
            return false;
        }
        seen[node] = 1;
        MMDB_search_node_s sn{};
        if (MMDB_read_node(m, node, &sn) != MMDB_SUCCESS) {
            return false;
        }
        // The node's records cover depth + 1 bits; the right one sets bit number `depth`.
        const unsigned child_depth = p.depth + 1u;
        Pending kids[2];
        for (int side = 0; side < 2; ++side) {
            Pending& k = kids[side];
            k = p;
            k.depth = static_cast<uint8_t>(child_depth);
            k.record = side == 0 ? sn.left_record : sn.right_record;
            k.type = side == 0 ? sn.left_record_type : sn.right_record_type;
            k.entry = side == 0 ? sn.left_record_entry : sn.right_record_entry;
            if (side == 1) {
                k.addr[p.depth / 8] |= static_cast<uint8_t>(0x80u >> (p.depth % 8));
            }
        }
        // Check both records before pushing either, so a corrupt node stops the walk
        // without reporting half of it.
        bool push[2] = {false, false};
        for (int side = 0; side < 2; ++side) {
            const Pending& k = kids[side];
            switch (k.type) {
            case MMDB_RECORD_TYPE_EMPTY:
                break;
            case MMDB_RECORD_TYPE_DATA:
                // libmaxminddb accepts a pointer into the 16-byte separator before the data
                // section and gives it a wrapped-around offset; the format forbids it.
                if (k.record < uint64_t{node_count} + 16) {
                    return false;
                }
                push[side] = true;
                break;
            case MMDB_RECORD_TYPE_SEARCH_NODE:
                if (child_depth >= max_depth) {
                    // A node below the last address bit: nothing can be looked up there.
                    return false;
                }
                if (k.record == v4_root &&
                    !(child_depth == kIpv4Depth && zero_bytes(k.addr, 12))) {
                    // An alias (::ffff:0:0/96, Teredo, 6to4) of the IPv4 subtree, which is
                    // reported once through ::/96.
                    break;
                }
                push[side] = true;
                break;
            default:
                // MMDB_RECORD_TYPE_INVALID: points past the data section (or at the root).
                return false;
            }
        }
        if (push[1]) {
            stack.push_back(kids[1]);
        }
        if (push[0]) {
            stack.push_back(kids[0]);
        }
    }
    return true;
}

} // namespace l7gate::ctl
