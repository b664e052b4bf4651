#!/usr/bin/perl
# Writes a small GeoLite2-Country-shaped MaxMind DB for l7gate's GeoIP tests.
#
# Usage: tools/gen_geoip.pl OUT.mmdb
#
# Only documentation/benchmark address space is used (198.18.0.0/15, 203.0.113.0/24,
# 2001:db8::/32), so the fixture can never be mistaken for real geolocation data. The layout
# follows GeoLite2-Country: an IPv6 tree with 24-bit records, IPv4 stored under ::/96 and
# aliased from ::ffff:0:0/96, 2001::/32 (Teredo) and 2002::/16 (6to4), and records shaped like
# {continent => {code, geoname_id, names}, country => {iso_code, geoname_id, names}, ...}.
# The output is byte-for-byte deterministic: the build epoch is fixed and the writer sorts map
# keys.

use strict;
use warnings;

use MaxMind::DB::Writer::Tree;

die "usage: $0 OUT.mmdb\n" unless @ARGV == 1;
my $out = $ARGV[0];

# Real GeoNames ids, so the records look like GeoLite2's.
my %continents = (
    AS => [ 6255147, 'Asia' ],
    EU => [ 6255148, 'Europe' ],
    NA => [ 6255149, 'North America' ],
    OC => [ 6255151, 'Oceania' ],
    SA => [ 6255150, 'South America' ],
);
my %countries = (
    AU => [ 2077456, 'Australia',     0 ],
    BR => [ 3469034, 'Brazil',        0 ],
    CN => [ 1814991, 'China',         0 ],
    DE => [ 2921044, 'Germany',       1 ],
    FR => [ 3017382, 'France',        1 ],
    IT => [ 3175395, 'Italy',         1 ],
    JP => [ 1861060, 'Japan',         0 ],
    US => [ 6252001, 'United States', 0 ],
);

# [network, country or undef, continent]. The last row has a continent and no country, as
# GeoLite2 has for networks only known to be somewhere in a continent.
my @networks = (
    [ '198.18.0.0/24',   'IT', 'EU' ],
    [ '198.18.1.0/24',   'CN', 'AS' ],
    [ '198.18.2.0/23',   'DE', 'EU' ],
    [ '198.19.0.0/16',   'US', 'NA' ],
    [ '198.19.128.0/17', 'JP', 'AS' ],
    [ '203.0.113.0/24',  'BR', 'SA' ],
    [ '2001:db8:1::/48', 'FR', 'EU' ],
    [ '2001:db8:2::/48', 'CN', 'AS' ],
    [ '2001:db8:3::/48', 'AU', 'OC' ],
    [ '2001:db8:4::/48', undef, 'EU' ],
);

my %types = (
    code                 => 'utf8_string',
    continent            => 'map',
    country              => 'map',
    en                   => 'utf8_string',
    geoname_id           => 'uint32',
    is_in_european_union => 'boolean',
    iso_code             => 'utf8_string',
    names                => 'map',
    registered_country   => 'map',
);

my $tree = MaxMind::DB::Writer::Tree->new(
    ip_version    => 6,
    record_size   => 24,
    database_type => 'GeoLite2-Country',
    languages     => ['en'],
    description   => { en => 'l7gate GeoIP test fixture (documentation address space only)' },
    map_key_type_callback => sub {
        my $t = $types{ $_[0] };
        die "no type for map key '$_[0]'\n" unless defined $t;
        return $t;
    },
    alias_ipv6_to_ipv4 => 1,
    # Every network here is reserved (benchmarking, documentation); by default the writer
    # silently drops reserved networks.
    remove_reserved_networks => 0,
    # A fixed epoch (2024-01-01T00:00:00Z) instead of time(), so regenerating gives the
    # same bytes.
    _build_epoch => 1704067200,
);

sub country_record {
    my ($iso) = @_;
    my ( $id, $name, $eu ) = @{ $countries{$iso} };
    my %c = ( geoname_id => $id, iso_code => $iso, names => { en => $name } );
    $c{is_in_european_union} = 1 if $eu;
    return \%c;
}

# With the default merge strategy ('none') the last insert wins where networks overlap, so
# inserting shorter prefixes first lets the more specific network (198.19.128.0/17 inside
# 198.19.0.0/16) win for its addresses; the writer splits the /16 around it.
sub prefix_len { return ( split m{/}, $_[0] )[1] }
for my $n ( sort { prefix_len( $a->[0] ) <=> prefix_len( $b->[0] ) or $a->[0] cmp $b->[0] }
    @networks )
{
    my ( $net, $iso, $cont ) = @$n;
    my ( $cid, $cname ) = @{ $continents{$cont} };
    my %rec = ( continent => { code => $cont, geoname_id => $cid, names => { en => $cname } } );
    if ( defined $iso ) {
        $rec{country}            = country_record($iso);
        $rec{registered_country} = country_record($iso);
    }
    $tree->insert_network( $net, \%rec );
}

open my $fh, '>:raw', $out or die "$out: $!\n";
$tree->write_tree($fh);
close $fh or die "$out: $!\n";
