/*
 * hnsw_bench.c
 *	  crossmodal_hnsw benchmark: build time, index size, recall@10 and queries/s per ef_search.
 *
 * Data: a deterministic Gaussian mixture (cluster centres and offsets drawn
 * from N(0, 1) per dimension, offsets scaled by --spread), every vector
 * unit-normalised; queries come from the same mixture but are not in the
 * table.  The exact top-10 by cosine distance is computed here, in double.
 * Queries go through one connection as a prepared statement with the vector
 * as a text parameter.  Connection settings come from the PG* environment.
 * Builds run with maintenance_work_mem = 2GB unless --maintenance-work-mem
 * says otherwise; server NOTICEs of the build (e.g. the graph outgrowing
 * maintenance_work_mem) are printed with a "server:" prefix.
 *
 * --self-check N searches for N table rows' own vectors at the last
 * ef_search and counts those that come back (unreachable rows cap recall).
 *
 * --dump DIR writes the exact data used to DIR as NumPy .npy files, for
 * bench/hnsw_reference.py: base.npy (float32 [rows][dims], row i is table
 * id i + 1), queries.npy (float32 [queries][dims]) and truth.npy (int32
 * [queries][k], the exact top-k as table ids, nearest first).  --no-db
 * stops after that, without connecting to a server.
 *
 * Build: cc -O2 -o hnsw_bench hnsw_bench.c -I$(pg_config --includedir) -lpq -lm
 * (bench/hnsw_bench.sh does this and runs the two standard configurations).
 */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

typedef struct Options
{
	int			rows;
	int			dims;
	int			clusters;
	int			queries;
	int			m;
	int			efConstruction;
	double		spread;
	int			k;
	const char *efList;
	const char *workersList;
	const char *table;
	int			skipLoad;
	const char *maintenanceWorkMem;
	int			selfCheck;		/* base vectors searched for themselves */
	const char *dumpDir;		/* NULL: write no files */
	int			noDb;
} Options;

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

/* Vector number `index` of a stream: its cluster's centre plus scaled noise, normalised. */
static void
MixtureVector(const float *centres, const Options *o, uint64_t stream, long index, float *out)
{
	uint64_t	state = stream * UINT64_C(0x100000001B3) + (uint64_t) index * UINT64_C(0x9E3779B97F4A7C15);
	int			c = (int) (SplitMix64(&state) % (uint64_t) o->clusters);
	double		norm = 0.0;

	for (int d = 0; d < o->dims; d++)
	{
		double		v = centres[(size_t) c * o->dims + d] + o->spread * Gaussian(&state);

		out[d] = (float) v;
		norm += v * v;
	}
	norm = sqrt(norm);
	for (int d = 0; d < o->dims; d++)
		out[d] = (float) (out[d] / norm);
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
VectorText(const float *v, int dims, char *buf)
{
	char	   *p = buf;

	*p++ = '[';
	for (int d = 0; d < dims; d++)
		p += sprintf(p, d ? ",%.9g" : "%.9g", v[d]);
	*p++ = ']';
	*p = '\0';
	return buf;
}

static int
ParseList(const char *s, int *out, int max)
{
	int			n = 0;
	char	   *copy = strdup(s);

	for (char *tok = strtok(copy, ","); tok && n < max; tok = strtok(NULL, ","))
		out[n++] = atoi(tok);
	free(copy);
	return n;
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

/* ---------- phases ---------- */

static void
Load(PGconn *conn, const Options *o, const float *centres)
{
	char		sql[512];
	float	   *v = malloc(sizeof(float) * o->dims);
	char	   *line = malloc((size_t) o->dims * 20 + 64);
	double		t0 = Now();
	PGresult   *res;

	snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s", o->table);
	Exec(conn, sql);
	snprintf(sql, sizeof(sql), "CREATE TABLE %s (id int, emb embedding(%d))", o->table, o->dims);
	Exec(conn, sql);
	snprintf(sql, sizeof(sql), "COPY %s (id, emb) FROM STDIN", o->table);
	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_COPY_IN)
		Die(conn, "COPY");
	PQclear(res);
	for (long i = 0; i < o->rows; i++)
	{
		int			n;

		MixtureVector(centres, o, 1, i, v);
		n = sprintf(line, "%ld\t", i + 1);
		VectorText(v, o->dims, line + n);
		n = strlen(line);
		line[n++] = '\n';
		if (PQputCopyData(conn, line, n) != 1)
			Die(conn, "COPY data");
	}
	if (PQputCopyEnd(conn, NULL) != 1)
		Die(conn, "COPY end");
	res = PQgetResult(conn);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		Die(conn, "COPY result");
	PQclear(res);
	snprintf(sql, sizeof(sql), "VACUUM ANALYZE %s", o->table);
	Exec(conn, sql);
	printf("loaded %d rows of %d dimensions in %.1f s\n", o->rows, o->dims, Now() - t0);
	free(v);
	free(line);
}

/* Exact top-k (largest dot product of unit vectors = smallest cosine distance). */
static int *
GroundTruth(const Options *o, const float *centres, const float *queries)
{
	float	   *data = malloc(sizeof(float) * (size_t) o->rows * o->dims);
	int		   *truth = malloc(sizeof(int) * (size_t) o->queries * o->k);
	double		t0 = Now();

	for (long i = 0; i < o->rows; i++)
		MixtureVector(centres, o, 1, i, data + (size_t) i * o->dims);
	for (int q = 0; q < o->queries; q++)
	{
		const float *qv = queries + (size_t) q * o->dims;
		double		best[64];
		int			bestId[64];
		int			n = 0;

		for (long i = 0; i < o->rows; i++)
		{
			const float *x = data + (size_t) i * o->dims;
			double		dot = 0.0;
			int			j;

			for (int d = 0; d < o->dims; d++)
				dot += (double) qv[d] * x[d];
			if (n == o->k && dot <= best[n - 1])
				continue;
			j = n < o->k ? n++ : n - 1;
			while (j > 0 && best[j - 1] < dot)
			{
				best[j] = best[j - 1];
				bestId[j] = bestId[j - 1];
				j--;
			}
			best[j] = dot;
			bestId[j] = (int) i + 1;
		}
		memcpy(truth + (size_t) q * o->k, bestId, sizeof(int) * o->k);
	}
	printf("exact top-%d of %d queries in %.1f s\n", o->k, o->queries, Now() - t0);
	if (o->dumpDir != NULL)
	{
		WriteNpy(o->dumpDir, "base.npy", "f4", data, o->rows, o->dims);
		WriteNpy(o->dumpDir, "queries.npy", "f4", queries, o->queries, o->dims);
		WriteNpy(o->dumpDir, "truth.npy", "i4", truth, o->queries, o->k);
	}
	free(data);
	return truth;
}

static void
Build(PGconn *conn, const Options *o, int workers)
{
	char		sql[512];
	double		t0;
	PGresult   *res;

	snprintf(sql, sizeof(sql), "DROP INDEX IF EXISTS %s_hnsw", o->table);
	Exec(conn, sql);
	snprintf(sql, sizeof(sql), "SET max_parallel_maintenance_workers = %d", workers);
	Exec(conn, sql);
	Exec(conn, "CHECKPOINT");
	snprintf(sql, sizeof(sql),
			 "CREATE INDEX %s_hnsw ON %s USING crossmodal_hnsw (emb embedding_cosine_ops) "
			 "WITH (m = %d, ef_construction = %d)", o->table, o->table, o->m, o->efConstruction);
	Exec(conn, "SET client_min_messages = notice");	/* the build's NOTICEs */
	t0 = Now();
	Exec(conn, sql);
	Exec(conn, "SET client_min_messages = warning");
	printf("build (max_parallel_maintenance_workers = %d): %.1f s", workers, Now() - t0);
	snprintf(sql, sizeof(sql), "SELECT pg_relation_size('%s_hnsw')", o->table);
	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		Die(conn, "index size");
	printf(", index size %.1f MiB\n", atof(PQgetvalue(res, 0, 0)) / (1024.0 * 1024.0));
	PQclear(res);
}

static void
Queries(PGconn *conn, const Options *o, const float *queries, const int *truth)
{
	char		sql[512];
	char	   *text = malloc((size_t) o->dims * 20 + 8);
	int			efs[32];
	int			nef = ParseList(o->efList, efs, 32);
	double		at95 = -1, at99 = -1;
	PGresult   *res;

	snprintf(sql, sizeof(sql), "SELECT id FROM %s ORDER BY emb <=> $1::embedding LIMIT %d",
			 o->table, o->k);
	res = PQprepare(conn, "knn", sql, 1, NULL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		Die(conn, "prepare");
	PQclear(res);

	printf("%8s %10s %10s %12s\n", "ef", "recall@10", "queries/s", "ms/query");
	for (int e = 0; e < nef; e++)
	{
		long		hits = 0;
		double		t0,
					elapsed;

		snprintf(sql, sizeof(sql), "SET crossmodal.hnsw_ef_search = %d", efs[e]);
		Exec(conn, sql);
		for (int pass = 0; pass < 2; pass++)	/* pass 0 warms the cache */
		{
			t0 = Now();
			hits = 0;
			for (int q = 0; q < o->queries; q++)
			{
				const char *params[1];

				params[0] = VectorText(queries + (size_t) q * o->dims, o->dims, text);
				res = PQexecPrepared(conn, "knn", 1, params, NULL, NULL, 0);
				if (PQresultStatus(res) != PGRES_TUPLES_OK)
					Die(conn, "query");
				for (int r = 0; r < PQntuples(res); r++)
				{
					int			id = atoi(PQgetvalue(res, r, 0));

					for (int t = 0; t < o->k; t++)
						hits += truth[(size_t) q * o->k + t] == id;
				}
				PQclear(res);
			}
			elapsed = Now() - t0;
		}
		{
			double		recall = (double) hits / ((double) o->queries * o->k);

			printf("%8d %10.4f %10.1f %12.3f\n", efs[e], recall, o->queries / elapsed,
				   1000.0 * elapsed / o->queries);
			if (at95 < 0 && recall >= 0.95)
				at95 = efs[e];
			if (at99 < 0 && recall >= 0.99)
				at99 = efs[e];
		}
		fflush(stdout);
	}
	{
		char		from95[32] = "(none)";
		char		from99[32] = "(none)";

		if (at95 >= 0)
			snprintf(from95, sizeof(from95), "%.0f", at95);
		if (at99 >= 0)
			snprintf(from99, sizeof(from99), "%.0f", at99);
		printf("recall@10 >= 0.95 from ef_search %s, >= 0.99 from ef_search %s\n", from95, from99);
	}
	free(text);
}

/*
 * Searches for N base vectors themselves (rows spread evenly over the table)
 * at the last ef_search of the list and counts those in their own top-k.  A
 * row the search cannot find from its own vector is, in practice,
 * unreachable: it caps recall at every ef.  Uses the "knn" statement.
 */
static void
SelfCheck(PGconn *conn, const Options *o, const float *centres)
{
	float	   *v = malloc(sizeof(float) * o->dims);
	char	   *text = malloc((size_t) o->dims * 20 + 8);
	int			n = o->selfCheck < o->rows ? o->selfCheck : o->rows;
	int			found = 0;

	for (int s = 0; s < n; s++)
	{
		long		row = (long) ((double) s * o->rows / n);
		const char *params[1];
		PGresult   *res;

		MixtureVector(centres, o, 1, row, v);
		params[0] = VectorText(v, o->dims, text);
		res = PQexecPrepared(conn, "knn", 1, params, NULL, NULL, 0);
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
	printf("self-check at the last ef_search: %d of %d table rows find themselves in their top-%d\n",
		   found, n, o->k);
	free(v);
	free(text);
}

int
main(int argc, char **argv)
{
	Options		o = {100000, 512, 1000, 500, 16, 64, 1.0, 10,
	"10,20,40,80,160,320", "0", "hnsw_bench", 0, "2GB", 0, NULL, 0};
	PGconn	   *conn;
	float	   *centres;
	float	   *queries;
	int		   *truth;
	uint64_t	state = 42;
	int			workers[8];
	int			nworkers;

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
		else if (strcmp(a, "--ef") == 0) o.efList = v, i++;
		else if (strcmp(a, "--workers") == 0) o.workersList = v, i++;
		else if (strcmp(a, "--table") == 0) o.table = v, i++;
		else if (strcmp(a, "--skip-load") == 0) o.skipLoad = 1;
		else if (strcmp(a, "--maintenance-work-mem") == 0) o.maintenanceWorkMem = v, i++;
		else if (strcmp(a, "--self-check") == 0) o.selfCheck = atoi(v), i++;
		else if (strcmp(a, "--dump") == 0) o.dumpDir = v, i++;
		else if (strcmp(a, "--no-db") == 0) o.noDb = 1;
		else
		{
			fprintf(stderr, "usage: hnsw_bench [--rows N] [--dims D] [--clusters C] [--queries Q] "
					"[--m M] [--ef-construction E] [--spread S] [--ef 10,20,...] "
					"[--workers 0,1] [--table NAME] [--skip-load] [--maintenance-work-mem 2GB] "
					"[--self-check N] [--dump DIR [--no-db]]\n");
			return 2;
		}
	}
	if (o.rows < o.k || o.dims < 1 || o.clusters < 1 || o.queries < 1 || o.k > 64 ||
		(o.noDb && o.dumpDir == NULL) ||
		strlen(o.maintenanceWorkMem) > 32 || strchr(o.maintenanceWorkMem, '\'') != NULL)
	{
		fprintf(stderr, "hnsw_bench: bad sizes or option values\n");
		return 2;
	}
	printf("data: %d x %d, %d clusters, spread %.2f, unit-normalised; %d queries; "
		   "m = %d, ef_construction = %d\n", o.rows, o.dims, o.clusters, o.spread,
		   o.queries, o.m, o.efConstruction);

	centres = malloc(sizeof(float) * (size_t) o.clusters * o.dims);
	for (size_t i = 0; i < (size_t) o.clusters * o.dims; i++)
		centres[i] = (float) Gaussian(&state);
	queries = malloc(sizeof(float) * (size_t) o.queries * o.dims);
	for (int q = 0; q < o.queries; q++)
		MixtureVector(centres, &o, 2, q, queries + (size_t) q * o.dims);

	if (o.noDb)
	{
		free(GroundTruth(&o, centres, queries));
		free(centres);
		free(queries);
		return 0;
	}

	conn = PQconnectdb("");
	if (PQstatus(conn) != CONNECTION_OK)
		Die(conn, "connect");
	PQsetNoticeProcessor(conn, PrintNotice, NULL);
	Exec(conn, "SET client_min_messages = warning");
	Exec(conn, "CREATE EXTENSION IF NOT EXISTS crossmodal");
	{
		char		sql[128];

		snprintf(sql, sizeof(sql), "SET maintenance_work_mem = '%s'", o.maintenanceWorkMem);
		Exec(conn, sql);
	}
	if (!o.skipLoad)
		Load(conn, &o, centres);
	truth = GroundTruth(&o, centres, queries);

	nworkers = ParseList(o.workersList, workers, 8);
	for (int w = 0; w < nworkers; w++)
		Build(conn, &o, workers[w]);
	Queries(conn, &o, queries, truth);
	if (o.selfCheck > 0)
		SelfCheck(conn, &o, centres);

	PQfinish(conn);
	free(centres);
	free(queries);
	free(truth);
	return 0;
}
