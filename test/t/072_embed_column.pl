# 072_embed_column.pl
#	crossmodal_embed_column seen from outside: its progress NOTICEs, its
#	progress in crossmodal_embed_progress from another session while it runs,
#	a second run on the same column refused, and a run that is cancelled or
#	whose backend is killed part way: the committed batches stay, the view says
#	cancelled or interrupted, and the same call resumes after the last
#	committed key.  A run with crossmodal.threads = 2 gives the same embeddings.
#	Every run uses the default model, named nowhere.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# No crossmodal setting anywhere: the runs take the shipped default model in
# sessions that have not loaded the library yet.
my $node = PostgreSQL::Test::Cluster->new('embed_column');
$node->init;
$node->start;

# 100 captions; an update trigger waits on advisory lock 72 when it writes
# row 50, so a test holding that lock stops a run inside its fifth batch of
# 10 rows (40 rows committed).
$node->safe_psql(
	'postgres', qq{
CREATE EXTENSION crossmodal;
CREATE TABLE captions (id int PRIMARY KEY, caption text, emb embedding);
INSERT INTO captions SELECT g, 'caption number ' || g FROM generate_series(1, 100) g;
CREATE FUNCTION gate() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
	IF NEW.id = 50 THEN
		PERFORM pg_advisory_lock(72);
		PERFORM pg_advisory_unlock(72);
	END IF;
	RETURN NEW;
END \$\$;
CREATE TRIGGER gate BEFORE UPDATE ON captions FOR EACH ROW EXECUTE FUNCTION gate();
});

# A session that holds lock 72 until told to stop.
my ($gate_in, $gate_out) = ('', '');
my $gate = IPC::Run::start([ 'psql', '-XAtq', '-d', $node->connstr('postgres') ],
	'<', \$gate_in, '>', \$gate_out, '2>', \$gate_out);
sub gate_sql
{
	my ($sql) = @_;
	$gate_out = '';
	$gate_in .= "$sql\n\\echo gate-done\n";
	$gate->pump until $gate_out =~ /gate-done/;
	return $gate_out;
}

# A CALL in its own psql, in the background.
sub start_call
{
	my ($call) = @_;
	my %r = (out => '', err => '');
	$r{h} = IPC::Run::start(
		[ 'psql', '-XAtq', '-d', $node->connstr('postgres'), '-c', $call ],
		'>', \$r{out}, '2>', \$r{err},
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	return \%r;
}

sub finish_call
{
	my ($r) = @_;
	eval { $r->{h}->finish; };
	return $r->{h}->result(0);
}

my $progress = q{SELECT run_id, state, rows_done, rows_total FROM crossmodal_embed_progress};

# 1. Progress from another session, a second run refused, then a kill.
gate_sql('SELECT pg_advisory_lock(72);');
my $run = start_call("CALL crossmodal_embed_column('captions', 'caption', 'emb', batch_size => 10, refresh => true)");
$node->poll_query_until('postgres', "SELECT rows_done = 40 FROM crossmodal_embed_progress WHERE run_id = 1")
  or die 'the run did not reach row 40';
is($node->safe_psql('postgres', "$progress WHERE run_id = 1"), '1|running|40|100', 'another session sees the running run at 40 of 100');
is( $node->safe_psql(
		'postgres',
		"SELECT percent, rows_per_second > 0, time_left > '0'::interval, elapsed > '0'::interval, finished_at IS NULL
		 FROM crossmodal_embed_progress WHERE run_id = 1"),
	'40.0|t|t|t|t',
	'the view gives percent, rate and time left of the running run');
is($node->safe_psql('postgres', 'SELECT count(emb) FROM captions'), '40', 'the four committed batches are visible');

my ($ret, $out, $err) = $node->psql('postgres', "CALL crossmodal_embed_column('captions', 'caption', 'emb')");
isnt($ret, 0, 'a second run on the same column fails');
like($err, qr/is being embedded by another run.*\n.*DETAIL:  Run 1 in process \d+/, 'with the running run named');

$node->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM crossmodal_embed_progress WHERE run_id = 1");
finish_call($run);
$node->poll_query_until('postgres', "SELECT state = 'interrupted' FROM crossmodal_embed_progress WHERE run_id = 1")
  or die 'the killed run is not shown as interrupted';
is($node->safe_psql('postgres', "$progress WHERE run_id = 1"), '1|interrupted|40|100', 'a killed run is interrupted at 40');
is($node->safe_psql('postgres', 'SELECT count(emb), max(id) FILTER (WHERE emb IS NOT NULL) FROM captions'),
	'40|40', 'its committed batches stay');

# 2. A cancel: the run records itself as cancelled and the caller gets 57014.
$run = start_call("CALL crossmodal_embed_column('captions', 'caption', 'emb', batch_size => 10, refresh => true)");
$node->poll_query_until('postgres',
	"SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND objid = 72 AND NOT granted)")
  or die 'the second run did not reach the gate';
is($node->safe_psql('postgres', "SELECT run_id, state, rows_done, rows_total, resumed_from FROM crossmodal_embed_progress WHERE run_id = 2"),
	'2|running|0|60|1', 'the next call resumes run 1 after key 40 (60 rows left)');
$node->safe_psql('postgres',
	"SELECT pg_cancel_backend(pid) FROM crossmodal_embed_progress WHERE run_id = 2");
isnt(finish_call($run), 0, 'the cancelled CALL fails');
like($run->{err}, qr/resumes run 1 after key 40/, 'the resume is announced');
like($run->{err}, qr/canceling statement due to user request/, 'with the cancel error');
is($node->safe_psql('postgres', "SELECT state, error FROM crossmodal_embed_progress WHERE run_id = 2"),
	'cancelled|57014: canceling statement due to user request', 'the run is recorded as cancelled');

# 3. The gate opens: the same call resumes and finishes, with progress NOTICEs.
gate_sql('SELECT pg_advisory_unlock(72);');
$run = start_call("CALL crossmodal_embed_column('captions', 'caption', 'emb', batch_size => 10, refresh => true)");
is(finish_call($run), 0, 'the resumed run finishes');
like($run->{err}, qr/NOTICE:  crossmodal_embed_column: run 3 resumes run 2 after key 40/, 'resuming after the cancelled run');
like(
	$run->{err},
	qr/NOTICE:  crossmodal_embed_column: 10 of 60 rows \(16\.7%\), [0-9.]+ rows\/s, about \d\d:\d\d:\d\d left/,
	'a progress NOTICE with rows done, rate and time left');
like($run->{err}, qr/NOTICE:  crossmodal_embed_column: run 3 finished: 60 rows in \d\d:\d\d:\d\d/, 'a closing NOTICE');
is($node->safe_psql('postgres', "$progress WHERE run_id = 3"), '3|finished|60|60', 'the view says finished');
is( $node->safe_psql(
		'postgres', "SELECT count(emb), max(emb <=> encode_text(caption)) < 1e-6 FROM captions"),
	'100|t',
	'every row has its embedding');

# 4. crossmodal.threads is honoured by the batches: same embeddings on 2 threads.
$node->safe_psql('postgres', 'CREATE TABLE one_thread AS SELECT id, emb FROM captions; DROP TRIGGER gate ON captions');
($ret, $out, $err) = $node->psql('postgres',
	"SET crossmodal.threads = 2; CALL crossmodal_embed_column('captions', 'caption', 'emb', refresh => true, batch_size => 50)");
is($ret, 0, 'a run with crossmodal.threads = 2');
is( $node->safe_psql(
		'postgres', "SELECT count(*), max(c.emb <=> o.emb) < 1e-6 FROM captions c JOIN one_thread o USING (id)"),
	'100|t',
	'gives the same embeddings');

$gate_in .= "\\q\n";
$gate->finish;
$node->stop;
done_testing();
