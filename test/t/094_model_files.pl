# 094_model_files.pl: a model's weights file written over while sessions
# have it mapped.  A backend maps model.safetensors; reading the mapping of a
# file truncated under it raises SIGBUS, which would take every session of
# the server down.  Each session checks the file (size and modification time)
# before it encodes: a file written in place gives a WARNING and the model is
# loaded again (an ERROR if the new file is not a model), between statements
# and within one; a file replaced by a rename leaves the mapping valid and
# changes nothing for sessions that loaded it.  No backend crashes.
use strict;
use warnings;
use File::Copy qw(copy);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('model_files');
$node->init;
my $models = $node->basedir . '/models';
my $sharedir = `pg_config --sharedir`;
chomp $sharedir;
my $src = "$sharedir/extension/crossmodal_models/emoji-clip-en-ko";
mkdir $models or die;
mkdir "$models/m1" or die;
for my $f (glob("$src/*"))
{
	next unless -f $f;
	copy($f, "$models/m1/") or die "copy $f: $!";
}
my $weights = "$models/m1/model.safetensors";
my $original = slurp_file($weights);
$node->append_conf('postgresql.conf', "crossmodal.model_path = '$models'\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION crossmodal');

# One session that stays open: it maps the file once.
my ($in, $out) = ('', '');
my $session = IPC::Run::start([ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=0', '-d', $node->connstr('postgres') ],
	'<', \$in, '>', \$out, '2>', \$out);
sub session
{
	my ($sql) = @_;
	$out = '';
	$in .= "$sql\n\\echo done-marker\n";
	$session->pump until $out =~ /done-marker/;
	$out =~ s/done-marker\n//;
	return $out;
}

my $cat = session(q{SELECT encode_text('m1', 'a cat')::text;});
chomp $cat;
like($cat, qr/^\[/, 'the session encodes with the mapped model');

# Written over in place, same bytes: the session notices, loads it again, same result.
sub write_in_place
{
	my ($bytes) = @_;
	open my $f, '+<:raw', $weights or die;
	truncate($f, 0) or die;
	print $f $bytes;
	close $f;
}
sleep(1);    # a different modification time even on coarse clocks
write_in_place($original);
my $again = session(q{SELECT encode_text('m1', 'a cat')::text;});
like($again, qr/WARNING:  model "m1" changed on disk after this session loaded it; loading it again/,
	'a file written in place is noticed');
like($again, qr/^\Q$cat\E$/m, 'and loaded again: the same embedding');

# Truncated: a WARNING, then the ERROR of a file that is not a model; the session lives.
sleep(1);
write_in_place(substr($original, 0, 4096));
my $broken = session(q{SELECT encode_text('m1', 'a dog')::text;});
like($broken, qr/WARNING:  model "m1" changed on disk/, 'a truncated file is noticed');
like($broken, qr/ERROR:  .*m1/, 'and loading it again is an ERROR');
is(session('SELECT 1;'), "1\n", 'the session is alive');

# Restored, then truncated within one statement, between two rows: the call
# site's model is checked before each encode.
sleep(1);
write_in_place($original);
like(session(q{SELECT encode_text('m1', 'a cat')::text;}), qr/^\Q$cat\E$/m, 'restored in place');
$node->safe_psql('postgres', qq{
CREATE FUNCTION cut(t text) RETURNS text LANGUAGE plpgsql AS \$\$
BEGIN
	PERFORM pg_sleep(1.1);
	COPY (SELECT 1) TO PROGRAM 'truncate -s 4096 $weights';
	RETURN t;
END \$\$;
});
my $mid = session(q{SELECT length(encode_text('m1', t)::text) > 0 FROM (SELECT 'a cat' AS t UNION ALL SELECT cut('a dog')) s;});
like($mid, qr/WARNING:  model "m1" changed on disk/, 'truncated within a statement: noticed before the next row');
like($mid, qr/ERROR:  /, 'and the statement fails with an ERROR');
is(session('SELECT 1;'), "1\n", 'the session is alive');

# Replaced by a rename: the old file stays mapped, nothing changes for this session.
write_in_place($original);
session(q{SELECT encode_text('m1', 'a cat');});
copy($weights, "$weights.new") or die;
rename("$weights.new", $weights) or die;
my $renamed = session(q{SELECT encode_text('m1', 'a cat')::text;});
unlike($renamed, qr/WARNING/, 'a file replaced by a rename is not a change to the mapping');
like($renamed, qr/^\Q$cat\E$/m, 'and the session goes on with it');
$in .= "\\q\n";
$session->finish;

my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal/, 'no backend crashed');
$node->stop;
done_testing();
