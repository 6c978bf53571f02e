# 093_soak.pl: a mixed workload with crashes, checked after each restart.
#
# A primary with a streaming replica.  pgbench clients insert rows whose
# embedding is a generated encode_image column of real images (the fixtures
# of test/images), run top-k, filtered and text queries through three
# crossmodal_hnsw indexes (float4, int8, rabitq), update and delete rows;
# autovacuum runs often and another pgbench client checkpoints every few
# seconds.  At a random moment the postmaster gets SIGKILL; once its orphaned
# backends are gone it is started again (crash recovery), and then:
#   - every insert pgbench saw commit is there (a client numbers its inserts
#     1, 2, ... in a pgbench variable; pgbench's per-transaction log says how
#     many committed, and the rows of each client must be 1..K or 1..K+1,
#     the last one when the commit was made but its answer lost);
#   - every row is reachable through each index (an index scan run to the
#     end returns each row once), and through the links alone nearly all;
#   - crossmodal_hnsw_check(index, heapallindexed) finds nothing, on the
#     primary and on the replica;
#   - the replica, caught up, answers the same queries with the same rows.
#
# SOAK_SECONDS (default 30) is the workload's total time across rounds; each
# round runs 4..10 seconds (SOAK_ROUND_MIN/MAX) before the kill.  SOAK_SEED
# fixes the random moments.  The figures (rows written, crashes survived,
# queries run, rows lost) are printed at the end and, with SOAK_REPORT=FILE,
# written there.  bench/soak/run.sh runs this for N minutes.
use strict;
use warnings;
use Cwd qw(abs_path);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

my $total = $ENV{SOAK_SECONDS} // 30;
my $round_min = $ENV{SOAK_ROUND_MIN} // 4;
my $round_max = $ENV{SOAK_ROUND_MAX} // 10;
my $seed = $ENV{SOAK_SEED} // int(rand(1_000_000));
srand($seed);
note("soak: SOAK_SECONDS=$total SOAK_SEED=$seed");
my $clients = 4;
my $model = 'emoji-clip-en-ko';

my $primary = PostgreSQL::Test::Cluster->new('soak_primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', qq{
autovacuum = on
autovacuum_naptime = 1s
autovacuum_vacuum_threshold = 20
autovacuum_vacuum_scale_factor = 0.02
autovacuum_vacuum_insert_threshold = 100
autovacuum_vacuum_insert_scale_factor = 0.05
autovacuum_analyze_threshold = 50
max_wal_size = 64MB
fsync = on
synchronous_commit = on
log_min_messages = warning
});
$primary->start;

# The images: every fixture the decoders take, loaded by the server itself.
my $dir = abs_path('test/images');
my @files = grep { /\.(jpe?g|png|gif|bmp|tga|tiff?|webp)$/i && -s $_ <= 200_000 } glob("$dir/*");
my $list = join(',', map { "'$_'" } @files);
$primary->safe_psql('postgres', qq{
CREATE EXTENSION crossmodal;
CREATE TABLE images (id serial PRIMARY KEY, name text NOT NULL, data bytea NOT NULL, emb embedding NOT NULL);
DO \$\$
DECLARE f text;
BEGIN
	FOREACH f IN ARRAY ARRAY[$list]::text[] LOOP
		BEGIN
			INSERT INTO images (name, data, emb)
				SELECT f, d, encode_image('$model', d) FROM pg_read_binary_file(f) d;
		EXCEPTION WHEN others THEN
			NULL;	-- a fixture some build leaves out (or one meant to fail)
		END;
	END LOOP;
END \$\$;
CREATE TABLE items (
	id bigint PRIMARY KEY,	-- > 0: run * 10^8 + client * 10^6 + n, never deleted; < 0: churn
	tag int NOT NULL,
	img int NOT NULL,
	updates int NOT NULL DEFAULT 0,
	data bytea NOT NULL,
	emb embedding GENERATED ALWAYS AS (encode_image('$model', data)) STORED
);
CREATE SEQUENCE churn;
INSERT INTO items (id, tag, img, data)
	SELECT -nextval('churn'), g % 10, i.id, i.data
	FROM generate_series(1, 300) g JOIN images i ON i.id = 1 + g % (SELECT count(*) FROM images);
CREATE INDEX items_f4 ON items USING crossmodal_hnsw (emb embedding_cosine_ops) WITH (m = 8, ef_construction = 32);
CREATE INDEX items_i8 ON items USING crossmodal_hnsw (emb embedding_l2_ops) WITH (m = 8, ef_construction = 32, storage = int8);
CREATE INDEX items_rq ON items USING crossmodal_hnsw (emb embedding_ip_ops) WITH (m = 8, ef_construction = 32, storage = rabitq);
});
my ($nimages, $distinct) = split /\|/,
  $primary->safe_psql('postgres', 'SELECT count(*), count(DISTINCT emb::text) FROM images');
cmp_ok($nimages, '>=', 30, "$nimages real images of " . scalar(@files) . " fixtures decode ($distinct distinct embeddings)");

$primary->backup('soak');
my $standby = PostgreSQL::Test::Cluster->new('soak_standby');
$standby->init_from_backup($primary, 'soak', has_streaming => 1);
$standby->append_conf('postgresql.conf', "wal_retrieve_retry_interval = 200ms\nhot_standby_feedback = on\n");
$standby->start;

# ---------- the pgbench scripts ----------
my $base = $primary->basedir;
my %scripts = (
	# script 0: the numbered inserts the check counts
	insert => q{
\set n :n + 1
\set img random(1, :nimages)
INSERT INTO items (id, tag, img, data)
	SELECT :run * 100000000 + :client_id * 1000000 + :n, :n % 10, id, data FROM images WHERE id = :img;
},
	churn => q{
\set img random(1, :nimages)
\set tag random(0, 9)
INSERT INTO items (id, tag, img, data) SELECT -nextval('churn'), :tag, id, data FROM images WHERE id = :img;
},
	delete => q{
DELETE FROM items WHERE id IN (SELECT id FROM items WHERE id < 0 ORDER BY id DESC LIMIT 3);
},
	update => q{
\set u random(0, :n)
\set img random(1, :nimages)
UPDATE items SET img = :img, data = (SELECT data FROM images WHERE id = :img), updates = updates + 1
	WHERE id = :run * 100000000 + :client_id * 1000000 + :u;
},
	topk => q{
\set img random(1, :nimages)
SELECT id FROM items ORDER BY emb <=> (SELECT emb FROM images WHERE id = :img) LIMIT 10;
SELECT id FROM items ORDER BY emb <-> (SELECT emb FROM images WHERE id = :img) LIMIT 10;
SELECT id FROM items ORDER BY emb <#> (SELECT emb FROM images WHERE id = :img) LIMIT 10;
},
	filtered => q{
\set img random(1, :nimages)
\set tag random(0, 9)
SELECT id FROM items WHERE tag = :tag ORDER BY emb <=> (SELECT emb FROM images WHERE id = :img) LIMIT 5;
},
	text => q{
\set k random(1, 4)
SELECT id FROM items
	ORDER BY emb <=> encode_text('emoji-clip-en-ko', (ARRAY['a red heart', 'a smiling face', 'a cat', 'a blue car'])[:k])
	LIMIT 10;
},
	checkpoint => q{
CHECKPOINT;
\sleep 3 s
},
);
for my $name (keys %scripts)
{
	PostgreSQL::Test::Utils::append_to_file("$base/$name.sql", $scripts{$name});
}
# weights: inserts, churn and queries mostly; the script order fixes script_no
my @mix = ([ insert => 6 ], [ churn => 3 ], [ delete => 2 ], [ update => 2 ], [ topk => 3 ],
	[ filtered => 2 ], [ text => 1 ]);

# ---------- the checks ----------
my %acked;    # "run client" => inserts pgbench saw commit
my %figures = (crashes => 0, inserts => 0, churn => 0, deletes => 0, updates => 0, queries => 0,
	lost => 0, unreachable => 0, problems => 0, replica_mismatches => 0);

# Reads a round's per-transaction logs: counts of each script, per client for inserts.
sub read_logs
{
	my ($run) = @_;
	my %names = map { $_ => $mix[$_][0] } 0 .. $#mix;
	for my $log (glob("$base/round$run.*"))
	{
		open my $f, '<', $log or die "$log: $!";
		while (<$f>)
		{
			my ($client, undef, $time, $script) = split;
			next if !defined $script || $time !~ /^\d+$/;    # failed or skipped
			my $name = $names{$script};
			if ($name eq 'insert') { $acked{"$run $client"}++; $figures{inserts}++; }
			elsif ($name eq 'churn') { $figures{churn}++; }
			elsif ($name eq 'delete') { $figures{deletes}++; }
			elsif ($name eq 'update') { $figures{updates}++; }
			else { $figures{queries}++; }
		}
		close $f;
	}
}

# Every insert pgbench saw commit is there, in every round so far.
sub check_rows
{
	my ($what, $rounds) = @_;
	my %have = map { my ($r, $c, $n, $max) = split /\|/; ("$r $c" => [ $n, $max ]) } split /\n/,
	  $primary->safe_psql('postgres', q{
SELECT id / 100000000, id / 1000000 % 100, count(*), max(id % 1000000)
FROM items WHERE id > 0 GROUP BY 1, 2});
	my $lost = 0;
	for my $run (1 .. $rounds)
	{
		for my $c (0 .. $clients - 1)
		{
			my $k = $acked{"$run $c"} // 0;
			my ($n, $max) = @{ $have{"$run $c"} // [ 0, 0 ] };
			# rows 1..max, all there, and max is k (or k + 1: committed, answer lost)
			if ($n != $max || $max < $k || $max > $k + 1)
			{
				diag("$what: round $run client $c: pgbench saw $k inserts commit; the table has $n rows, numbered up to $max");
				$lost += $k > $n ? $k - $n : 1;
			}
		}
	}
	$figures{lost} += $lost;
	is($lost, 0, "$what: every committed insert is there");
}

# Each index, scanned to the end, returns every row once.
sub check_reachable
{
	my ($what, $node) = @_;
	my $rows = $node->safe_psql('postgres', 'SELECT count(*) FROM items');
	for my $ix ([ 'items_f4', '<=>' ], [ 'items_i8', '<->' ], [ 'items_rq', '<#>' ])
	{
		my ($index, $op) = @$ix;
		my ($all, $links) = split /\|/, $node->safe_psql('postgres', qq{
SET enable_seqscan = off; SET enable_bitmapscan = off; SET crossmodal.hnsw_max_scan_tuples = 2000000000;
SELECT count(DISTINCT id), count(*) FROM (SELECT id FROM items ORDER BY emb $op (SELECT emb FROM images WHERE id = 1)) s;
});
		my $graph = $node->safe_psql('postgres', qq{
SET enable_seqscan = off; SET enable_bitmapscan = off; SET crossmodal.hnsw_max_scan_tuples = 2000000000;
SET crossmodal.hnsw_scan_sweep = off;
SELECT count(DISTINCT id) FROM (SELECT id FROM items ORDER BY emb $op (SELECT emb FROM images WHERE id = 1)) s;
});
		my $plan = $node->safe_psql('postgres', qq{
SET enable_seqscan = off; SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY emb $op (SELECT emb FROM images WHERE id = 1)});
		like($plan, qr/Index Scan using $index/, "$what: $index is the scan's index");
		if ($all != $rows || $links != $rows)
		{
			$figures{unreachable} += abs($rows - $all) || 1;
		}
		is("$all $links", "$rows $rows", "$what: $index returns each of the $rows rows once");
		# Through the links alone (no sweep): a figure, not a check.  Many
		# rows here share one embedding (the fixtures hold the same pictures
		# in several formats, and rows repeat them), and the search ends well
		# before the rows do (bench/soak/README.md); the sweep finds the rest.
		$figures{graph}{$index} = $graph / $rows
		  if !defined $figures{graph}{$index} || $graph / $rows < $figures{graph}{$index};
		note("$what: $index reaches $graph of $rows rows through its links alone");
	}
}

sub check_indexes
{
	my ($what, $node) = @_;
	my $found = $node->safe_psql('postgres', q{
SELECT string_agg(i || ': ' || k.problem || ': ' || k.detail, E'\n')
FROM unnest(ARRAY['items_f4', 'items_i8', 'items_rq']) i, LATERAL crossmodal_hnsw_check(i::regclass, true) k});
	$figures{problems} += scalar(split /\n/, $found);
	is($found, '', "$what: crossmodal_hnsw_check finds nothing, heap included");
}

# The same queries on both, once the replica has replayed everything the
# primary had when its answers were taken (autovacuum may change the graph
# meanwhile: then the primary's answers are taken again).
my $queries = join("\nUNION ALL ", map {
	my $q = $_;
	(
		qq{SELECT 'top $q', (SELECT string_agg(id::text, ',') FROM (SELECT id FROM items ORDER BY emb <=> (SELECT emb FROM images WHERE id = $q) LIMIT 10) s)},
		qq{SELECT 'l2 $q', (SELECT string_agg(id::text, ',') FROM (SELECT id FROM items ORDER BY emb <-> (SELECT emb FROM images WHERE id = $q) LIMIT 10) s)},
		qq{SELECT 'ip $q', (SELECT string_agg(id::text, ',') FROM (SELECT id FROM items ORDER BY emb <#> (SELECT emb FROM images WHERE id = $q) LIMIT 10) s)},
		qq{SELECT 'tag $q', (SELECT string_agg(id::text, ',') FROM (SELECT id FROM items WHERE tag = $q ORDER BY emb <=> (SELECT emb FROM images WHERE id = $q) LIMIT 5) s)}
	)
} 1 .. 5) . "\nUNION ALL SELECT 'count', count(*) || ' ' || sum(id) || ' ' || sum(updates) FROM items";
$queries = "SET enable_seqscan = off; SET enable_bitmapscan = off;\n$queries";

sub check_replica
{
	my ($what) = @_;
	my ($p, $s);
	for my $try (1 .. 10)
	{
		$p = $primary->safe_psql('postgres', $queries);
		my $lsn = $primary->lsn('insert');
		$primary->wait_for_catchup($standby, 'replay', $lsn);
		$s = $standby->safe_psql('postgres', $queries);
		last if $p eq $s;
		sleep(1);
	}
	$figures{replica_mismatches}++ if $p ne $s;
	is($s, $p, "$what: the replica answers as the primary");
}

# The processes whose parent is $pid (from /proc: procps may not be installed).
sub children
{
	my ($pid) = @_;
	my @c;
	for my $stat (glob('/proc/[0-9]*/stat'))
	{
		open my $f, '<', $stat or next;
		my $line = <$f>;
		close $f;
		# pid (comm) state ppid ...; comm may hold spaces and parentheses
		push @c, $1 if defined $line && $line =~ /^(\d+) \(.*\) \S+ (\d+) / && $2 == $pid;
	}
	return @c;
}

# ---------- the rounds ----------
my $round = 0;
my $spent = 0;
while ($spent < $total)
{
	$round++;
	my $length = $round_min + rand($round_max - $round_min);
	$length = $total - $spent if $length > $total - $spent && $total - $spent >= 1;
	local $ENV{PGOPTIONS} = '-c enable_seqscan=off -c enable_bitmapscan=off';
	my @common = ('-n', '-T', 3600, '-d', 'postgres', '-h', $primary->host, '-p', $primary->port,
		'-D', "run=$round", '-D', 'n=0', '-D', "nimages=$nimages");
	my ($out, $err, $cout, $cerr) = ('', '', '', '');
	my $work = IPC::Run::start(
		[ 'pgbench', @common, '-c', $clients, '-j', 1, '-l', "--log-prefix=$base/round$round",
			map { ('-f', "$base/$_->[0].sql\@$_->[1]") } @mix ],
		'>', \$out, '2>', \$err);
	my $ckpt = IPC::Run::start([ 'pgbench', @common, '-c', 1, '-j', 1, '-f', "$base/checkpoint.sql" ],
		'>', \$cout, '2>', \$cerr);
	my $start = time;
	sleep($length);
	$spent += time - $start;

	# SIGKILL to the postmaster; its backends notice its death and exit.
	my $pid = $primary->{_pid};
	my @children = children($pid);
	$primary->kill9;
	$figures{crashes}++;
	my $deadline = time + 60;
	sleep(0.1) while grep({ kill(0, $_) } @children) && time < $deadline;
	ok(!grep({ kill(0, $_) } @children), "round $round: the orphaned backends exited after the postmaster's SIGKILL");
	for my $h ($work, $ckpt)
	{
		eval { $h->finish; };
	}
	note("round $round pgbench: " . (split /\n/, $err)[-1]) if $err;
	read_logs($round);

	$primary->start;
	my $what = sprintf('round %d (%.0f s)', $round, $length);
	check_rows($what, $round);
	check_reachable("$what, primary", $primary);
	check_indexes("$what, primary", $primary);
	check_replica($what);
	check_reachable("$what, replica", $standby);
	check_indexes("$what, replica", $standby);
}

# No backend crashed on its own: a crash would show as a child terminated by a signal.
my $log = PostgreSQL::Test::Utils::slurp_file($primary->logfile);
my @crashed = $log =~ /^.*terminated by signal.*$/mg;
is(scalar(@crashed), 0, 'no backend was terminated by a signal') or diag(join("\n", @crashed));

my $rows = $primary->safe_psql('postgres', 'SELECT count(*) FROM items');
my $report = sprintf(
	"soak: %d s of workload in %d rounds, %d crashes survived (postmaster SIGKILL), seed %d\n"
	  . "soak: rows written: %d numbered inserts, %d other inserts, %d updates; %d deletes (of 3 rows each at most); %d rows now\n"
	  . "soak: queries run: %d transactions (top-k, filtered, text), %d clients\n"
	  . "soak: lost: %d committed rows lost, %d rows unreachable through an index, %d checker findings, %d replica mismatches\n"
	  . "soak: reached through the links alone (no sweep), lowest share after a restart: %s\n",
	$spent, $round, $figures{crashes}, $seed, $figures{inserts}, $figures{churn}, $figures{updates},
	$figures{deletes}, $rows, $figures{queries}, $clients, $figures{lost}, $figures{unreachable},
	$figures{problems}, $figures{replica_mismatches},
	join(', ', map { sprintf('%s %.1f%%', $_, 100 * $figures{graph}{$_}) } sort keys %{ $figures{graph} }));
diag($report);
if ($ENV{SOAK_REPORT})
{
	PostgreSQL::Test::Utils::append_to_file($ENV{SOAK_REPORT}, $report);
}
cmp_ok($figures{inserts}, '>', 0, 'the workload committed inserts');
cmp_ok($figures{queries}, '>', 0, 'the workload ran queries');

$standby->stop;
$primary->stop;
done_testing();
