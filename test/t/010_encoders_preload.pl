# 010_encoders_preload.pl
#	The encoders with crossmodal in shared_preload_libraries: several sessions
#	encoding at the same time get identical results, and nothing hangs after
#	the postmaster's fork with 1 or 2 OpenBLAS threads per backend (serial
#	sessions and parallel workers alike).
use strict;
use warnings;

use Cwd qw(abs_path);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $golden = abs_path('test/golden');
my $m32 = 'tiny-clip-quickgelu-f32';
my $sessions = 4;

my $node = PostgreSQL::Test::Cluster->new('encoders_preload');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'crossmodal'
crossmodal.model_path = '$golden'
crossmodal.default_model = '$m32'
max_worker_processes = 16
max_parallel_workers = 8
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION crossmodal');

# Inputs: 60 texts and the ten golden images, several times over.
$node->safe_psql(
	'postgres', qq{
CREATE TABLE inputs AS
SELECT array_agg('a photo of thing number ' || g ORDER BY g) AS texts,
       (SELECT array_agg(pg_read_binary_file('$golden/images/' || f) ORDER BY f, r)
        FROM pg_ls_dir('$golden/images') f, generate_series(1, 3) r) AS images
FROM generate_series(1, 60) g;
CREATE TABLE captions AS
SELECT g AS id, 'caption ' || g AS caption FROM generate_series(1, 400) g;
ANALYZE captions;
});

# One fingerprint of everything a session computes: exact text forms.
my $work = qq{
SELECT md5(string_agg(e::text, '|'))
FROM inputs, LATERAL (SELECT unnest(encode_texts(texts)) AS e
                      UNION ALL SELECT unnest(encode_images(images))
                      UNION ALL SELECT encode_text('$m32', t) FROM unnest(texts[1:10]) t) x;
};

# Run $sql in $n concurrent psql sessions; returns their outputs.
sub concurrent
{
	my ($sql, $n) = @_;
	my @runs;
	for my $i (1 .. $n)
	{
		my %r = (out => '', err => '');
		$r{h} = IPC::Run::start(
			[ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-c', $sql ],
			'>', \$r{out}, '2>', \$r{err},
			IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
		push @runs, \%r;
	}
	for my $r (@runs)
	{
		eval { $r->{h}->finish; };
		$r->{err} .= "timed out or failed: $@" if $@;
		chomp $r->{out};
	}
	return @runs;
}

for my $threads (1, 2)
{
	my $reference = $node->safe_psql('postgres', "SET crossmodal.threads = $threads; $work");
	like($reference, qr/^[0-9a-f]{32}$/, "threads $threads: a session encodes");

	my @runs = concurrent("SET crossmodal.threads = $threads; $work", $sessions);
	is(scalar(grep { $_->{err} eq '' } @runs), $sessions,
		"threads $threads: $sessions concurrent sessions finish without error")
	  or diag(join "\n", map { $_->{err} } @runs);
	is(scalar(grep { $_->{out} eq $reference } @runs), $sessions,
		"threads $threads: every concurrent session computes exactly the reference");

	# Parallel workers are forked by the postmaster too.
	my $parallel = $node->safe_psql(
		'postgres', qq{
SET crossmodal.threads = $threads;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT sum(cosine_distance(encode_text('$m32', caption), encode_text('$m32', 'caption'))) FROM captions;
});
	like($parallel, qr/Workers Launched: [12]/, "threads $threads: parallel workers encode");
}

# The two thread counts agree up to rounding.
my $agree = $node->safe_psql(
	'postgres', qq{
SET crossmodal.threads = 1;
CREATE TEMP TABLE one AS SELECT unnest(encode_images(images)) AS e, generate_subscripts(images, 1) AS i FROM inputs;
SET crossmodal.threads = 2;
SELECT bool_and(one.e <-> two.e < 1e-5)
FROM one JOIN (SELECT unnest(encode_images(images)) AS e, generate_subscripts(images, 1) AS i FROM inputs) two USING (i);
});
is($agree, 't', 'threads 1 and 2 give the same embeddings up to rounding');

# With 2 threads configured server-wide, a restarted server (library loaded
# in the postmaster before any fork) serves concurrent sessions.
$node->append_conf('postgresql.conf', "crossmodal.threads = 2\n");
$node->restart;
my $reference = $node->safe_psql('postgres', $work);
my @runs = concurrent($work, $sessions);
is(scalar(grep { $_->{err} eq '' && $_->{out} eq $reference } @runs), $sessions,
	'threads 2 from postgresql.conf: concurrent sessions after restart agree')
  or diag(join "\n", map { $_->{err} } @runs);

# A cancelled encode leaves a preloaded backend usable.
my $cancelled = $node->psql(
	'postgres', qq{
SET statement_timeout = '50ms';
SELECT cardinality(encode_images(array_agg(i))) FROM inputs, unnest(images) i, generate_series(1, 50);
});
isnt($cancelled, 0, 'statement_timeout stops a long batch');
is($node->safe_psql('postgres', $work), $reference, 'the server encodes as before afterwards');

# pg_cancel_backend and pg_terminate_backend stop an encode in progress.
my $long = qq{SELECT cardinality(encode_images(array_agg(i))) FROM inputs, unnest(images) i, generate_series(1, 300);};
for my $case ([ 'pg_cancel_backend', qr/canceling statement due to user request/ ],
	[ 'pg_terminate_backend', qr/terminating connection due to administrator command/ ])
{
	my ($fn, $expect) = @$case;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start([ 'psql', '-XAtq', '-d', $node->connstr('postgres'), '-c', $long ],
		'>', \$out, '2>', \$err, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE '%generate_series(1, 300)%' AND pid <> pg_backend_pid() AND state = 'active'")
	  or die "the long encode did not start";
	sleep 1;
	my $t0 = time;
	$node->safe_psql('postgres',
		"SELECT $fn(pid) FROM pg_stat_activity WHERE query LIKE '%generate_series(1, 300)%' AND pid <> pg_backend_pid()");
	eval { $h->finish; };
	like($err, $expect, "$fn stops an encode in progress");
	cmp_ok(time - $t0, '<=', 10, "$fn: stopped within seconds");
	is($node->safe_psql('postgres', $work), $reference, "$fn: the server encodes as before afterwards");
}

$node->stop;
done_testing();
