# 090_hnsw_check.pl: crossmodal_hnsw_check finds each kind of damage.
#
# One table and, for each storage form (float4, half, int8, rabitq), one
# pristine crossmodal_hnsw index and one index per kind of damage, all built
# alike.  With the server stopped, this script edits each
# index's relation file (the test-only way to corrupt pages: byte edits at
# places it finds by parsing the pages as hnsw.h lays them out), starts the
# server, and checks that crossmodal_hnsw_check reports that kind of problem
# for that index, and nothing for the pristine one, on the primary and on a
# streaming standby, with and without heapallindexed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $BLCKSZ = 8192;
my $DIMS = 8;
my $M = 4;

my $node = PostgreSQL::Test::Cluster->new('hnsw_check');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', "autovacuum = off\n");
$node->start;
$node->safe_psql('postgres', qq{
CREATE EXTENSION crossmodal;
CREATE TABLE items (id int PRIMARY KEY, emb embedding($DIMS));
INSERT INTO items SELECT i, (SELECT array_agg(sin(i * 7.1 + d * 1.3))::real[] FROM generate_series(1, $DIMS) d WHERE i > 0)::embedding
	FROM generate_series(1, 400) i;
DELETE FROM items WHERE id % 10 = 0;
});

# The kinds of damage, each with the problem it must produce and whether it
# needs heapallindexed to be seen; each is done to an index of every storage
# form, except those named in %only.
my @damage = (
	[ 'meta_magic',      'metapage' ],
	[ 'meta_version',    'metapage' ],
	[ 'meta_m',          'metapage' ],
	[ 'meta_dims',       'dimensions' ],
	[ 'entry_slot',      'entry point' ],
	[ 'entry_level',     'entry point' ],
	[ 'page_header',     'page header' ],
	[ 'page_id',         'page special' ],
	[ 'page_flags',      'page special' ],
	[ 'lp_dead',         'line pointer' ],
	[ 'lp_misaligned',   'line pointer' ],
	[ 'element_level',   'element size' ],
	[ 'element_over_entry', 'element level' ],
	[ 'element_flags',   'element flags' ],
	[ 'element_heaptid', 'element heap tid' ],
	[ 'code_nan',        'element code' ],
	[ 'code_changed',    'neighbour distance' ],
	[ 'dist_changed',    'neighbour distance' ],
	[ 'link_past_end',   'neighbour tid' ],
	[ 'link_metapage',   'neighbour tid' ],
	[ 'link_self',       'neighbour tid' ],
	[ 'link_duplicate',  'neighbour list' ],
	[ 'link_gap',        'neighbour list' ],
	[ 'link_level',      'neighbour level' ],
	[ 'freed_slot',      'link to freed slot' ],
	[ 'freed_slot',      'heap row not indexed', 1 ],
	[ 'heaptid_twice',   'heap tid indexed twice', 1 ],
	[ 'heaptid_twice',   'heap row not indexed', 1 ],
	[ 'link_unsorted',   'neighbour list' ],
	[ 'meta_storage',    'metapage' ],
	[ 'int8_range',      'element code' ],
	[ 'int8_norm',       'element code' ],
	[ 'centroid_count',  'centroid' ],
	[ 'centroid_nan',    'centroid' ],
	[ 'centroid_flags',  'centroid' ],
);
my @forms = ('float4', 'half', 'int8', 'rabitq');
my %only = (
	code_changed   => ['float4'],    # the compact forms' link distances are estimates: not checked
	meta_storage   => ['float4'],
	int8_range     => ['int8'],
	int8_norm      => ['int8'],
	centroid_count => ['rabitq'],
	centroid_nan   => ['rabitq'],
	centroid_flags => ['rabitq'],
);
# dist_changed: float4 recomputes the distance; the other forms see the list out of order
my %problem_for = (dist_changed => { half => 'neighbour list', int8 => 'neighbour list', rabitq => 'neighbour list' });
my %kinds = map { $_->[0] => 1 } @damage;
my @indexes;    # [ name, form, kind ]
for my $form (@forms)
{
	for my $kind ('pristine', sort keys %kinds)
	{
		next if $only{$kind} && !grep { $_ eq $form } @{ $only{$kind} };
		push @indexes, [ "${form}_$kind", $form, $kind ];
	}
}

for my $ix (@indexes)
{
	my ($name, $form) = @$ix;
	$node->safe_psql('postgres',
		"CREATE INDEX idx_$name ON items USING crossmodal_hnsw (emb embedding_l2_ops) WITH (m = $M, ef_construction = 16, storage = $form)");
}
$node->safe_psql('postgres', 'VACUUM items');

sub check_rows
{
	my ($n, $index, $all) = @_;
	$all = $all ? 'true' : 'false';
	return $n->safe_psql('postgres',
		"SELECT problem || ': ' || detail FROM crossmodal_hnsw_check('idx_$index', $all) ORDER BY blkno, offnum, problem");
}

for my $form (@forms)
{
	is(check_rows($node, "${form}_pristine", 1), '', "$form: a fresh index has no problems, heap included");
}
is($node->safe_psql('postgres', qq{
SELECT string_agg(c.relname || ' ' || k.problem, ', ')
FROM pg_class c, LATERAL crossmodal_hnsw_check(c.oid::regclass) k WHERE c.relname LIKE 'idx%'}),
	'', 'every index is in good order before the damage');

my %file = map {
	$_->[0] => $node->data_dir . '/' . $node->safe_psql('postgres', "SELECT pg_relation_filepath('idx_$_->[0]')")
} @indexes;

my $standby;
{
	$node->backup('before');
	$standby = PostgreSQL::Test::Cluster->new('hnsw_check_standby');
	$standby->init_from_backup($node, 'before', has_streaming => 1);
	$standby->start;
	$node->wait_for_catchup($standby, 'replay', $node->lsn('insert'));
	is(check_rows($standby, 'float4_pristine', 1), '', 'on the standby too, heap included');
	is(check_rows($standby, 'rabitq_pristine', 1), '', 'on the standby too, heap included (rabitq)');
	$standby->stop;
}

$node->stop;

# ---------- page access, as hnsw.h lays the pages out ----------

sub read_block
{
	my ($path, $blkno) = @_;
	open my $f, '<:raw', $path or die "$path: $!";
	sysseek($f, $blkno * $BLCKSZ, 0) or die;
	sysread($f, my $page, $BLCKSZ) == $BLCKSZ or die "short read of block $blkno of $path";
	close $f;
	return $page;
}

sub write_block
{
	my ($path, $blkno, $page) = @_;
	length($page) == $BLCKSZ or die;
	open my $f, '+<:raw', $path or die "$path: $!";
	sysseek($f, $blkno * $BLCKSZ, 0) or die;
	syswrite($f, $page) == $BLCKSZ or die;
	close $f;
}

sub nblocks { return (-s $_[0]) / $BLCKSZ; }

# Line pointer i (1-based): (offset, flags, length).
sub line_pointer
{
	my ($page, $i) = @_;
	my $lp = unpack('V', substr($page, 24 + 4 * ($i - 1), 4));
	return ($lp & 0x7FFF, ($lp >> 15) & 3, $lp >> 17);
}

sub set_line_pointer
{
	my ($page, $i, $off, $flags, $len) = @_;
	substr($$page, 24 + 4 * ($i - 1), 4) = pack('V', $off | ($flags << 15) | ($len << 17));
}

sub max_offset { return (unpack('v', substr($_[0], 12, 2)) - 24) / 4; }

my $CODE = 12;    # the element header: level, flags, unused, heaptid, pad
# Bytes of an element's code in each storage form (hnsw.h), for $DIMS dimensions.
sub align4 { return ($_[0] + 3) & ~3; }
my %code_size = (
	float4 => 4 * $DIMS,
	half   => align4(4 + 2 * $DIMS),
	int8   => align4(12 + $DIMS),
	rabitq => 12 + ((($DIMS + 63) >> 6) << 3),
);
my $form;    # the storage form of the index being damaged
sub nslots { return 2 * $M + $_[0] * $M; }
sub dist_at { my ($level, $slot) = @_; return $CODE + $code_size{$form} + 4 * $slot; }
sub tid_at { my ($level, $slot) = @_; return $CODE + $code_size{$form} + 4 * nslots($level) + 6 * $slot; }
sub page_flags { return unpack('v', substr($_[0], $BLCKSZ - 8, 2)); }
sub pack_tid { my ($blk, $off) = @_; return pack('vvv', $blk >> 16, $blk & 0xFFFF, $off); }
sub unpack_tid
{
	my ($hi, $lo, $off) = unpack('vvv', $_[0]);
	return (($hi << 16) | $lo, $off);
}

# Every element of an index file: { blk, off, pos (byte offset in page), level, tuple }.
sub elements
{
	my ($path) = @_;
	my @e;
	for my $blk (1 .. nblocks($path) - 1)
	{
		my $page = read_block($path, $blk);
		next unless page_flags($page) == 2;    # HNSW_PAGE_ELEMENTS, not a centroid page
		for my $i (1 .. max_offset($page))
		{
			my ($off, $flags, $len) = line_pointer($page, $i);
			next unless $flags == 1;
			push @e, { blk => $blk, off => $i, pos => $off, len => $len,
				level => ord(substr($page, $off, 1)) };
		}
	}
	return @e;
}

sub first_element_block
{
	my ($path) = @_;
	for my $blk (1 .. nblocks($path) - 1)
	{
		return $blk if page_flags(read_block($path, $blk)) == 2;
	}
	die "no element page in $path";
}

# Applies edit(\$page, $element) to the element's page.
sub edit_element
{
	my ($path, $e, $edit) = @_;
	my $page = read_block($path, $e->{blk});
	$edit->(\$page, $e);
	write_block($path, $e->{blk}, $page);
}

sub tuple_bytes
{
	my ($path, $e, $at, $len) = @_;
	return substr(read_block($path, $e->{blk}), $e->{pos} + $at, $len);
}

sub set_tuple_bytes
{
	my ($path, $e, $at, $bytes) = @_;
	edit_element($path, $e, sub { substr(${ $_[0] }, $e->{pos} + $at, length $bytes) = $bytes; });
}

sub edit_meta
{
	my ($path, $at, $bytes) = @_;
	my $page = read_block($path, 0);
	substr($page, 24 + $at, length $bytes) = $bytes;
	write_block($path, 0, $page);
}

# The first element of at least min_level whose slots 0 and 1 hold links;
# returns it and the target of slot 0.
sub linked_element
{
	my ($path, $min_level) = @_;
	for my $e (elements($path))
	{
		next if $e->{level} < ($min_level // 0);
		my ($blk, $off) = unpack_tid(tuple_bytes($path, $e, tid_at($e->{level}, 0), 6));
		my (undef, $off1) = unpack_tid(tuple_bytes($path, $e, tid_at($e->{level}, 1), 6));
		return ($e, $blk, $off) if $off != 0 && $off1 != 0;
	}
	die "no linked element in $path";
}

my %damage = (
	meta_magic   => sub { edit_meta($_[0], 0, pack('V', 0xDEADBEEF)) },
	meta_version => sub { edit_meta($_[0], 4, pack('V', 99)) },
	meta_m       => sub { edit_meta($_[0], 12, pack('v', 1)) },
	meta_dims    => sub { edit_meta($_[0], 8, pack('l<', $DIMS + 1)) },
	entry_slot   => sub {
		my $blk = first_element_block($_[0]);
		my $p = read_block($_[0], $blk);
		edit_meta($_[0], 16, pack_tid($blk, max_offset($p) + 5));
	},
	entry_level => sub {
		my $meta = read_block($_[0], 0);
		my $level = unpack('s<', substr($meta, 24 + 22, 2));
		die 'entry point at level 0' if $level == 0;
		edit_meta($_[0], 22, pack('s<', $level - 1));
	},
	page_header => sub {
		# pd_special moved (still a header PostgreSQL's own page check accepts)
		my $blk = first_element_block($_[0]);
		my $p = read_block($_[0], $blk);
		substr($p, 16, 2) = pack('v', $BLCKSZ - 16);
		write_block($_[0], $blk, $p);
	},
	page_id => sub {
		my $blk = first_element_block($_[0]);
		my $p = read_block($_[0], $blk);
		substr($p, $BLCKSZ - 8 + 2, 2) = pack('v', 0x1234);
		write_block($_[0], $blk, $p);
	},
	page_flags => sub {
		my $blk = first_element_block($_[0]);
		my $p = read_block($_[0], $blk);
		substr($p, $BLCKSZ - 8, 2) = pack('v', 1);    # HNSW_PAGE_META
		write_block($_[0], $blk, $p);
	},
	lp_dead => sub {
		my ($e) = elements($_[0]);
		edit_element($_[0], $e, sub { set_line_pointer($_[0], $e->{off}, $e->{pos}, 3, $e->{len}) });
	},
	lp_misaligned => sub {
		my ($e) = elements($_[0]);
		edit_element($_[0], $e, sub { set_line_pointer($_[0], $e->{off}, $e->{pos} + 2, 1, $e->{len}) });
	},
	element_level => sub {
		my ($e) = grep { $_->{level} == 0 } elements($_[0]);
		set_tuple_bytes($_[0], $e, 0, chr(1));
	},
	element_over_entry => sub {
		# the entry point moved to an element of level 0, below the others
		my ($e) = grep { $_->{level} == 0 } elements($_[0]);
		edit_meta($_[0], 16, pack_tid($e->{blk}, $e->{off}) . pack('s<', 0));
	},
	element_flags   => sub { my ($e) = elements($_[0]); set_tuple_bytes($_[0], $e, 1, chr(0x80)); },
	element_heaptid => sub { my ($e) = elements($_[0]); set_tuple_bytes($_[0], $e, 8, pack('v', 0)); },
	code_nan => sub {
		my ($e) = elements($_[0]);
		if ($form eq 'float4') { set_tuple_bytes($_[0], $e, $CODE, pack('V', 0x7FC00000)); }    # x[0] NaN
		elsif ($form eq 'half') { set_tuple_bytes($_[0], $e, $CODE + 4, pack('v', 0x7C00)); }   # x[0] infinite
		elsif ($form eq 'int8') { set_tuple_bytes($_[0], $e, $CODE, pack('V', 0x7FC00000)); }   # scale NaN
		else { set_tuple_bytes($_[0], $e, $CODE + 4, pack('f<', 2.0)); }                     # dot outside (0, 1]
	},
	int8_range => sub { my ($e) = elements($_[0]); set_tuple_bytes($_[0], $e, $CODE + 12, pack('c', -128)); },
	int8_norm  => sub {
		# a value whose magnitude changes, so that the stored norm2 no longer matches
		my ($e) = elements($_[0]);
		my $x = unpack('c', tuple_bytes($_[0], $e, $CODE + 12, 1));
		set_tuple_bytes($_[0], $e, $CODE + 12, pack('c', abs($x) > 60 ? 0 : 127));
	},
	link_unsorted => sub {
		# swap the first two links (TIDs and distances together) of a list whose distances differ
		for my $e (elements($_[0]))
		{
			my ($t0, $t1) = map { tuple_bytes($_[0], $e, tid_at($e->{level}, $_), 6) } (0, 1);
			my ($d0, $d1) = map { tuple_bytes($_[0], $e, dist_at($e->{level}, $_), 4) } (0, 1);
			next if (unpack_tid($t1))[1] == 0 || unpack('f<', $d0) == unpack('f<', $d1);
			set_tuple_bytes($_[0], $e, tid_at($e->{level}, 0), $t1 . $t0);
			set_tuple_bytes($_[0], $e, dist_at($e->{level}, 0), $d1 . $d0);
			return;
		}
		die "no list of two distinct distances in $_[0]";
	},
	meta_storage   => sub { edit_meta($_[0], 24, chr(9)) },
	centroid_count => sub { edit_meta($_[0], 26, pack('v', 3)) },
	centroid_nan   => sub {
		my $p = read_block($_[0], 1);
		substr($p, 24 + 4 * 2, 4) = pack('V', 0x7FC00000);
		write_block($_[0], 1, $p);
	},
	centroid_flags => sub {
		my $p = read_block($_[0], 1);
		substr($p, $BLCKSZ - 8, 2) = pack('v', 2);    # HNSW_PAGE_ELEMENTS
		write_block($_[0], 1, $p);
	},
	code_changed    => sub {
		my ($e) = linked_element($_[0]);
		my $x = unpack('f<', tuple_bytes($_[0], $e, $CODE, 4));
		set_tuple_bytes($_[0], $e, $CODE, pack('f<', $x + 3.0));
	},
	dist_changed => sub {
		my ($e) = linked_element($_[0]);
		set_tuple_bytes($_[0], $e, dist_at($e->{level}, 0), pack('f<', 123.0));
	},
	link_past_end => sub {
		my ($e) = linked_element($_[0]);
		set_tuple_bytes($_[0], $e, tid_at($e->{level}, 0), pack_tid(nblocks($_[0]) + 10, 1));
	},
	link_metapage => sub {
		my ($e) = linked_element($_[0]);
		set_tuple_bytes($_[0], $e, tid_at($e->{level}, 0), pack_tid(0, 1));
	},
	link_self => sub {
		my ($e) = linked_element($_[0]);
		set_tuple_bytes($_[0], $e, tid_at($e->{level}, 0), pack_tid($e->{blk}, $e->{off}));
	},
	link_duplicate => sub {
		my ($e) = linked_element($_[0]);
		my $level = $e->{level};
		set_tuple_bytes($_[0], $e, tid_at($level, 1), tuple_bytes($_[0], $e, tid_at($level, 0), 6));
		set_tuple_bytes($_[0], $e, dist_at($level, 1), tuple_bytes($_[0], $e, dist_at($level, 0), 4));
	},
	link_gap => sub {
		my ($e) = linked_element($_[0]);
		set_tuple_bytes($_[0], $e, tid_at($e->{level}, 0), pack_tid(0xFFFFFFFF, 0));
	},
	link_level => sub {
		# layer 1 of an element of level >= 1, pointed at an element of level 0
		my ($e) = linked_element($_[0], 1);
		my ($low) = grep { $_->{level} == 0 && ($_->{blk} != $e->{blk} || $_->{off} != $e->{off}) }
		  elements($_[0]);
		set_tuple_bytes($_[0], $e, tid_at($e->{level}, 2 * $M), pack_tid($low->{blk}, $low->{off}));
	},
	freed_slot => sub {
		# free the slot of an element another element links to (as VACUUM would,
		# but without removing the links first)
		my (undef, $blk, $off) = linked_element($_[0]);
		my $page = read_block($_[0], $blk);
		set_line_pointer(\$page, $off, 0, 0, 0);
		write_block($_[0], $blk, $page);
	},
	heaptid_twice => sub {
		my ($a, $b) = elements($_[0]);
		set_tuple_bytes($_[0], $b, 4, tuple_bytes($_[0], $a, 4, 6));
	},
);

for my $ix (@indexes)
{
	my ($name, $kind);
	($name, $form, $kind) = @$ix;
	$damage{$kind}->($file{$name}) unless $kind eq 'pristine';
}
$node->start;

for my $f (@forms)
{
	is(check_rows($node, "${f}_pristine", 1), '', "$f: the pristine index still has no problems");
}
for my $ix (@indexes)
{
	my ($name, $f, $kind) = @$ix;
	for my $d (grep { $_->[0] eq $kind } @damage)
	{
		my (undef, $problem, $heap) = @$d;
		$problem = $problem_for{$kind}{$f} if $problem_for{$kind} && $problem_for{$kind}{$f};
		my $rows = check_rows($node, $name, $heap);
		like($rows, qr/^\Q$problem\E: /m, "$f: damage $kind is reported as \"$problem\"")
		  or diag($rows);
	}
}

# A damaged index can still be checked with heapallindexed (and says so when
# its elements cannot be read at all).
like(check_rows($node, 'float4_meta_magic', 1), qr/^metapage: The elements were not checked/m,
	'an unreadable metapage stops the check with a row that says so');
# A damaged centroid page is reported as that, not as an element page.
unlike(check_rows($node, 'rabitq_centroid_nan', 0), qr/^page special/m,
	'a damaged centroid page is not taken for an element page');

# The same findings on a standby that replays the damage's WAL-less pages?
# The damage was written under the server, not through WAL: a standby made
# from a new base backup has it.
$node->backup('damaged');
my $standby2 = PostgreSQL::Test::Cluster->new('hnsw_check_standby2');
$standby2->init_from_backup($node, 'damaged', has_streaming => 1);
$standby2->start;
like(check_rows($standby2, 'float4_freed_slot', 1), qr/^link to freed slot: /m,
	'on a standby, the damage is reported too');
like(check_rows($standby2, 'rabitq_centroid_nan', 0), qr/^centroid: /m,
	'on a standby, a damaged centroid is reported too');
is(check_rows($standby2, 'int8_pristine', 1), '', 'on a standby, the pristine index has no problems');
$standby2->stop;

$node->stop;
done_testing();
