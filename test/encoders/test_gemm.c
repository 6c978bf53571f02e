/*
 * test_gemm.c
 *	  cm_gemm (y = x W^T + bias, W read in place or packed in panels) against
 *	  a double-precision reference, on every path the CPU runs (portable C,
 *	  AVX2/FMA, AVX-512, AVX-512 with AVX512_BF16) with each algorithm, and
 *	  the dispatching entry point on one and two threads, for float32
 *	  weights, bfloat16 weights
 *	  against float32 x, and the reduced-precision product (x rounded to
 *	  bfloat16 by cm_gemm_round_x against bfloat16 weights): every row count
 *	  from 1 to 70 and beyond one row pass, odd widths, depths that are not a
 *	  multiple of the vector width and beyond one depth pass, bias or none,
 *	  accumulate or overwrite, unaligned pointers and padded leading
 *	  dimensions.  Also the bfloat16 conversions themselves.
 */
#include "gemm.h"
#include "runtime_test_util.h"

#include <float.h>
#include <pthread.h>
#include <sched.h>
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

/* What a product multiplies. */
typedef enum mode
{
	MODE_F32,					/* float32 x and W */
	MODE_WBF16,					/* float32 x, bfloat16 W */
	MODE_BF16,					/* x rounded by cm_gemm_round_x, bfloat16 W */
	MODE_XBF16_WF32				/* packed bfloat16 x, float32 W (portable kernel on every path) */
} mode;

static const char *const mode_names[] = {"f32", "bf16 W", "bf16 x and W", "bf16 x, f32 W"};

/* The path under test (cm_gemm itself when dispatching). */
static cm_gemm_path current_path;
static bool dispatching;
static cm_team *team;			/* NULL: one thread */
static mode current_mode;
static cm_gemm_algo current_algo;	/* AUTO when dispatching */

static void
run_gemm(int M, int N, int K, cm_mat x, cm_mat W, const float *bias, float *y, size_t ldy,
		 bool accumulate)
{
	if (dispatching)
		cm_gemm(team, CM_GEMM_AUTO, M, N, K, x, W, bias, y, ldy, accumulate);
	else
		cm_gemm_on_path(current_path, team, current_algo, M, N, K, x, W, bias, y, ldy, accumulate);
}

/* Independent of gemm.c: bfloat16 to nearest even, subnormals to signed zero. */
static uint16_t
ref_round_activation(float f)
{
	uint32_t	u;

	memcpy(&u, &f, 4);
	if ((u & 0x7f800000u) == 0)
		return (uint16_t) ((u >> 16) & 0x8000u);
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t) ((u >> 16) | 0x40u);
	{
		uint32_t	lower = u & 0xffffu,
					upper = u >> 16;

		if (lower > 0x8000u || (lower == 0x8000u && (upper & 1u)))
			upper++;
		return (uint16_t) upper;
	}
}

static float
widen(uint16_t h)
{
	uint32_t	u = (uint32_t) h << 16;
	float		f;

	memcpy(&f, &u, 4);
	return f;
}

#define GUARD 1234.5f			/* value of y's padding, which must stay untouched */

#define MAX_OFFSET 32			/* elements: every position within a cache line, for both sizes */

/*
 * One product; offsets (< MAX_OFFSET elements) shift the pointers off any
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
	bool		wbf16 = current_mode != MODE_F32 && current_mode != MODE_XBF16_WF32;
	float	   *xb = malloc(((size_t) M * ldx + MAX_OFFSET) * sizeof(float));
	float	   *xr = malloc(((size_t) M * K + 1) * sizeof(float));	/* rounded x (cm_gemm_round_x) */
	uint16_t   *x16 = malloc(((size_t) M * ldx + MAX_OFFSET) * sizeof(uint16_t));
	float	   *wb = malloc(((size_t) N * ldw + MAX_OFFSET) * sizeof(float));
	uint16_t   *w16 = malloc(((size_t) N * ldw + MAX_OFFSET) * sizeof(uint16_t));
	float	   *yb = malloc(((size_t) M * ldy + MAX_OFFSET) * sizeof(float));
	float	   *bb = malloc(((size_t) N + MAX_OFFSET) * sizeof(float));
	float	   *y0 = malloc(((size_t) M * ldy + MAX_OFFSET) * sizeof(float));
	float	   *x,
			   *w,
			   *y,
			   *bias;
	cm_mat		xm,
				wm;
	double		worst = 0.0;

	if (xb == NULL || xr == NULL || x16 == NULL || wb == NULL || w16 == NULL || yb == NULL ||
		bb == NULL || y0 == NULL)
	{
		RT_CHECK(false, "out of memory");
		goto done;
	}
	x = xb + x_offset;
	w = wb + offset;
	y = yb + offset % 16;
	bias = with_bias ? bb + offset % 16 : NULL;
	for (size_t i = 0; i < (size_t) M * ldx; i++)
		x[i] = rand_float();
	for (size_t i = 0; i < (size_t) N * ldw; i++)
	{
		w16[offset + i] = ref_round_activation(rand_float());
		w[i] = wbf16 ? widen(w16[offset + i]) : rand_float();
	}
	for (int i = 0; i < N; i++)
		bb[offset % 16 + i] = rand_float();
	for (size_t i = 0; i < (size_t) M * ldy; i++)
		y[i] = (i % ldy) < (size_t) N ? rand_float() : GUARD;
	memcpy(y0, y, (size_t) M * ldy * sizeof(float));

	wm = wbf16 ? (cm_mat) {w16 + offset, ldw, CM_ELEM_BF16} : cm_mat_f32(w, ldw);
	xm = cm_mat_f32(x, ldx);
	if (current_mode == MODE_XBF16_WF32)
	{
		for (size_t i = 0; i < (size_t) M * ldx; i++)
		{
			x16[x_offset + i] = ref_round_activation(x[i]);
			x[i] = widen(x16[x_offset + i]);
		}
		xm = (cm_mat) {x16 + x_offset, ldx, CM_ELEM_BF16};
	}
	else if (current_mode == MODE_BF16)
	{
		/* the rounding is checked here, element by element; the reference then uses it */
		int			wrong = 0;

		xm = cm_gemm_round_x(dispatching ? cm_gemm_best_path() : current_path, team, M, K, x,
							 ldx, xr);
		RT_CHECK(xm.ld == (size_t) K, "%s: rounded x has ld %zu, expected %d", path, xm.ld, K);
		for (int m = 0; m < M; m++)
			for (int k = 0; k < K; k++)
			{
				size_t		i = (size_t) m * K + k;
				float		got = xm.type == CM_ELEM_BF16 ? widen(((const uint16_t *) xm.p)[i])
					: ((const float *) xm.p)[i];
				float		want = widen(ref_round_activation(x[(size_t) m * ldx + k]));

				if (memcmp(&got, &want, 4) != 0)
					wrong++;
				x[(size_t) m * ldx + k] = want;
			}
		RT_CHECK(wrong == 0, "%s: %d elements of x rounded wrongly", path, wrong);
	}

	run_gemm(M, N, K, xm, wm, bias, y, ldy, accumulate);

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
	free(xr);
	free(x16);
	free(wb);
	free(w16);
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
 * W rows that share an alignment (K + pad a multiple of 32 elements) at
 * every position within a cache line, x elsewhere: the kernels' first masked
 * step up to W's next load boundary, the few-row x panel copied to W's
 * alignment, K shorter than that step, and K beyond one depth pass.
 */
static double
check_alignments(const char *path)
{
	static const int rows[] = {1, 6, 10, 16, 17, 50};
	static const int depths[][2] = {{32, 0}, {48, 16}, {8, 24}, {3, 29}, {512, 0}, {528, 16},
	{1040, 16}, {2080, 0}};
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
check_path(const char *path_name)
{
	static const int widths[] = {1, 2, 3, 4, 5, 7, 9, 13, 31, 64};
	static const int depths[] = {1, 2, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 1030};
	int			nw = (int) (sizeof(widths) / sizeof(widths[0]));
	int			nd = (int) (sizeof(depths) / sizeof(depths[0]));
	double		worst = 0.0,
				e;
	int			cases = 0;
	char		path[96];

	snprintf(path, sizeof(path), "%s, %s%s", path_name, mode_names[current_mode],
			 dispatching ? "" : current_algo == CM_GEMM_PACKED ? ", packed" : ", in place");

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
	e = check_case(path, 40, 130, 4200, true, true, 5, 0);
	worst = e > worst ? e : worst;
	cases += 5;
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
	cm_mat		xm = cm_mat_f32(x, 1),
				wm = cm_mat_f32(w, 1);

	run_gemm(0, 3, 1, xm, wm, bias, y, 3, false);
	run_gemm(2, 0, 1, xm, wm, bias, y, 3, false);
	RT_CHECK(y[0] == 1 && y[5] == 6, "%s: an empty product wrote y", path);
	run_gemm(2, 3, 0, xm, wm, bias, y, 3, true);
	RT_CHECK(y[0] == 1.5f && y[1] == 1.0f && y[2] == 5.0f && y[3] == 4.5f && y[5] == 8.0f,
			 "%s: K = 0 with accumulate is not y + bias", path);
	run_gemm(2, 3, 0, xm, wm, NULL, y, 3, false);
	RT_CHECK(y[0] == 0 && y[4] == 0, "%s: K = 0 without bias is not zero", path);
}

/*
 * A product shared by a team gives the same bits as on one thread (each
 * output is computed the same way whichever thread takes its unit), over
 * many products in a row (the helpers pick up each new one).
 */
static void
check_team_identical(cm_team *t, bool bf16)
{
	int			M = 50,
				N = 3 * 257,
				K = 300;
	float	   *x = malloc((size_t) M * K * sizeof(float));
	float	   *xr = malloc((size_t) M * K * sizeof(float));
	float	   *w = malloc((size_t) N * K * sizeof(float));
	uint16_t   *w16 = malloc((size_t) N * K * sizeof(uint16_t));
	float	   *b = malloc((size_t) N * sizeof(float));
	float	   *y1 = malloc((size_t) M * N * sizeof(float));
	float	   *y2 = malloc((size_t) M * N * sizeof(float));
	int			differ = 0;

	if (x == NULL || xr == NULL || w == NULL || w16 == NULL || b == NULL || y1 == NULL || y2 == NULL)
		RT_CHECK(false, "out of memory");
	else
	{
		cm_mat		xm = cm_mat_f32(x, K),
					wm = cm_mat_f32(w, K);

		for (size_t i = 0; i < (size_t) M * K; i++)
			x[i] = rand_float();
		for (size_t i = 0; i < (size_t) N * K; i++)
		{
			w[i] = rand_float();
			w16[i] = cm_bf16_from_f32(w[i]);
		}
		for (int i = 0; i < N; i++)
			b[i] = rand_float();
		if (bf16)
		{
			xm = cm_gemm_round_x(cm_gemm_best_path(), NULL, M, K, x, K, xr);
			wm = (cm_mat) {w16, (size_t) K, CM_ELEM_BF16};
		}
		cm_gemm(NULL, CM_GEMM_AUTO, M, N, K, xm, wm, b, y1, N, false);
		for (int rep = 0; rep < 200; rep++)
		{
			memset(y2, 0, (size_t) M * N * sizeof(float));
			cm_gemm(t, CM_GEMM_AUTO, M, N, K, xm, wm, b, y2, N, false);
			if (memcmp(y1, y2, (size_t) M * N * sizeof(float)) != 0)
				differ++;
		}
		RT_CHECK(differ == 0, "team product (%s) differs from one thread's in %d of 200 runs",
				 bf16 ? "bf16" : "f32", differ);
	}
	free(x);
	free(xr);
	free(w);
	free(w16);
	free(b);
	free(y1);
	free(y2);
}

/* A generic task: every unit runs exactly once, on a thread of the team. */
typedef struct count_task
{
	_Atomic int runs[257];
	_Atomic int bad_thread;
	_Atomic int unit0_elsewhere;	/* unit 0 run by a helper (the caller must run it) */
	int			threads;
} count_task;

static void
count_unit(void *ctx, int unit, int thread)
{
	count_task *t = ctx;

	atomic_fetch_add(&t->runs[unit], 1);
	if (thread < 0 || thread >= t->threads)
		atomic_fetch_add(&t->bad_thread, 1);
	if (unit == 0 && thread != 0)
		atomic_fetch_add(&t->unit0_elsewhere, 1);
}

static void
check_team_run(cm_team *t)
{
	static count_task task;
	int			wrong = 0;

	task.threads = cm_team_threads(t);
	for (int rep = 0; rep < 300; rep++)
	{
		int			n = 1 + rep % 257;

		for (int u = 0; u < 257; u++)
			atomic_store(&task.runs[u], 0);
		atomic_store(&task.bad_thread, 0);
		atomic_store(&task.unit0_elsewhere, 0);
		cm_team_run(t, count_unit, &task, n);
		for (int u = 0; u < 257; u++)
			if (atomic_load(&task.runs[u]) != (u < n ? 1 : 0))
				wrong++;
		wrong += atomic_load(&task.bad_thread) + atomic_load(&task.unit0_elsewhere);
	}
	RT_CHECK(wrong == 0, "team of %d: %d units run other than once (or on a bad thread, or unit 0 "
			 "not on the caller)",
			 cm_team_threads(t), wrong);
}

/*
 * The advice that runs passes alone on a machine too busy for a team:
 * one starved pass is ignored, two start 50 ms alone, each starved pass
 * after a solo period doubles it up to 2 s, a pass that did not wait
 * resets it, short passes and unknown waiting say nothing.
 */
static void
check_team_advice(void)
{
	cm_team_advice a = {0};
	double		t = 1e6;

	RT_CHECK(cm_team_advice_threads(&a, 2, t) == 2, "fresh advice did not use the team");
	RT_CHECK(cm_team_advice_threads(&a, 1, t) == 1, "advice gave threads to a caller with one");
	cm_team_advice_note(&a, 0.5, 10e3, t);
	RT_CHECK(cm_team_advice_threads(&a, 2, t + 1) == 2, "one starved pass stopped the team");
	cm_team_advice_note(&a, 0.5, 10e3, t);
	RT_CHECK(cm_team_advice_threads(&a, 2, t + 1) == 1 && a.solo_passes == 1,
			 "two starved passes in a row did not stop the team");
	RT_CHECK(cm_team_advice_threads(&a, 2, t + 49e3) == 1, "the first solo period ended early");
	RT_CHECK(cm_team_advice_threads(&a, 2, t + 50e3) == 2, "the first solo period is not 50 ms");
	t += 50e3;
	cm_team_advice_note(&a, 0.4, 10e3, t);
	RT_CHECK(cm_team_advice_threads(&a, 2, t + 99e3) == 1 &&
			 cm_team_advice_threads(&a, 2, t + 100e3) == 2,
			 "a starved pass after a solo period did not start one twice as long");
	for (int i = 0; i < 20; i++)
	{
		t += 10e6;
		cm_team_advice_note(&a, 0.4, 10e3, t);
	}
	RT_CHECK(cm_team_advice_threads(&a, 2, t + 1.999e6) == 1 &&
			 cm_team_advice_threads(&a, 2, t + 2e6) == 2, "the solo period is not capped at 2 s");
	t += 10e6;
	cm_team_advice_note(&a, 0.02, 10e3, t);
	cm_team_advice_note(&a, 0.4, 10e3, t);
	RT_CHECK(cm_team_advice_threads(&a, 2, t + 1) == 2,
			 "a pass that did not wait did not reset the advice");
	cm_team_advice_note(&a, 0.9, 0.5e3, t);
	RT_CHECK(cm_team_advice_threads(&a, 2, t + 1) == 2, "a pass shorter than 1 ms counted");
	cm_team_advice_note(&a, -1.0, 10e3, t);
	RT_CHECK(cm_team_advice_threads(&a, 2, t + 1) == 2, "a pass whose waiting is unknown counted");
}

/* Units that each keep a thread busy for about a millisecond. */
static void
busy_unit(void *ctx, int unit, int thread)
{
	volatile double *sink = ctx;
	double		x = unit + thread;

	for (int i = 0; i < 1000000; i++)
		x = x * 0.999999 + 1e-9;
	*sink += x;
}

/* A team of two on busy units; its waiting share, -2 if it did not start. */
static double
busy_team_wait(bool one_cpu, double *wall_us)
{
	cm_team		t;
	volatile double sink = 0.0;
	cpu_set_t	set;

	if (cm_team_start(&t, 2, NULL) != 2)
		return -2.0;
	if (one_cpu)
	{
		/* caller and helper on the caller's current CPU: they must take turns */
		CPU_ZERO(&set);
		CPU_SET(sched_getcpu() < 0 ? 0 : sched_getcpu(), &set);
		if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0 ||
			pthread_setaffinity_np(t.helpers[0], sizeof(set), &set) != 0)
		{
			cm_team_stop(&t);
			return -3.0;
		}
	}
	cm_team_run(&t, busy_unit, (void *) &sink, 24);
	cm_team_stop(&t);
	return cm_team_wait_share(&t, wall_us);
}

/*
 * The waiting a team reports: with its two threads held to one CPU they
 * take turns, so about half their time is spent waiting; the measure must
 * see it (the advice rests on it), and never report more than all of it.
 */
static void
check_team_wait(void)
{
	cpu_set_t	saved;
	double		wall_us,
				wait;

	if (pthread_getaffinity_np(pthread_self(), sizeof(saved), &saved) != 0)
	{
		RT_CHECK(false, "cannot read the test's CPU affinity");
		return;
	}
	wait = busy_team_wait(true, &wall_us);
	pthread_setaffinity_np(pthread_self(), sizeof(saved), &saved);
	printf("team of 2 held to one CPU, 24 busy units: %.1f ms, waiting share %.3f\n",
		   wall_us / 1e3, wait);
	RT_CHECK(wait != -3.0, "cannot hold the team's threads to one CPU");
	RT_CHECK(wait >= CM_TEAM_STARVED_WAIT && wait <= 1.0,
			 "two threads taking turns on one CPU waited %.3f of their time (want %.2f..1)",
			 wait, CM_TEAM_STARVED_WAIT);
	wait = busy_team_wait(false, &wall_us);
	printf("team of 2 free to use the CPUs: %.1f ms, waiting share %.3f\n", wall_us / 1e3, wait);
	RT_CHECK(wait >= 0.0 && wait <= 1.0, "a team reported a waiting share of %.3f", wait);
}

/* The weight conversion rounds as torch's .to(torch.bfloat16) does. */
static void
check_conversions(void)
{
	static const struct
	{
		uint32_t	in;
		uint16_t	out;
	}			cases[] = {
		{0x3f800000u, 0x3f80},	/* 1 */
		{0x3f808000u, 0x3f80},	/* tie, even stays */
		{0x3f818000u, 0x3f82},	/* tie, odd rounds up */
		{0x3f808001u, 0x3f81},	/* above the tie */
		{0xbf80ffffu, 0xbf81},	/* negative rounds in magnitude */
		{0x7f7fffffu, 0x7f80},	/* the largest float rounds to infinity */
		{0x7f800000u, 0x7f80},	/* infinity */
		{0xff800000u, 0xff80},
		{0x7fc00000u, 0x7fc0},	/* NaN */
		{0x7f800001u, 0x7fc0},	/* signalling NaN turns quiet */
		{0x00000001u, 0x0000},	/* subnormal, rounded (not flushed) for weights */
		{0x00008000u, 0x0000},
		{0x00018000u, 0x0002},
	};
	int			wrong = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		float		f;
		uint16_t	h;

		memcpy(&f, &cases[i].in, 4);
		h = cm_bf16_from_f32(f);
		if (h != cases[i].out && !(cases[i].out == 0x7fc0 && (h & 0x7fc0) == 0x7fc0))
		{
			fprintf(stderr, "bf16 of 0x%08x: 0x%04x, expected 0x%04x\n", cases[i].in, h, cases[i].out);
			wrong++;
		}
		{
			float		a = cm_f32_from_bf16(cases[i].out),
						b = widen(cases[i].out);

			if (memcmp(&a, &b, 4) != 0)
				wrong++;
		}
	}
	RT_CHECK(wrong == 0, "bfloat16 conversion: %d cases wrong", wrong);
}

/*
 * Activations are rounded the same on every path, special values included
 * (subnormals flushed to signed zero, NaN kept NaN, ties to even), at every
 * length (vector bodies and tails).
 */
static void
check_round_x_special(cm_gemm_path path)
{
	static const uint32_t specials[] = {0x00000001u, 0x80000001u, 0x007fffffu, 0x00800000u,
		0x3f808000u, 0x3f818000u, 0x7f7fffffu, 0x7f800000u, 0xff800000u, 0x7fc00001u,
	0xffc00000u, 0x3f800000u, 0x80000000u};
	int			ns = (int) (sizeof(specials) / sizeof(specials[0]));
	float		x[71],
				out[71];
	int			wrong = 0;

	for (int len = 1; len <= 71; len += 7)
	{
		cm_mat		r;

		for (int i = 0; i < len; i++)
		{
			if (i % 3 == 0)
				memcpy(&x[i], &specials[(i / 3) % ns], 4);
			else
				x[i] = rand_float() * 100.0f;
		}
		r = cm_gemm_round_x(path, NULL, 1, len, x, (size_t) len, out);
		for (int i = 0; i < len; i++)
		{
			uint16_t	want = ref_round_activation(x[i]);
			uint16_t	got;

			if (r.type == CM_ELEM_BF16)
				got = ((const uint16_t *) r.p)[i];
			else
			{
				uint32_t	u;

				memcpy(&u, &((const float *) r.p)[i], 4);
				got = (uint16_t) (u >> 16);
				if ((u & 0xffffu) != 0)
					wrong++;
			}
			/* any quiet NaN of the same sign will do */
			if (got != want && !((want & 0x7fc0) == 0x7fc0 && (got & 0xffc0) == (want & 0xffc0)))
			{
				uint32_t	bits;

				memcpy(&bits, &x[i], 4);
				fprintf(stderr, "%s: round_x of 0x%08x gave 0x%04x, expected 0x%04x\n",
						cm_gemm_path_name(path), (unsigned) bits, got, want);
				wrong++;
			}
		}
	}
	RT_CHECK(wrong == 0, "%s: rounding x to bfloat16: %d wrong", cm_gemm_path_name(path), wrong);
}

static void
check_modes(const char *name)
{
	static const mode modes[] = {MODE_F32, MODE_WBF16, MODE_BF16, MODE_XBF16_WF32};

	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++)
	{
		current_mode = modes[m];
		check_path(name);
	}
	current_mode = MODE_F32;
}

static _Atomic int init_calls;

/* The second helper to initialise fails. */
static bool
refuse_second_init(void)
{
	return atomic_fetch_add(&init_calls, 1) != 1;
}

static bool
accept_init(void)
{
	atomic_fetch_add(&init_calls, 1);
	return true;
}

int
main(void)
{
	static const cm_gemm_path paths[] = {CM_GEMM_PORTABLE, CM_GEMM_AVX2, CM_GEMM_AVX512,
	CM_GEMM_AVX512_BF16};
	cm_team		two;

	check_conversions();
	check_team_advice();
	check_team_wait();
	for (size_t p = 0; p < sizeof(paths) / sizeof(paths[0]); p++)
	{
		if (!cm_gemm_path_supported(paths[p]))
		{
			printf("%s: not supported by this CPU\n", cm_gemm_path_name(paths[p]));
			continue;
		}
		current_path = paths[p];
		check_round_x_special(paths[p]);
		current_algo = CM_GEMM_IN_PLACE;
		check_modes(cm_gemm_path_name(paths[p]));
		check_empty(cm_gemm_path_name(paths[p]));
		if (paths[p] >= CM_GEMM_AVX512)
		{
			current_algo = CM_GEMM_PACKED;
			check_modes(cm_gemm_path_name(paths[p]));
			check_empty(cm_gemm_path_name(paths[p]));
		}
	}
	current_algo = CM_GEMM_AUTO;
	dispatching = true;
	printf("cm_gemm dispatches to %s\n", cm_gemm_path_name(cm_gemm_best_path()));
	check_modes("dispatch, 1 thread");
	check_empty("dispatch, 1 thread");

	RT_CHECK(cm_team_start(&two, 1, NULL) == 1, "a team of one thread started helpers");
	RT_CHECK(cm_team_start(&two, 4, refuse_second_init) == 1 && cm_team_threads(&two) == 1 &&
			 init_calls == 3,
			 "a team one of whose helpers failed to initialise started (%d inits)", init_calls);
	init_calls = 0;
	RT_CHECK(cm_team_start(&two, 3, accept_init) == 3 && init_calls == 2,
			 "a team whose helpers initialised did not start (%d inits)", init_calls);
	check_team_run(&two);
	cm_team_stop(&two);
	cm_team_stop(&two);			/* harmless when not started */
	cm_team_stop(NULL);
	check_team_run(NULL);
	check_team_run(&two);		/* not started: the caller alone */
	RT_CHECK(cm_team_start(&two, 2, NULL) == 2, "a team of two threads did not start");
	if (cm_team_threads(&two) == 2)
	{
		team = &two;
		check_modes("dispatch, team of 2");
		check_empty("dispatch, team of 2");
		dispatching = false;
		for (size_t p = 0; p < sizeof(paths) / sizeof(paths[0]); p++)
			if (cm_gemm_path_supported(paths[p]))
			{
				char		name[64];

				current_path = paths[p];
				snprintf(name, sizeof(name), "%s, team of 2", cm_gemm_path_name(paths[p]));
				for (int a = CM_GEMM_IN_PLACE; a <= (paths[p] >= CM_GEMM_AVX512 ? CM_GEMM_PACKED : CM_GEMM_IN_PLACE); a++)
				{
					current_algo = (cm_gemm_algo) a;
					current_mode = MODE_BF16;
					check_path(name);
					current_mode = MODE_F32;
					check_path(name);
				}
				current_algo = CM_GEMM_AUTO;
			}
		team = NULL;
		check_team_identical(&two, false);
		check_team_identical(&two, true);
		check_team_run(&two);
		cm_team_stop(&two);
	}
	{
		cm_team		four;

		RT_CHECK(cm_team_start(&four, 4, NULL) == 4, "a team of four threads did not start");
		check_team_run(&four);
		team = &four;
		dispatching = true;
		current_mode = MODE_BF16;
		check_path("dispatch, team of 4");
		team = NULL;
		cm_team_stop(&four);
	}
	return rt_summary("test_gemm");
}
