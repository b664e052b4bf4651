#pragma once
// GeoIP for the control thread: a MaxMind DB (GeoLite2-Country / GeoIP2-Country shaped) read
// with libmaxminddb. The policy engine does not look addresses up per packet; it walks the
// whole search tree once (for_each_network) and compiles the networks of the countries and
// continents a policy names into its own prefix tables, so the data plane never touches the
// database. A reload opens a new GeoIpDb and drops the old one.
//
// Every const method only reads the memory-mapped file, so several threads may use one open
// database at once.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

struct MMDB_s;

namespace l7gate::ctl {

struct GeoNet {
    uint8_t ip_version;      // 4 or 6
    uint8_t addr[16];        // network address (first 4 bytes for IPv4), host bits zero
    uint8_t prefix_len;      // 0..32 or 0..128
    std::string country;     // ISO 3166 alpha-2 code, "" when the record has none
    std::string continent;   // two-letter continent code (AF AN AS EU NA OC SA), "" when none
};

class GeoIpDb {
public:
    GeoIpDb() = default;
    GeoIpDb(const GeoIpDb&) = delete;
    GeoIpDb& operator=(const GeoIpDb&) = delete;
    // The MMDB_s lives on the heap: libmaxminddb's entries point back at it, so moving the
    // object must not move the struct.
    GeoIpDb(GeoIpDb&&) noexcept = default;
    GeoIpDb& operator=(GeoIpDb&&) noexcept = default;
    ~GeoIpDb();

    // Opens (memory-maps) the database, closing any previous one first. Returns "" on
    // success, else one line "<path>: <reason>"; on failure no database is open.
    std::string open(const std::string& path);
    bool is_open() const { return mmdb_ != nullptr; }

    // Calls fn for every network of the database that has data, each exactly once: the IPv4
    // part (the ::/96 subtree of an IPv6 database, or the whole tree of an IPv4 one) as
    // ip_version 4 networks; IPv6 networks as ip_version 6. MaxMind's IPv4 aliases inside the
    // IPv6 tree (::ffff:0:0/96, 2001::/32 and 2002::/16 point at the IPv4 subtree) are not
    // reported again as IPv6 networks. Networks are maximal subtrees as stored in the tree (a
    // leaf record at depth d gives one network of prefix length d, minus 96 for the IPv4
    // part), reported in address order, IPv4 first. Data records are decoded once per
    // distinct data offset.
    // Returns true when the whole tree was walked. False when no database is open, or when
    // the file is corrupt (a record pointing outside the data section or back at the root, a
    // node reached twice, a node below the last address bit, an undecodable data record): the
    // walk stops there, the networks reported so far are incomplete and the caller should
    // refuse the database rather than enforce a partial country list.
    bool for_each_network(const std::function<void(const GeoNet&)>& fn) const;

    // Single lookup (control-thread tools and tests): returns false when the address does
    // not parse or the database has no data for it. A record without a country (or
    // continent) gives true with that string empty.
    bool lookup(const std::string& ip, std::string& country, std::string& continent) const;

    // The metadata's database_type, e.g. "GeoLite2-Country"; "" when nothing is open.
    std::string database_type() const;

private:
    struct Closer {
        void operator()(MMDB_s* m) const;
    };
    std::unique_ptr<MMDB_s, Closer> mmdb_;
};

} // namespace l7gate::ctl
