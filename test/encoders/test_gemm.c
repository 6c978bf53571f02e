/*
 * test_gemm.c
 *	  cm_gemm_nt (y = x W^T + bias with W read in place) against a
 *	  double-precision reference, on every path the CPU runs (portable C,
 *	  AVX2/FMA, AVX-512) and the dispatching entry point on one and two
 *	  threads: every row count from 1 to 70 and beyond one row pass, odd
 *	  widths, depths that are not a multiple of 8 and beyond one depth pass,
 *	  bias or none, accumulate or overwrite, unaligned pointers and padded
 *	  leading dimensions.
 */
#include "gemm.h"
#include "runtime_test_util.h"

#include <float.h>
#include <stdatomic.h>
#include <stdint.h>

static uint64_t rng = 0x2545f4914f6cdd1dull;

static float
rand_float(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float) (rng >> 40) / (float) (1 << 24) * 2.0f - 1.0f;
}

/* The path under test (cm_gemm_nt itself when dispatching). */
static cm_gemm_path current_path;
static bool dispatching;
static cm_gemm_team *team;		/* NULL: one thread */

static void
run_gemm(int M, int N, int K, const float *x, size_t ldx, const float *W, size_t ldw,
		 const float *bias, float *y, size_t ldy, bool accumulate)
{
	if (dispatching)
		cm_gemm_nt(team, M, N, K, x, ldx, W, ldw, bias, y, ldy, accumulate);
	else
		cm_gemm_nt_path(current_path, team, M, N, K, x, ldx, W, ldw, bias, y, ldy, accumulate);
}

#define GUARD 1234.5f			/* value of y's padding, which must stay untouched */

#define MAX_OFFSET 16			/* floats: every position within a cache line */

/*
 * One product; offsets (< MAX_OFFSET floats) shift the pointers off any
 * alignment, x by x_offset and the others by offset, and pad adds to every
 * leading dimension.  Returns the worst error in units of the error bound.
 */
static double
check_case_at(const char *path, int M, int N, int K, bool with_bias, bool accumulate,
			  int offset, int x_offset, int pad)
{
	size_t		ldx = (size_t) K + pad,
				ldw = (size_t) K + pad,
				ldy = (size_t) N + pad;
	float	   *xb = malloc(((size_t) M * ldx + MAX_OFFSET) * sizeof(float));
	float	   *wb = malloc(((size_t) N * ldw + MAX_OFFSET) * sizeof(float));
	float	   *yb = malloc(((size_t) M * ldy + MAX_OFFSET) * sizeof(float));
	float	   *bb = malloc(((size_t) N + MAX_OFFSET) * sizeof(float));
	float	   *y0 = malloc(((size_t) M * ldy + MAX_OFFSET) * sizeof(float));
	float	   *x,
			   *w,
			   *y,
			   *bias;
	double		worst = 0.0;

	if (xb == NULL || wb == NULL || yb == NULL || bb == NULL || y0 == NULL)
	{
		RT_CHECK(false, "out of memory");
		goto done;
	}
	x = xb + x_offset;
	w = wb + offset;
	y = yb + offset;
	bias = with_bias ? bb + offset : NULL;
	for (size_t i = 0; i < (size_t) M * ldx; i++)
		x[i] = rand_float();
	for (size_t i = 0; i < (size_t) N * ldw; i++)
		w[i] = rand_float();
	for (int i = 0; i < N; i++)
		bb[offset + i] = rand_float();
	for (size_t i = 0; i < (size_t) M * ldy; i++)
		y[i] = (i % ldy) < (size_t) N ? rand_float() : GUARD;
	memcpy(y0, y, (size_t) M * ldy * sizeof(float));

	run_gemm(M, N, K, x, ldx, w, ldw, bias, y, ldy, accumulate);

	for (int m = 0; m < M; m++)
		for (size_t n = 0; n < ldy; n++)
		{
			double		ref = 0.0,
						mag = 0.0,
						err,
						bound;

			if (n >= (size_t) N)
			{
				RT_CHECK(y[m * ldy + n] == GUARD, "%s M=%d N=%d K=%d: padding of row %d written",
						 path, M, N, K, m);
				continue;
			}
			for (int k = 0; k < K; k++)
			{
				double		p = (double) x[m * ldx + k] * w[n * ldw + k];

				ref += p;
				mag += fabs(p);
			}
			if (bias != NULL)
			{
				ref += bias[n];
				mag += fabs(bias[n]);
			}
			if (accumulate)
			{
				ref += y0[m * ldy + n];
				mag += fabs(y0[m * ldy + n]);
			}
			/* float sums of K terms in any order: error below about K eps sum|p| */
			bound = ((double) K + 4.0) * FLT_EPSILON * mag + 1e-30;
			err = fabs(y[m * ldy + n] - ref);
			if (err / bound > worst)
				worst = err / bound;
			if (!(isfinite(y[m * ldy + n]) && err <= bound))
			{
				RT_CHECK(false, "%s M=%d N=%d K=%d bias=%d acc=%d off=%d pad=%d: y[%d][%zu] = %.9g, expected %.9g",
						 path, M, N, K, with_bias, accumulate, offset, pad, m, n, y[m * ldy + n], ref);
				goto done;
			}
		}
	RT_CHECK(true, "case passed");
done:
	free(xb);
	free(wb);
	free(yb);
	free(bb);
	free(y0);
	return worst;
}

static double
check_case(const char *path, int M, int N, int K, bool with_bias, bool accumulate,
		   int offset, int pad)
{
	return check_case_at(path, M, N, K, with_bias, accumulate, offset, offset, pad);
}

/*
 * W rows that share an alignment (K + pad a multiple of 16 floats) at every
 * position within a cache line, x elsewhere: the kernels' first masked step
 * up to W's next vector boundary, the few-row x panel copied to W's
 * alignment, K shorter than that step, and K beyond one depth pass.
 */
static double
check_alignments(const char *path)
{
	static const int rows[] = {1, 6, 10, 16, 17, 50};
	static const int depths[][2] = {{16, 0}, {48, 0}, {8, 8}, {3, 13}, {512, 0}, {528, 0}, {1040, 0}};
	double		worst = 0.0,
				e;
	int			i = 0;

	for (int o = 0; o < MAX_OFFSET; o++)
		for (int r = 0; r < (int) (sizeof(rows) / sizeof(rows[0])); r++, i++)
		{
			const int  *d = depths[i % (int) (sizeof(depths) / sizeof(depths[0]))];

			e = check_case_at(path, rows[r], 9 + i % 4, d[0], i % 2 == 0, i % 3 == 0,
							  o, (o + 5 * r) % MAX_OFFSET, d[1]);
			worst = e > worst ? e : worst;
		}
	return worst;
}

static void
check_path(const char *path)
{
	static const int widths[] = {1, 2, 3, 4, 5, 7, 9, 13, 31, 64};
	static const int depths[] = {1, 2, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 1030};
	int			nw = (int) (sizeof(widths) / sizeof(widths[0]));
	int			nd = (int) (sizeof(depths) / sizeof(depths[0]));
	double		worst = 0.0,
				e;
	int			cases = 0;

	/* Every row count to 70, each with a rotating width, depth and options. */
	for (int M = 1; M <= 70; M++)
		for (int t = 0; t < 6; t++)
		{
			int			i = M * 6 + t;

			e = check_case(path, M, widths[(i * 7) % nw], depths[(i * 5) % nd],
						   (i & 1) != 0, (i & 2) != 0, i % 3, (i / 3) % 3);
			worst = e > worst ? e : worst;
			cases++;
		}
	/* Every width and depth at the row counts of the register blocks' edges. */
	for (int a = 0; a < nw; a++)
		for (int b = 0; b < nd; b++)
		{
			e = check_case(path, 1 + (a + b) % 9, widths[a], depths[b], true, (a + b) % 2 == 0,
						   (a + b) % 4, b % 2);
			worst = e > worst ? e : worst;
			cases++;
		}
	/*
	 * Beyond one row pass and one depth pass at once; large enough to be
	 * split between two threads when allowed (odd widths included).
	 */
	e = check_case(path, 197, 11, 2051, true, true, 1, 3);
	worst = e > worst ? e : worst;
	e = check_case(path, 130, 70, 1024, false, false, 0, 0);
	worst = e > worst ? e : worst;
	e = check_case(path, 64, 101, 700, true, false, 2, 1);
	worst = e > worst ? e : worst;
	e = check_case(path, 10, 2049, 257, false, true, 3, 0);
	worst = e > worst ? e : worst;
	cases += 4;
	e = check_alignments(path);
	worst = e > worst ? e : worst;
	cases += MAX_OFFSET * 6;
	printf("%s: %d cases, worst error %.3f of the bound\n", path, cases, worst);
}

/* Empty products: no rows or columns leave y alone; K = 0 gives the bias. */
static void
check_empty(const char *path)
{
	float		x[1] = {1.0f},
				w[3] = {1.0f, 2.0f, 3.0f},
				bias[3] = {0.5f, -1.0f, 2.0f},
				y[6] = {1, 2, 3, 4, 5, 6};

	run_gemm(0, 3, 1, x, 1, w, 1, bias, y, 3, false);
	run_gemm(2, 0, 1, x, 1, w, 1, bias, y, 3, false);
	RT_CHECK(y[0] == 1 && y[5] == 6, "%s: an empty product wrote y", path);
	run_gemm(2, 3, 0, x, 1, w, 1, bias, y, 3, true);
	RT_CHECK(y[0] == 1.5f && y[1] == 1.0f && y[2] == 5.0f && y[3] == 4.5f && y[5] == 8.0f,
			 "%s: K = 0 with accumulate is not y + bias", path);
	run_gemm(2, 3, 0, x, 1, w, 1, NULL, y, 3, false);
	RT_CHECK(y[0] == 0 && y[4] == 0, "%s: K = 0 without bias is not zero", path);
}

/*
 * A product shared by a team gives the same bits as on one thread (each
 * output is computed the same way whichever thread takes its unit), over
 * many products in a row (the helper picks up each new one).
 */
static void
check_team_identical(cm_gemm_team *t)
{
	int			M = 50,
				N = 3 * 257,
				K = 300;
	float	   *x = malloc((size_t) M * K * sizeof(float));
	float	   *w = malloc((size_t) N * K * sizeof(float));
	float	   *b = malloc((size_t) N * sizeof(float));
	float	   *y1 = malloc((size_t) M * N * sizeof(float));
	float	   *y2 = malloc((size_t) M * N * sizeof(float));
	int			differ = 0;

	if (x == NULL || w == NULL || b == NULL || y1 == NULL || y2 == NULL)
		RT_CHECK(false, "out of memory");
	else
	{
		for (size_t i = 0; i < (size_t) M * K; i++)
			x[i] = rand_float();
		for (size_t i = 0; i < (size_t) N * K; i++)
			w[i] = rand_float();
		for (int i = 0; i < N; i++)
			b[i] = rand_float();
		cm_gemm_nt(NULL, M, N, K, x, K, w, K, b, y1, N, false);
		for (int rep = 0; rep < 200; rep++)
		{
			memset(y2, 0, (size_t) M * N * sizeof(float));
			cm_gemm_nt(t, M, N, K, x, K, w, K, b, y2, N, false);
			if (memcmp(y1, y2, (size_t) M * N * sizeof(float)) != 0)
				differ++;
		}
		RT_CHECK(differ == 0, "team product differs from one thread's in %d of 200 runs", differ);
	}
	free(x);
	free(w);
	free(b);
	free(y1);
	free(y2);
}

/* A generic task: every unit runs exactly once, on thread 0 or 1. */
typedef struct count_task
{
	_Atomic int runs[257];
	_Atomic int bad_thread;
} count_task;

static void
count_unit(void *ctx, int unit, int thread)
{
	count_task *t = ctx;

	atomic_fetch_add(&t->runs[unit], 1);
	if (thread != 0 && thread != 1)
		atomic_fetch_add(&t->bad_thread, 1);
}

static void
check_team_run(cm_gemm_team *t)
{
	static count_task task;
	int			wrong = 0;

	for (int rep = 0; rep < 300; rep++)
	{
		int			n = 1 + rep % 257;

		for (int u = 0; u < 257; u++)
			atomic_store(&task.runs[u], 0);
		atomic_store(&task.bad_thread, 0);
		cm_gemm_team_run(t, count_unit, &task, n);
		for (int u = 0; u < 257; u++)
			if (atomic_load(&task.runs[u]) != (u < n ? 1 : 0))
				wrong++;
		wrong += atomic_load(&task.bad_thread);
	}
	RT_CHECK(wrong == 0, "team task: %d units run other than once (or on a bad thread)", wrong);
}

static _Atomic int accepted_inits;

static bool
refuse_init(void)
{
	return false;
}

static bool
accept_init(void)
{
	atomic_fetch_add(&accepted_inits, 1);
	return true;
}

int
main(void)
{
	static const cm_gemm_path paths[] = {CM_GEMM_PORTABLE, CM_GEMM_AVX2, CM_GEMM_AVX512};
	cm_gemm_team two;

	for (size_t p = 0; p < sizeof(paths) / sizeof(paths[0]); p++)
	{
		if (!cm_gemm_path_supported(paths[p]))
		{
			printf("%s: not supported by this CPU\n", cm_gemm_path_name(paths[p]));
			continue;
		}
		current_path = paths[p];
		check_path(cm_gemm_path_name(paths[p]));
		check_empty(cm_gemm_path_name(paths[p]));
	}
	dispatching = true;
	printf("cm_gemm_nt dispatches to %s\n", cm_gemm_path_name(cm_gemm_best_path()));
	check_path("dispatch, 1 thread");
	check_empty("dispatch, 1 thread");

	RT_CHECK(!cm_gemm_team_start(&two, 1, NULL), "a team of one thread started");
	RT_CHECK(!cm_gemm_team_start(&two, 2, refuse_init) && !two.running,
			 "a team whose helper failed to initialise started");
	RT_CHECK(cm_gemm_team_start(&two, 2, accept_init) && accepted_inits == 1,
			 "a team whose helper initialised did not start");
	cm_gemm_team_stop(&two);
	cm_gemm_team_stop(&two);	/* harmless when not started */
	cm_gemm_team_stop(NULL);
	check_team_run(NULL);
	check_team_run(&two);		/* not started: the caller alone */
	RT_CHECK(cm_gemm_team_start(&two, 2, NULL), "a team of two threads did not start");
	if (two.running)
	{
		team = &two;
		check_path("dispatch, team of 2");
		check_empty("dispatch, team of 2");
		dispatching = false;
		for (size_t p = 0; p < sizeof(paths) / sizeof(paths[0]); p++)
			if (cm_gemm_path_supported(paths[p]))
			{
				char		name[48];

				current_path = paths[p];
				snprintf(name, sizeof(name), "%s, team of 2", cm_gemm_path_name(paths[p]));
				check_path(name);
			}
		team = NULL;
		check_team_identical(&two);
		check_team_run(&two);
		cm_gemm_team_stop(&two);
	}
	return rt_summary("test_gemm");
}
