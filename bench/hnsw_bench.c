/*
 * hnsw_bench.c
 *	  crossmodal_hnsw benchmark: build time, index size, recall@10 and queries/s per ef_search and storage form,
 *	  for in-distribution and cross-modal queries, side by side with pgvector's hnsw when it is installed.
 *
 * Data: a deterministic Gaussian mixture standing in for image embeddings.
 * Every coordinate of the cluster centres, of the noise and of one shared
 * "image" direction is drawn from N(0, 1); a row is
 *     image_offset * u_img + centre[c] + spread * noise,
 * unit-normalised.  The shared direction puts every image in one cone, as
 * CLIP's image embeddings are (with the defaults, images of one cluster have
 * cosine ~0.76 with each other, of different clusters ~0.53).
 *
 * Two query sets of --queries each, the exact top-10 by cosine distance of
 * both computed here (float scores through BLAS, the best candidates
 * re-checked in double):
 *   in   drawn from the same mixture (not in the table);
 *   ood  "text" queries, out of distribution like CLIP's captions: the same
 *        cluster centres, but around another shared direction (the modality
 *        gap) and with --text-spread noise, the offset chosen so that a query
 *        has cosine --text-cosine (0.3) with the images of its cluster.  The
 *        nearest neighbours are still well defined (those images), but the
 *        queries lie far from every row, where graph searches lose recall.
 *
 * Rows are loaded with binary COPY, and queries go through one connection
 * as a prepared statement with the vector as a binary parameter.  Each
 * ef_search value runs the queries twice and times the second pass.
 * Connection settings come from the PG* environment (bench/hnsw_bench.sh
 * starts a throwaway server).  With --pgvector the same rows also go into a
 * vector(d) table with pgvector's hnsw index (same m and ef_construction),
 * queried the same way.
 *
 * --self-check N searches for N table rows' own vectors at the last
 * ef_search and counts those that come back (unreachable rows cap recall).
 * --dump DIR writes the data as NumPy .npy files for bench/hnsw_reference.py:
 * base.npy (float32 [rows][dims], row i is table id i + 1), queries.npy and
 * truth.npy (in-distribution; int32 table ids, nearest first), and
 * queries_ood.npy, truth_ood.npy.  --no-db stops after that.
 *
 * --distribute N makes the tables Citus distributed tables of N shards (the
 * server is a Citus coordinator; bench/citus/run.sh): the index is built per
 * shard, each query goes to every shard, ef_search (which a session SET would
 * not carry to the shards) is set per database, which Citus propagates to its
 * workers, and the client reconnects so that the workers' new sessions see
 * it.  The backend CPU column is then unknown (-1): the work is the workers'.
 *
 * Build: bench/hnsw_bench.sh build (cc -O2 ... -lpq -lopenblas -lm).
 */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>
#include <libpq-fe.h>

#define MAX_LIST 32

typedef struct Options
{
	int			rows;
	int			dims;
	int			clusters;
	int			queries;		/* per query set */
	int			m;
	int			efConstruction;
	double		spread;
	double		imageOffset;
	double		textSpread;
	double		textCosine;
	int			k;
	const char *efList;
	const char *storageList;
	const char *workersList;	/* "" : the server's default */
	const char *table;
	int			skipLoad;
	const char *maintenanceWorkMem;
	int			selfCheck;
	int			pgvector;
	int			pgvectorHalfvec;	/* pgvector's index on v::halfvec(dims) */
	const char *dumpDir;
	int			noDb;
	int			distribute;		/* Citus shards; 0: plain tables */
} Options;

/* A query set: vectors and their exact top-k as table ids. */
typedef struct QuerySet
{
	const char *name;
	float	   *vectors;
	int		   *truth;
} QuerySet;

/* Figures of one index, for the summary. */
typedef struct Result
{
	char		label[64];
	double		buildSeconds;
	double		sizeMiB;
	int			nef;
	int			ef[MAX_LIST];
	double		recall[2][MAX_LIST];
	double		qps[2][MAX_LIST];
	double		cpuMs[2][MAX_LIST];	/* the backend's CPU time per query; < 0: unknown */
} Result;

/* ---------- deterministic random numbers ---------- */

static uint64_t
SplitMix64(uint64_t *state)
{
	uint64_t	z = (*state += UINT64_C(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

static double
Uniform(uint64_t *state)
{
	return ((SplitMix64(state) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static double
Gaussian(uint64_t *state)
{
	double		u1 = Uniform(state);
	double		u2 = Uniform(state);

	return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

typedef struct Mixture
{
	const Options *o;
	float	   *centres;		/* [clusters][dims] */
	float	   *imageDir;		/* [dims] */
	float	   *textDir;		/* [dims] */
	double		textOffset;
} Mixture;

/*
 * Vector number `index` of a stream (1: the table, 2: in-distribution
 * queries, 3: text queries): a cluster's centre, its modality's direction
 * and noise, normalised.
 */
static void
MixtureVector(const Mixture *mx, uint64_t stream, long index, float *out)
{
	const Options *o = mx->o;
	uint64_t	state = stream * UINT64_C(0x100000001B3) + (uint64_t) index * UINT64_C(0x9E3779B97F4A7C15);
	int			c = (int) (SplitMix64(&state) % (uint64_t) o->clusters);
	int			text = stream == 3;
	const float *dir = text ? mx->textDir : mx->imageDir;
	double		offset = text ? mx->textOffset : o->imageOffset;
	double		spread = text ? o->textSpread : o->spread;
	double		norm = 0.0;

	for (int d = 0; d < o->dims; d++)
	{
		double		v = offset * dir[d] + mx->centres[(size_t) c * o->dims + d] + spread * Gaussian(&state);

		out[d] = (float) v;
		norm += v * v;
	}
	norm = sqrt(norm);
	for (int d = 0; d < o->dims; d++)
		out[d] = (float) (out[d] / norm);
}

static void
MixtureInit(Mixture *mx, const Options *o)
{
	uint64_t	state = 42;
	double		imageNorm2 = o->imageOffset * o->imageOffset + 1.0 + o->spread * o->spread;
	double		t2;

	mx->o = o;
	mx->centres = malloc(sizeof(float) * (size_t) o->clusters * o->dims);
	mx->imageDir = malloc(sizeof(float) * o->dims);
	mx->textDir = malloc(sizeof(float) * o->dims);
	for (size_t i = 0; i < (size_t) o->clusters * o->dims; i++)
		mx->centres[i] = (float) Gaussian(&state);
	for (int d = 0; d < o->dims; d++)
		mx->imageDir[d] = (float) Gaussian(&state);
	for (int d = 0; d < o->dims; d++)
		mx->textDir[d] = (float) Gaussian(&state);

	/*
	 * cos(text, image of its cluster) ~ 1 / (|image| |text|) in units of
	 * sqrt(dims): solve |text|^2 = offset^2 + 1 + textSpread^2 for it.
	 */
	t2 = 1.0 / (o->textCosine * o->textCosine * imageNorm2) - 1.0 - o->textSpread * o->textSpread;
	mx->textOffset = t2 > 0 ? sqrt(t2) : 0.0;
}

/* ---------- helpers ---------- */

static double
Now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void
PrintLoad(const char *when)
{
	double		load[3];

	if (getloadavg(load, 3) == 3)
		printf("machine load (%s): %.2f %.2f %.2f\n", when, load[0], load[1], load[2]);
}

static void
Die(PGconn *conn, const char *what)
{
	fprintf(stderr, "hnsw_bench: %s: %s", what, PQerrorMessage(conn));
	PQfinish(conn);
	exit(1);
}

static void
Exec(PGconn *conn, const char *sql)
{
	PGresult   *res = PQexec(conn, sql);

	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		fprintf(stderr, "hnsw_bench: %s\n", sql);
		PQclear(res);
		Die(conn, "query failed");
	}
	PQclear(res);
}

static char *
QueryValue(PGconn *conn, const char *sql)
{
	PGresult   *res = PQexec(conn, sql);
	char	   *v;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		fprintf(stderr, "hnsw_bench: %s\n", sql);
		PQclear(res);
		Die(conn, "query failed");
	}
	v = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return v;
}

static int
ParseIntList(const char *s, int *out, int max)
{
	int			n = 0;
	char	   *copy = strdup(s);

	for (char *tok = strtok(copy, ","); tok && n < max; tok = strtok(NULL, ","))
		out[n++] = atoi(tok);
	free(copy);
	return n;
}

static int
ParseWordList(const char *s, char out[][16], int max)
{
	int			n = 0;
	char	   *copy = strdup(s);

	for (char *tok = strtok(copy, ","); tok && n < max; tok = strtok(NULL, ","))
	{
		snprintf(out[n], 16, "%s", tok);
		n++;
	}
	free(copy);
	return n;
}

/* The binary form of an embedding (and of pgvector's vector): int16 dims, int16 0, float4s, big-endian. */
static size_t
PutVector(char *p, const float *v, int dims)
{
	p[0] = (char) (dims >> 8);
	p[1] = (char) dims;
	p[2] = p[3] = 0;
	for (int d = 0; d < dims; d++)
	{
		uint32_t	bits;

		memcpy(&bits, &v[d], 4);
		p[4 + 4 * d] = (char) (bits >> 24);
		p[5 + 4 * d] = (char) (bits >> 16);
		p[6 + 4 * d] = (char) (bits >> 8);
		p[7 + 4 * d] = (char) bits;
	}
	return 4 + 4 * (size_t) dims;
}

static void
PutInt32(char *p, uint32_t v)
{
	p[0] = (char) (v >> 24);
	p[1] = (char) (v >> 16);
	p[2] = (char) (v >> 8);
	p[3] = (char) v;
}

/*
 * Writes a 2-D little-endian array as a NumPy .npy file (format 1.0): magic,
 * version, header length, a dict padded with spaces to a multiple of 64
 * bytes, then the rows.  `descr` is "f4" or "i4".
 */
static void
WriteNpy(const char *dir, const char *name, const char *descr, const void *data,
		 long rows, int cols)
{
	char		path[4096];
	char		header[256];
	int			len;
	int			total;
	uint16_t	one = 1;
	FILE	   *f;
	size_t		count = (size_t) rows * cols;

	if (*(const unsigned char *) &one != 1)
	{
		fprintf(stderr, "hnsw_bench: --dump writes little-endian files only\n");
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	len = snprintf(header, sizeof(header),
				   "{'descr': '<%s', 'fortran_order': False, 'shape': (%ld, %d), }",
				   descr, rows, cols);
	total = (10 + len + 1 + 63) / 64 * 64;	/* magic 6, version 2, length 2, '\n' */
	memset(header + len, ' ', total - 10 - len - 1);
	header[total - 10 - 1] = '\n';
	f = fopen(path, "wb");
	if (f == NULL ||
		fwrite("\x93NUMPY\x01\x00", 1, 8, f) != 8 ||
		fputc((total - 10) & 0xff, f) == EOF || fputc((total - 10) >> 8, f) == EOF ||
		fwrite(header, 1, total - 10, f) != (size_t) (total - 10) ||
		fwrite(data, 4, count, f) != count ||
		fclose(f) != 0)
	{
		perror(path);
		exit(1);
	}
	printf("wrote %s (%ld x %d %s)\n", path, rows, cols, descr);
}

static void
PrintNotice(void *arg, const char *message)
{
	(void) arg;
	printf("server: %s", message);
}

static PGconn *
Connect(const Options *o)
{
	PGconn	   *conn = PQconnectdb("");
	char		sql[128];

	if (PQstatus(conn) != CONNECTION_OK)
		Die(conn, "connect");
	PQsetNoticeProcessor(conn, PrintNotice, NULL);
	Exec(conn, "SET client_min_messages = warning");
	snprintf(sql, sizeof(sql), "SET maintenance_work_mem = '%s'", o->maintenanceWorkMem);
	Exec(conn, sql);
	return conn;
}

/* ---------- phases ---------- */

/* Loads the rows into TABLE (id int, COLUMN TYPE(dims)) with binary COPY. */
static void
Load(PGconn *conn, const Options *o, const float *base, const char *table, const char *column,
	 const char *type)
{
	char		sql[512];
	size_t		rowBytes = 2 + 4 + 4 + 4 + 4 + (size_t) o->dims * 4;
	size_t		cap = 4 << 20;
	char	   *buf = malloc(cap + rowBytes);
	size_t		used = 0;
	double		t0 = Now();
	PGresult   *res;

	snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s", table);
	Exec(conn, sql);
	snprintf(sql, sizeof(sql), "CREATE TABLE %s (id int, %s %s(%d))", table, column, type, o->dims);
	Exec(conn, sql);
	if (o->distribute > 0)
	{
		snprintf(sql, sizeof(sql), "SELECT create_distributed_table('%s', 'id', shard_count => %d)",
				 table, o->distribute);
		Exec(conn, sql);
	}
	snprintf(sql, sizeof(sql), "COPY %s (id, %s) FROM STDIN (FORMAT binary)", table, column);
	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_COPY_IN)
		Die(conn, "COPY");
	PQclear(res);
	memcpy(buf, "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0", 19);
	used = 19;
	for (long i = 0; i < o->rows; i++)
	{
		char	   *p = buf + used;

		p[0] = 0;
		p[1] = 2;				/* two fields */
		PutInt32(p + 2, 4);
		PutInt32(p + 6, (uint32_t) (i + 1));
		PutInt32(p + 10, (uint32_t) (4 + 4 * o->dims));
		PutVector(p + 14, base + (size_t) i * o->dims, o->dims);
		used += rowBytes;
		if (used >= cap)
		{
			if (PQputCopyData(conn, buf, (int) used) != 1)
				Die(conn, "COPY data");
			used = 0;
		}
	}
	buf[used++] = (char) 0xff;	/* trailer: -1 fields */
	buf[used++] = (char) 0xff;
	if (PQputCopyData(conn, buf, (int) used) != 1 || PQputCopyEnd(conn, NULL) != 1)
		Die(conn, "COPY data");
	res = PQgetResult(conn);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		Die(conn, "COPY result");
	PQclear(res);
	snprintf(sql, sizeof(sql), "VACUUM ANALYZE %s", table);
	Exec(conn, sql);
	printf("loaded %d rows of %d dimensions into %s in %.1f s (binary COPY, VACUUM ANALYZE)\n",
		   o->rows, o->dims, table, Now() - t0);
	free(buf);
}

/*
 * The exact top-k of every query by cosine (dot products of unit vectors):
 * scores of blocks of rows in float by BLAS, the best k + 16 of each query
 * kept, then recomputed in double for the final order.
 */
static void
GroundTruth(const Options *o, const float *base, const float *queries, int nq, int *truth)
{
	int			keep = o->k + 16;
	int			block = 8192;
	float	   *scores = malloc(sizeof(float) * (size_t) nq * block);
	float	   *bestScore = malloc(sizeof(float) * (size_t) nq * keep);
	long	   *bestId = malloc(sizeof(long) * (size_t) nq * keep);
	int		   *nbest = calloc(nq, sizeof(int));
	double		t0 = Now();

	for (long start = 0; start < o->rows; start += block)
	{
		int			n = (int) (o->rows - start < block ? o->rows - start : block);

		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, n, o->dims, 1.0f, queries,
					o->dims, base + (size_t) start * o->dims, o->dims, 0.0f, scores, n);
		for (int q = 0; q < nq; q++)
		{
			float	   *bs = bestScore + (size_t) q * keep;
			long	   *bi = bestId + (size_t) q * keep;
			const float *s = scores + (size_t) q * n;

			for (int j = 0; j < n; j++)
			{
				int			pos;

				if (nbest[q] == keep && s[j] <= bs[keep - 1])
					continue;
				pos = nbest[q] < keep ? nbest[q]++ : keep - 1;
				while (pos > 0 && bs[pos - 1] < s[j])
				{
					bs[pos] = bs[pos - 1];
					bi[pos] = bi[pos - 1];
					pos--;
				}
				bs[pos] = s[j];
				bi[pos] = start + j;
			}
		}
	}
	for (int q = 0; q < nq; q++)
	{
		double		exact[64];
		long	   *bi = bestId + (size_t) q * keep;
		const float *qv = queries + (size_t) q * o->dims;

		for (int c = 0; c < nbest[q]; c++)
		{
			const float *x = base + (size_t) bi[c] * o->dims;
			double		dot = 0.0;

			for (int d = 0; d < o->dims; d++)
				dot += (double) qv[d] * x[d];
			exact[c] = dot;
		}
		/* selection of the k best, in double */
		for (int r = 0; r < o->k; r++)
		{
			int			best = r;

			for (int c = r + 1; c < nbest[q]; c++)
				if (exact[c] > exact[best] || (exact[c] == exact[best] && bi[c] < bi[best]))
					best = c;
			{
				double		te = exact[r];
				long		ti = bi[r];

				exact[r] = exact[best];
				bi[r] = bi[best];
				exact[best] = te;
				bi[best] = ti;
			}
			truth[(size_t) q * o->k + r] = (int) (bi[r] + 1);
		}
	}
	printf("exact top-%d of %d queries in %.1f s\n", o->k, nq, Now() - t0);
	free(scores);
	free(bestScore);
	free(bestId);
	free(nbest);
}

static int
MixtureCluster(const Mixture *mx, uint64_t stream, long index)
{
	uint64_t	state = stream * UINT64_C(0x100000001B3) + (uint64_t) index * UINT64_C(0x9E3779B97F4A7C15);

	return (int) (SplitMix64(&state) % (uint64_t) mx->o->clusters);
}

static double
Dot(const float *a, const float *b, int n)
{
	double		s = 0;

	for (int d = 0; d < n; d++)
		s += (double) a[d] * b[d];
	return s;
}

/*
 * Mean cosines that describe the data, over a sample: rows of one cluster,
 * rows of different clusters, a text query and the rows of its cluster.
 */
static void
DescribeData(const Mixture *mx, const float *base, const QuerySet *sets)
{
	const Options *o = mx->o;
	double		sum[3] = {0, 0, 0};
	long		n[3] = {0, 0, 0};
	int			sample = o->rows < 3000 ? o->rows : 3000;

	for (int i = 0; i < sample; i++)
		for (int j = i + 1; j < sample; j++)
		{
			int			same = MixtureCluster(mx, 1, i) == MixtureCluster(mx, 1, j);

			if (!same && n[1] > 20000)
				continue;
			sum[same ? 0 : 1] += Dot(base + (size_t) i * o->dims, base + (size_t) j * o->dims, o->dims);
			n[same ? 0 : 1]++;
		}
	for (int q = 0; q < o->queries && q < 100; q++)
	{
		int			c = MixtureCluster(mx, 3, q);

		for (int i = 0; i < sample; i++)
			if (MixtureCluster(mx, 1, i) == c)
			{
				sum[2] += Dot(sets[1].vectors + (size_t) q * o->dims, base + (size_t) i * o->dims, o->dims);
				n[2]++;
			}
	}
	printf("data: mean cosine of rows of one cluster %.3f, of different clusters %.3f; "
		   "of a text query and the rows of its cluster %.3f\n",
		   n[0] ? sum[0] / n[0] : NAN, n[1] ? sum[1] / n[1] : NAN, n[2] ? sum[2] / n[2] : NAN);
}

static double
Build(PGconn *conn, const char *createSql, const char *index, const char *workers, int distributed,
	  double *sizeMiB)
{
	char		sql[512];
	double		t0,
				elapsed;
	char	   *size;

	snprintf(sql, sizeof(sql), "DROP INDEX IF EXISTS %s", index);
	Exec(conn, sql);
	if (workers[0] != '\0')
	{
		snprintf(sql, sizeof(sql), "SET max_parallel_maintenance_workers = %s", workers);
		Exec(conn, sql);
	}
	else
		Exec(conn, "RESET max_parallel_maintenance_workers");
	Exec(conn, "CHECKPOINT");
	Exec(conn, "SET client_min_messages = notice");	/* the build's NOTICEs */
	t0 = Now();
	Exec(conn, createSql);
	elapsed = Now() - t0;
	Exec(conn, "SET client_min_messages = warning");
	snprintf(sql, sizeof(sql), "SELECT %s('%s')", distributed ? "citus_relation_size" : "pg_relation_size",
			 index);
	size = QueryValue(conn, sql);
	*sizeMiB = atof(size) / (1024.0 * 1024.0);
	free(size);
	return elapsed;
}

/*
 * CPU time the connection's backend has used, in seconds, from
 * /proc/PID/schedstat (a server on this machine); -1 if unknown.  Under a
 * loaded machine it measures the work better than the wall clock.
 */
static double
BackendCpuSeconds(PGconn *conn)
{
	char		path[64];
	FILE	   *f;
	unsigned long long ns;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", PQbackendPID(conn));
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	if (fscanf(f, "%llu", &ns) != 1)
		ns = 0;
	fclose(f);
	return ns > 0 ? ns * 1e-9 : -1;
}

/* Runs one query set at one ef; returns recall, sets *qps and *cpuMs. */
static double
RunQueries(PGconn *conn, const Options *o, const QuerySet *set, const char *stmt, double *qps,
		   double *cpuMs)
{
	double		cpu0 = 0;

	char	   *param = malloc(4 + 4 * (size_t) o->dims);
	long		hits = 0;
	double		t0 = 0,
				elapsed = 0;

	for (int pass = 0; pass < 2; pass++)	/* pass 0 warms the cache */
	{
		t0 = Now();
		cpu0 = BackendCpuSeconds(conn);
		hits = 0;
		for (int q = 0; q < o->queries; q++)
		{
			const char *values[1] = {param};
			int			lengths[1];
			int			formats[1] = {1};
			PGresult   *res;

			lengths[0] = (int) PutVector(param, set->vectors + (size_t) q * o->dims, o->dims);
			res = PQexecPrepared(conn, stmt, 1, values, lengths, formats, 0);
			if (PQresultStatus(res) != PGRES_TUPLES_OK)
				Die(conn, "query");
			for (int r = 0; r < PQntuples(res); r++)
			{
				int			id = atoi(PQgetvalue(res, r, 0));

				for (int t = 0; t < o->k; t++)
					hits += set->truth[(size_t) q * o->k + t] == id;
			}
			PQclear(res);
		}
		elapsed = Now() - t0;
	}
	{
		double		cpu1 = BackendCpuSeconds(conn);

		*cpuMs = cpu0 >= 0 && cpu1 >= 0 && o->distribute == 0 ? 1000.0 * (cpu1 - cpu0) / o->queries : -1;
	}
	free(param);
	*qps = o->queries / elapsed;
	return (double) hits / ((double) o->queries * o->k);
}

static void
Prepare(PGconn *conn, const char *stmt, const char *sql, const char *type)
{
	char		q[256];
	char	   *oid;
	Oid			types[1];
	PGresult   *res;

	snprintf(q, sizeof(q), "SELECT '%s'::regtype::oid", type);
	oid = QueryValue(conn, q);
	types[0] = (Oid) strtoul(oid, NULL, 10);
	free(oid);
	res = PQprepare(conn, stmt, sql, 1, types);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		Die(conn, "prepare");
	PQclear(res);
}

/*
 * Sets `efSetting` to ef for the following queries.  On Citus the shards'
 * sessions must see it: it is set for the database, which Citus propagates
 * to the workers, and the client reconnects (new sessions on the workers),
 * then prepares `stmt` (sql, with one parameter of type) again.
 */
static void
SetEf(PGconn *conn, const Options *o, const char *efSetting, int ef, const char *stmt,
	  const char *sql, const char *type)
{
	char		q[256];

	if (o->distribute == 0)
	{
		snprintf(q, sizeof(q), "SET %s = %d", efSetting, ef);
		Exec(conn, q);
		return;
	}
	snprintf(q, sizeof(q), "DO $$ BEGIN EXECUTE format('ALTER DATABASE %%I SET %s = %d', current_database()); END $$",
			 efSetting, ef);
	Exec(conn, q);
	PQreset(conn);
	if (PQstatus(conn) != CONNECTION_OK)
		Die(conn, "reconnect");
	Exec(conn, "SET client_min_messages = warning");
	Prepare(conn, stmt, sql, type);
}

/*
 * Queries both sets over the ef list with `efSetting` (the GUC) and fills r;
 * stmt is prepared from sql with a parameter of type.
 */
static void
Sweep(PGconn *conn, const Options *o, const QuerySet *sets, const char *stmt, const char *sql,
	  const char *type, const char *efSetting, Result *r)
{
	r->nef = ParseIntList(o->efList, r->ef, MAX_LIST);
	printf("  %6s | %9s %9s %9s | %10s %9s %9s\n", "ef", "in recall", "in q/s", "in cpu ms",
		   "ood recall", "ood q/s", "ood cpu ms");
	for (int e = 0; e < r->nef; e++)
	{
		SetEf(conn, o, efSetting, r->ef[e], stmt, sql, type);
		for (int s = 0; s < 2; s++)
			r->recall[s][e] = RunQueries(conn, o, &sets[s], stmt, &r->qps[s][e], &r->cpuMs[s][e]);
		printf("  %6d | %9.4f %9.1f %9.3f | %10.4f %9.1f %9.3f\n", r->ef[e], r->recall[0][e],
			   r->qps[0][e], r->cpuMs[0][e], r->recall[1][e], r->qps[1][e], r->cpuMs[1][e]);
		fflush(stdout);
	}
	if (o->distribute > 0)
	{
		char		q[256];

		snprintf(q, sizeof(q), "DO $$ BEGIN EXECUTE format('ALTER DATABASE %%I RESET %s', current_database()); END $$",
				 efSetting);
		Exec(conn, q);
	}
}

/*
 * Searches for N base vectors themselves (rows spread evenly over the table)
 * at the last ef_search of the list and counts those in their own top-k.  A
 * row the search cannot find from its own vector is, in practice,
 * unreachable: it caps recall at every ef.
 */
static void
SelfCheck(PGconn *conn, const Options *o, const float *base, const char *stmt)
{
	char	   *param = malloc(4 + 4 * (size_t) o->dims);
	int			n = o->selfCheck < o->rows ? o->selfCheck : o->rows;
	int			found = 0;

	for (int s = 0; s < n; s++)
	{
		long		row = (long) ((double) s * o->rows / n);
		const char *values[1] = {param};
		int			lengths[1];
		int			formats[1] = {1};
		PGresult   *res;

		lengths[0] = (int) PutVector(param, base + (size_t) row * o->dims, o->dims);
		res = PQexecPrepared(conn, stmt, 1, values, lengths, formats, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			Die(conn, "self-check query");
		for (int r = 0; r < PQntuples(res); r++)
			if (atol(PQgetvalue(res, r, 0)) == row + 1)
			{
				found++;
				break;
			}
		PQclear(res);
	}
	printf("  self-check at the last ef_search: %d of %d table rows find themselves in their top-%d\n",
		   found, n, o->k);
	free(param);
}

/* A number with one decimal, in one of a few rotating static buffers. */
static const char *
Fmt1(double v)
{
	static char buf[4][32];
	static int	next = 0;

	next = (next + 1) % 4;
	snprintf(buf[next], sizeof(buf[next]), "%.1f", v);
	return buf[next];
}

static void
Summary(const Options *o, const Result *results, int nresults)
{
	printf("\nsummary (%d x %d, m = %d, ef_construction = %d; recall@%d and queries/s on one connection)\n",
		   o->rows, o->dims, o->m, o->efConstruction, o->k);
	printf("(cpu ms: the server backend's CPU time per query, where the server runs on this machine)\n");
	printf("| index | build s | MiB | ef | in recall | in q/s | in cpu ms | ood recall | ood q/s | ood cpu ms |\n");
	printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
	for (int i = 0; i < nresults; i++)
		for (int e = 0; e < results[i].nef; e++)
			printf("| %s | %s | %s | %d | %.4f | %.0f | %.3f | %.4f | %.0f | %.3f |\n",
				   e == 0 ? results[i].label : "", e == 0 ? Fmt1(results[i].buildSeconds) : "",
				   e == 0 ? Fmt1(results[i].sizeMiB) : "",
				   results[i].ef[e], results[i].recall[0][e], results[i].qps[0][e], results[i].cpuMs[0][e],
				   results[i].recall[1][e], results[i].qps[1][e], results[i].cpuMs[1][e]);
}

int
main(int argc, char **argv)
{
	Options		o = {100000, 512, 1000, 500, 16, 64, 1.0, 1.5, 0.5, 0.3, 10,
		"10,20,40,80,160,320", "float4", "", "hnsw_bench", 0, "2GB", 0, 0, 0, NULL, 0, 0};
	Mixture		mx;
	PGconn	   *conn;
	PGconn	   *pconn = NULL;	/* pgvector's: a backend loads one of the two libraries */
	float	   *base;
	QuerySet	sets[2] = {{"in", NULL, NULL}, {"ood", NULL, NULL}};
	char		storages[MAX_LIST][16];
	int			nstorages;
	int			workers[MAX_LIST];
	int			nworkers;
	Result		results[2 * MAX_LIST];
	int			nresults = 0;
	char		sql[1024];
	double		t0;

	setvbuf(stdout, NULL, _IOLBF, 0);	/* progress as it happens */
	for (int i = 1; i < argc; i++)
	{
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : "";

		if (strcmp(a, "--rows") == 0) o.rows = atoi(v), i++;
		else if (strcmp(a, "--dims") == 0) o.dims = atoi(v), i++;
		else if (strcmp(a, "--clusters") == 0) o.clusters = atoi(v), i++;
		else if (strcmp(a, "--queries") == 0) o.queries = atoi(v), i++;
		else if (strcmp(a, "--m") == 0) o.m = atoi(v), i++;
		else if (strcmp(a, "--ef-construction") == 0) o.efConstruction = atoi(v), i++;
		else if (strcmp(a, "--spread") == 0) o.spread = atof(v), i++;
		else if (strcmp(a, "--image-offset") == 0) o.imageOffset = atof(v), i++;
		else if (strcmp(a, "--text-spread") == 0) o.textSpread = atof(v), i++;
		else if (strcmp(a, "--text-cosine") == 0) o.textCosine = atof(v), i++;
		else if (strcmp(a, "--ef") == 0) o.efList = v, i++;
		else if (strcmp(a, "--storage") == 0) o.storageList = v, i++;
		else if (strcmp(a, "--workers") == 0) o.workersList = v, i++;
		else if (strcmp(a, "--table") == 0) o.table = v, i++;
		else if (strcmp(a, "--skip-load") == 0) o.skipLoad = 1;
		else if (strcmp(a, "--maintenance-work-mem") == 0) o.maintenanceWorkMem = v, i++;
		else if (strcmp(a, "--self-check") == 0) o.selfCheck = atoi(v), i++;
		else if (strcmp(a, "--pgvector") == 0) o.pgvector = 1;
		else if (strcmp(a, "--pgvector-halfvec") == 0) o.pgvectorHalfvec = 1;
		else if (strcmp(a, "--dump") == 0) o.dumpDir = v, i++;
		else if (strcmp(a, "--no-db") == 0) o.noDb = 1;
		else if (strcmp(a, "--distribute") == 0) o.distribute = atoi(v), i++;
		else
		{
			fprintf(stderr, "usage: hnsw_bench [--rows N] [--dims D] [--clusters C] [--queries Q] "
					"[--m M] [--ef-construction E] [--spread S] [--image-offset A] "
					"[--text-spread S] [--text-cosine C] [--ef 10,20,...] "
					"[--storage float4,half,int8,rabitq] [--workers 0,1] [--table NAME] "
					"[--skip-load] [--maintenance-work-mem 2GB] [--self-check N] [--pgvector [--pgvector-halfvec]] "
					"[--dump DIR [--no-db]] [--distribute SHARDS]\n");
			return 2;
		}
	}
	nstorages = ParseWordList(o.storageList, storages, MAX_LIST);
	nworkers = o.workersList[0] ? ParseIntList(o.workersList, workers, MAX_LIST) : 1;
	if (o.rows < o.k || o.dims < 1 || o.dims > 16000 || o.clusters < 1 || o.queries < 1 ||
		o.k > 48 || o.textCosine <= 0 || (o.noDb && o.dumpDir == NULL) || o.distribute < 0 ||
		strlen(o.maintenanceWorkMem) > 32 || strchr(o.maintenanceWorkMem, '\'') != NULL ||
		strlen(o.table) > 40)
	{
		fprintf(stderr, "hnsw_bench: bad sizes or option values\n");
		return 2;
	}
	for (int s = 0; s < nstorages; s++)
		for (const char *c = storages[s]; *c; c++)
			if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9')))
			{
				fprintf(stderr, "hnsw_bench: bad storage form \"%s\"\n", storages[s]);
				return 2;
			}
	PrintLoad("start");
	MixtureInit(&mx, &o);
	printf("data: %d x %d, %d clusters, spread %.2f, image offset %.2f, unit-normalised; "
		   "%d queries per set (ood: text offset %.2f, spread %.2f); m = %d, ef_construction = %d\n",
		   o.rows, o.dims, o.clusters, o.spread, o.imageOffset, o.queries, mx.textOffset,
		   o.textSpread, o.m, o.efConstruction);

	t0 = Now();
	base = malloc(sizeof(float) * (size_t) o.rows * o.dims);
	if (base == NULL)
	{
		fprintf(stderr, "hnsw_bench: out of memory for the rows\n");
		return 1;
	}
	for (long i = 0; i < o.rows; i++)
		MixtureVector(&mx, 1, i, base + (size_t) i * o.dims);
	{
		float	   *all = malloc(sizeof(float) * 2 * (size_t) o.queries * o.dims);
		int		   *truth = malloc(sizeof(int) * 2 * (size_t) o.queries * o.k);

		for (int q = 0; q < o.queries; q++)
		{
			MixtureVector(&mx, 2, q, all + (size_t) q * o.dims);
			MixtureVector(&mx, 3, q, all + ((size_t) o.queries + q) * o.dims);
		}
		printf("generated the rows and queries in %.1f s\n", Now() - t0);
		GroundTruth(&o, base, all, 2 * o.queries, truth);
		sets[0].vectors = all;
		sets[0].truth = truth;
		sets[1].vectors = all + (size_t) o.queries * o.dims;
		sets[1].truth = truth + (size_t) o.queries * o.k;
	}
	DescribeData(&mx, base, sets);
	if (o.dumpDir != NULL)
	{
		WriteNpy(o.dumpDir, "base.npy", "f4", base, o.rows, o.dims);
		WriteNpy(o.dumpDir, "queries.npy", "f4", sets[0].vectors, o.queries, o.dims);
		WriteNpy(o.dumpDir, "truth.npy", "i4", sets[0].truth, o.queries, o.k);
		WriteNpy(o.dumpDir, "queries_ood.npy", "f4", sets[1].vectors, o.queries, o.dims);
		WriteNpy(o.dumpDir, "truth_ood.npy", "i4", sets[1].truth, o.queries, o.k);
	}
	if (o.noDb)
		return 0;

	conn = Connect(&o);
	Exec(conn, "CREATE EXTENSION IF NOT EXISTS crossmodal");
	if (o.pgvector)
	{
		pconn = Connect(&o);
		Exec(pconn, "CREATE EXTENSION IF NOT EXISTS vector");
	}
	{
		char	   *v = QueryValue(conn, "SELECT current_setting('shared_buffers') || ', max_parallel_maintenance_workers ' || current_setting('max_parallel_maintenance_workers') || ', ' || version()");

		printf("server: shared_buffers %s\n", v);
		free(v);
	}
	if (!o.skipLoad)
	{
		Load(conn, &o, base, o.table, "emb", "embedding");
		if (o.pgvector)
		{
			snprintf(sql, sizeof(sql), "%s_pgv", o.table);
			Load(pconn, &o, base, sql, "v", "vector");
		}
	}

	for (int s = 0; s < nstorages; s++)
		for (int w = 0; w < nworkers; w++)
		{
			Result	   *r = &results[nresults++];
			char		index[64];
			char		wtext[16] = "";

			if (o.workersList[0])
				snprintf(wtext, sizeof(wtext), "%d", workers[w]);
			snprintf(index, sizeof(index), "%s_hnsw", o.table);
			snprintf(r->label, sizeof(r->label), "crossmodal_hnsw %s%s%s", storages[s],
					 wtext[0] ? ", workers " : "", wtext);
			snprintf(sql, sizeof(sql),
					 "CREATE INDEX %s ON %s USING crossmodal_hnsw (emb embedding_cosine_ops) "
					 "WITH (m = %d, ef_construction = %d, storage = %s)",
					 index, o.table, o.m, o.efConstruction, storages[s]);
			r->buildSeconds = Build(conn, sql, index, wtext, o.distribute > 0, &r->sizeMiB);
			printf("%s: build %.1f s, index %.1f MiB\n", r->label, r->buildSeconds, r->sizeMiB);
			snprintf(sql, sizeof(sql), "SELECT id FROM %s ORDER BY emb <=> $1 LIMIT %d",
					 o.table, o.k);
			Prepare(conn, "knn", sql, "embedding");
			Sweep(conn, &o, sets, "knn", sql, "embedding", "crossmodal.hnsw_ef_search", r);
			if (o.selfCheck > 0)
				SelfCheck(conn, &o, base, "knn");
			Exec(conn, "DEALLOCATE knn");
			PrintLoad("after this index");
		}

	if (o.pgvector)
	{
		Result	   *r = &results[nresults++];
		char		index[64];
		char		table[64];
		char		column[64];

		snprintf(table, sizeof(table), "%s_pgv", o.table);
		snprintf(index, sizeof(index), "%s_pgv_hnsw", o.table);
		/* pgvector indexes vectors of up to 2,000 dimensions, halfvecs of up to 4,000 */
		if (o.pgvectorHalfvec)
			snprintf(column, sizeof(column), "(v::halfvec(%d))", o.dims);
		else
			snprintf(column, sizeof(column), "v");
		snprintf(r->label, sizeof(r->label), "pgvector hnsw%s", o.pgvectorHalfvec ? " (halfvec)" : "");
		snprintf(sql, sizeof(sql),
				 "CREATE INDEX %s ON %s USING hnsw (%s %s_cosine_ops) "
				 "WITH (m = %d, ef_construction = %d)", index, table, column,
				 o.pgvectorHalfvec ? "halfvec" : "vector", o.m, o.efConstruction);
		r->buildSeconds = Build(pconn, sql, index, "", o.distribute > 0, &r->sizeMiB);
		{
			char	   *v = QueryValue(pconn, "SELECT extversion FROM pg_extension WHERE extname = 'vector'");

			printf("%s %s: build %.1f s, index %.1f MiB\n", r->label, v, r->buildSeconds, r->sizeMiB);
			free(v);
		}
		if (o.pgvectorHalfvec)
			snprintf(sql, sizeof(sql), "SELECT id FROM %s ORDER BY v::halfvec(%d) <=> $1::halfvec(%d) LIMIT %d",
					 table, o.dims, o.dims, o.k);
		else
			snprintf(sql, sizeof(sql), "SELECT id FROM %s ORDER BY v <=> $1 LIMIT %d", table, o.k);
		Prepare(pconn, "pgv", sql, "vector");
		Sweep(pconn, &o, sets, "pgv", sql, "vector", "hnsw.ef_search", r);
		if (o.selfCheck > 0)
			SelfCheck(pconn, &o, base, "pgv");
		PQfinish(pconn);
		PrintLoad("after pgvector");
	}
	Summary(&o, results, nresults);

	PQfinish(conn);
	free(base);
	return 0;
}
