#!/usr/bin/perl
# memory.pl: memory of backends that use the encoders, read from /proc.
#
# 1. Sharing: N sessions (default 8) each encode an image and a text with the
#    same model; each backend's /proc/PID/smaps_rollup (Rss, Pss, Shared_Clean,
#    Private_Clean, Private_Dirty, Anonymous) and the Rss/Pss of its mapping of
#    model.safetensors are printed, with totals against N private copies of the
#    weights file.
# 2. Cancellation: one session runs a loop of encodes cancelled by
#    statement_timeout at varied points, and its memory is printed after each.
#
# usage (as a user that can read /proc of the server's processes, e.g. root):
#   bench/encoders_sql/memory.pl CONNSTR MODEL_NAME IMAGE_FILE [SESSIONS] [CANCEL_ROUNDS]
# The server must have crossmodal installed and crossmodal.model_path set so
# that MODEL_NAME resolves (bench/encoders_sql/run.sh does all of this).
use strict;
use warnings;

use IPC::Run qw(start pump finish timeout);

my ($connstr, $model, $image_file, $sessions, $rounds) = @ARGV;
die "usage: $0 CONNSTR MODEL IMAGE_FILE [SESSIONS] [CANCEL_ROUNDS]\n" unless $image_file;
$sessions //= 8;
$rounds //= 30;

# A psql session kept open; queries are sent one at a time.
sub session_open
{
	my %s = (in => '', out => '', err => '');
	$s{h} = start([ 'psql', '-XAtq', '-d', $connstr ], '<', \$s{in}, '>', \$s{out}, '2>', \$s{err},
		timeout(3600));
	return \%s;
}

# Runs sql in the session and returns its output (and errors) when done.
sub session_query
{
	my ($s, $sql) = @_;
	my $marker = 'done-' . int(rand(1e9));
	$s->{out} = '';
	$s->{err} = '';
	$sql .= ";" unless $sql =~ /;\s*$/;
	$s->{in} .= "$sql\n\\echo $marker\n";
	pump $s->{h} until $s->{out} =~ /\Q$marker\E\n/;
	(my $out = $s->{out}) =~ s/\Q$marker\E\n//;
	chomp $out;
	return ($out, $s->{err});
}

sub rollup
{
	my ($pid) = @_;
	my %m;
	open my $f, '<', "/proc/$pid/smaps_rollup" or die "smaps_rollup of $pid: $!";
	while (<$f>)
	{
		$m{$1} = $2 if /^(\w+):\s+(\d+) kB/;
	}
	close $f;

	# The weights file's own mapping(s).
	open $f, '<', "/proc/$pid/smaps" or die "smaps of $pid: $!";
	my $in_model = 0;
	@m{qw(ModelRss ModelPss)} = (0, 0);
	while (<$f>)
	{
		if (/^[0-9a-f]+-[0-9a-f]+ /) { $in_model = /model\.safetensors/ ? 1 : 0; next; }
		next unless $in_model;
		$m{ModelRss} += $1 if /^Rss:\s+(\d+) kB/;
		$m{ModelPss} += $1 if /^Pss:\s+(\d+) kB/;
	}
	close $f;
	return \%m;
}

sub mib { sprintf('%.1f', $_[0] / 1024) }

my @cols = qw(Rss Pss Shared_Clean Private_Clean Private_Dirty Anonymous ModelRss ModelPss);
sub header { printf "%-10s" . (" %13s" x @cols) . "\n", 'backend', map { "$_ MiB" } @cols; }
sub row
{
	my ($label, $m) = @_;
	printf "%-10s" . (" %13s" x @cols) . "\n", $label, map { mib($m->{$_} // 0) } @cols;
}

my $image_sql = "pg_read_binary_file('$image_file')";
my $weights_bytes = 0;

# --- 1. sharing ---------------------------------------------------------
my @s = map { session_open() } 1 .. $sessions;
my @pids = map { (session_query($_, 'SELECT pg_backend_pid()'))[0] } @s;
my ($dir) = session_query($s[0], "SELECT directory FROM crossmodal_models() WHERE name = '$model'");
$weights_bytes = -s "$dir/model.safetensors" if $dir;

print "== $sessions backends before any encode\n";
header();
row("pid $pids[$_]", rollup($pids[$_])) for 0 .. $#pids;

for my $i (0 .. $#s)
{
	my ($out, $err) = session_query($s[$i],
		"SELECT dims(encode_image('$model', $image_sql)), dims(encode_text('$model', 'a photo of a cat'))");
	die "session $i: $err" if $err ne '';
}
print "\n== $sessions backends after each encoded one image and one text with $model\n";
header();
my %sum;
for my $i (0 .. $#pids)
{
	my $m = rollup($pids[$i]);
	row("pid $pids[$i]", $m);
	$sum{$_} += $m->{$_} // 0 for @cols;
}
row('total', \%sum);
printf "\nweights file: %s MiB; %d private copies would be %s MiB\n", mib($weights_bytes / 1024),
  $sessions, mib($sessions * $weights_bytes / 1024);
printf "sum of Pss over the %d backends: %s MiB (%.2f x the weights file)\n", $sessions, mib($sum{Pss}),
  $weights_bytes ? $sum{Pss} * 1024 / $weights_bytes : 0;
printf "sum of Anonymous (private, per backend): %s MiB, %s MiB per backend\n", mib($sum{Anonymous}),
  mib($sum{Anonymous} / $sessions);
printf "model mapping: Rss %s MiB per backend, Pss sum %s MiB\n", mib($sum{ModelRss} / $sessions),
  mib($sum{ModelPss});

$_->{in} .= "\\q\n" for @s;
finish $_->{h} for @s;

# --- 2. cancelled encodes -------------------------------------------------
print "\n== one backend, $rounds encodes of a 16-image batch cancelled by statement_timeout\n";
my $c = session_open();
my ($pid) = session_query($c, 'SELECT pg_backend_pid()');
session_query($c, "CREATE TEMP TABLE batch AS SELECT array_agg($image_sql) AS imgs FROM generate_series(1, 16)");
# Warm-up: one whole batch, so the activation buffers have their full size.
session_query($c, "SELECT cardinality(encode_images('$model', imgs)) FROM batch");
my $first = rollup($pid);
header();
row('warm', $first);
my ($cancelled, $max_anon, $last) = (0, 0, undef);
for my $r (1 .. $rounds)
{
	# Timeouts from 30 to 900 ms: the cancel lands in different layers.
	my $ms = 30 + ($r * 97) % 870;
	my ($out, $err) = session_query($c,
		"SET statement_timeout = '${ms}ms'; SELECT cardinality(encode_images('$model', imgs)) FROM batch; RESET statement_timeout;");
	$cancelled++ if $err =~ /canceling statement due to statement timeout/;
	$last = rollup($pid);
	$max_anon = $last->{Anonymous} if $last->{Anonymous} > $max_anon;
	row("round $r", $last) if $r <= 3 || $r % 10 == 0 || $r == $rounds;
}
printf "\ncancelled %d of %d; Anonymous after warm-up %s MiB, after the loop %s MiB, peak %s MiB; Rss %s -> %s MiB\n",
  $cancelled, $rounds, mib($first->{Anonymous}), mib($last->{Anonymous}), mib($max_anon),
  mib($first->{Rss}), mib($last->{Rss});
$c->{in} .= "\\q\n";
finish $c->{h};
