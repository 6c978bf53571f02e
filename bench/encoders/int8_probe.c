/*
 * int8_probe.c: would INT8 weights with AVX512-VNNI pay?  A probe, not a path of the runtime.
 *
 * Times the matrix products of the ViT-B/32 text tower's 12 layers (q, k, v, out: 512 x 512; fc1: 2048 x
 * 512; fc2: 512 x 2048; random weights, 151 MB in float32) for one 10-token caption (10 rows) and for 32
 * captions (320 rows), three ways on one thread:
 *   f32   the runtime's kernels (cm_gemm) on float32 weights;
 *   bf16  the runtime's kernels on bfloat16 weights and bfloat16-rounded x (vdpbf16ps);
 *   int8  a plain in-place VNNI kernel written here: weights int8 with a scale per output row, x rounded
 *         to unsigned 8 bits with a scale per row (offset 128), vpdpbusd into int32, 4 x rows by 4 W rows
 *         a block (no packing, no prefetch tuning: a lower bound of what INT8 could do).
 * Products run in turn, F32, BF16, INT8 interleaved per repeat, median reported, of the thread's CPU time
 * (on a shared machine it leaves out the time the thread waited; memory contention still counts) and of
 * the wall-clock time.
 *
 * Fidelity, per product: the cosine of each output row against a double-precision reference, worst over
 * the rows of the fc1 product (the cosine of one product; a 12-layer tower compounds such errors).
 *
 * Output: "RESULT key value" lines on stdout, notes on stderr.
 * usage: int8_probe [--repeats 7]
 */
#include "gemm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

#define LAYERS 12
#define D 512
#define FF 2048
#define N_PRODUCTS 6

typedef struct Product
{
	int			n,
				k;
	float	   *w32;			/* [n][k] */
	uint16_t   *w16;			/* [n][k] bfloat16 */
	int8_t	   *w8;				/* [n][k] */
	float	   *scale8;			/* [n] */
	int32_t    *sum8;			/* [n]: sum over k of w8, for the x offset */
} Product;

static const int shapes[N_PRODUCTS][2] = {{D, D}, {D, D}, {D, D}, {D, D}, {FF, D}, {D, FF}};

static double
seconds(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *
xmalloc(size_t n)
{
	void	   *p = aligned_alloc(64, (n + 63) / 64 * 64);

	if (p == NULL)
	{
		fprintf(stderr, "int8_probe: out of memory\n");
		exit(1);
	}
	return p;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

/* Roughly normal (sum of 4 uniforms), mean 0, standard deviation about sd. */
static float
randn(float sd)
{
	double		s = 0;

	for (int i = 0; i < 4; i++)
	{
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		s += (double) (rng >> 11) / 9007199254740992.0 - 0.5;
	}
	return (float) (s * sd * 1.732);
}

static void
make_product(Product *p, int n, int k)
{
	float		sd = 1.0f / sqrtf((float) k);

	p->n = n;
	p->k = k;
	p->w32 = xmalloc((size_t) n * k * sizeof(float));
	p->w16 = xmalloc((size_t) n * k * sizeof(uint16_t));
	p->w8 = xmalloc((size_t) n * k);
	p->scale8 = xmalloc((size_t) n * sizeof(float));
	p->sum8 = xmalloc((size_t) n * sizeof(int32_t));
	for (size_t i = 0; i < (size_t) n * k; i++)
	{
		p->w32[i] = randn(sd);
		p->w16[i] = cm_bf16_from_f32(p->w32[i]);
	}
	for (int r = 0; r < n; r++)
	{
		float		amax = 0;
		int32_t		s = 0;

		for (int c = 0; c < k; c++)
			amax = fmaxf(amax, fabsf(p->w32[(size_t) r * k + c]));
		p->scale8[r] = amax > 0 ? amax / 127.0f : 1.0f;
		for (int c = 0; c < k; c++)
		{
			int			q = (int) lrintf(p->w32[(size_t) r * k + c] / p->scale8[r]);

			p->w8[(size_t) r * k + c] = (int8_t) (q > 127 ? 127 : q < -127 ? -127 : q);
			s += p->w8[(size_t) r * k + c];
		}
		p->sum8[r] = s;
	}
}

/* x rows rounded to uint8 around 128 with a scale per row. */
static void
quantize_x(const float *x, int m, int k, uint8_t *xq, float *xs)
{
	for (int r = 0; r < m; r++)
	{
		float		amax = 0;

		for (int c = 0; c < k; c++)
			amax = fmaxf(amax, fabsf(x[(size_t) r * k + c]));
		xs[r] = amax > 0 ? amax / 127.0f : 1.0f;
		for (int c = 0; c < k; c++)
		{
			int			q = (int) lrintf(x[(size_t) r * k + c] / xs[r]);

			xq[(size_t) r * k + c] = (uint8_t) ((q > 127 ? 127 : q < -127 ? -127 : q) + 128);
		}
	}
}

#ifdef HAVE_X86
static bool
have_vnni(void)
{
	return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
}

/* y[m][n] = xs[m] * scale8[n] * (sum_k xq[m][k] w8[n][k] - 128 sum8[n]); k a multiple of 64. */
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void
gemm_int8(const Product *p, int m, const uint8_t *xq, const float *xs, float *y)
{
	int			k = p->k;

	for (int n0 = 0; n0 < p->n; n0 += 4)
		for (int m0 = 0; m0 < m; m0 += 4)
		{
			int			mr = m - m0 < 4 ? m - m0 : 4;
			__m512i		acc[4][4];

			for (int i = 0; i < 4; i++)
				for (int j = 0; j < 4; j++)
					acc[i][j] = _mm512_setzero_si512();
			for (int c = 0; c < k; c += 64)
			{
				__m512i		w[4];

				for (int j = 0; j < 4; j++)
					w[j] = _mm512_loadu_si512(p->w8 + (size_t) (n0 + j) * k + c);
				for (int i = 0; i < mr; i++)
				{
					__m512i		xv = _mm512_loadu_si512(xq + (size_t) (m0 + i) * k + c);

					for (int j = 0; j < 4; j++)
						acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], xv, w[j]);
				}
			}
			for (int i = 0; i < mr; i++)
				for (int j = 0; j < 4; j++)
				{
					int32_t		s = _mm512_reduce_add_epi32(acc[i][j]) - 128 * p->sum8[n0 + j];

					y[(size_t) (m0 + i) * p->n + n0 + j] = xs[m0 + i] * p->scale8[n0 + j] * (float) s;
				}
		}
}
#else
static bool
have_vnni(void)
{
	return false;
}

static void
gemm_int8(const Product *p, int m, const uint8_t *xq, const float *xs, float *y)
{
	(void) p, (void) m, (void) xq, (void) xs, (void) y;
}
#endif

static int
compare_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

/* Worst row cosine of y [m][n] against the double-precision x W^T. */
static double
worst_cosine(const Product *p, int m, const float *x, const float *y)
{
	double		worst = 1.0;

	for (int r = 0; r < m; r++)
	{
		double		dot = 0,
					nr = 0,
					ny = 0;

		for (int c = 0; c < p->n; c++)
		{
			double		ref = 0;

			for (int t = 0; t < p->k; t++)
				ref += (double) x[(size_t) r * p->k + t] * p->w32[(size_t) c * p->k + t];
			dot += ref * y[(size_t) r * p->n + c];
			nr += ref * ref;
			ny += (double) y[(size_t) r * p->n + c] * y[(size_t) r * p->n + c];
		}
		worst = fmin(worst, dot / sqrt(nr * ny));
	}
	return worst;
}

int
main(int argc, char **argv)
{
	static const int rows[] = {10, 320};
	static const char *const kinds[] = {"f32", "bf16", "int8"};
	int			repeats = 7;
	Product    *prods = xmalloc(sizeof(Product) * LAYERS * N_PRODUCTS);
	size_t		max_rows = 320;
	float	   *x = xmalloc(max_rows * FF * sizeof(float));
	float	   *xr = xmalloc(max_rows * FF * sizeof(float));
	uint8_t    *xq = xmalloc(max_rows * FF);
	float	   *xs = xmalloc(max_rows * sizeof(float));
	float	   *y = xmalloc(max_rows * FF * sizeof(float));
	cm_gemm_path path = cm_gemm_best_path();
	bool		vnni = have_vnni();

	if (argc == 3 && strcmp(argv[1], "--repeats") == 0)
		repeats = atoi(argv[2]);
	if (repeats < 1 || repeats > 99)
	{
		fprintf(stderr, "usage: int8_probe [--repeats 7]\n");
		return 2;
	}
	for (int l = 0; l < LAYERS; l++)
		for (int i = 0; i < N_PRODUCTS; i++)
			make_product(&prods[l * N_PRODUCTS + i], shapes[i][0], shapes[i][1]);
	for (size_t i = 0; i < max_rows * FF; i++)
		x[i] = randn(1.0f);
	printf("RESULT int8_path %s\n", cm_gemm_path_name(path));
	printf("RESULT int8_vnni %d\n", vnni ? 1 : 0);
	fprintf(stderr, "products on %s; AVX512-VNNI %s\n", cm_gemm_path_name(path), vnni ? "yes" : "no");

	for (size_t ri = 0; ri < sizeof(rows) / sizeof(rows[0]); ri++)
	{
		int			m = rows[ri];
		double		t[3][99],
					w[3][99];
		double		med[3],
					wmed[3];

		for (int rep = -1; rep < repeats; rep++)
			for (int kind = 0; kind < 3; kind++)
			{
				double		t0,
							w0;

				if (kind == 2 && !vnni)
					continue;
				t0 = seconds(CLOCK_THREAD_CPUTIME_ID);
				w0 = seconds(CLOCK_MONOTONIC);
				for (int q = 0; q < LAYERS * N_PRODUCTS; q++)
				{
					Product    *p = &prods[q];

					/* x is rounded (or quantized) per product, as the runtime does */
					if (kind == 0)
						cm_gemm(NULL, CM_GEMM_AUTO, m, p->n, p->k, cm_mat_f32(x, (size_t) p->k),
								cm_mat_f32(p->w32, (size_t) p->k), NULL, y, (size_t) p->n, false);
					else if (kind == 1)
					{
						cm_mat		xm = cm_gemm_round_x(path, NULL, m, p->k, x, (size_t) p->k, xr);
						cm_mat		wm = {p->w16, (size_t) p->k, CM_ELEM_BF16};

						cm_gemm(NULL, CM_GEMM_AUTO, m, p->n, p->k, xm, wm, NULL, y, (size_t) p->n, false);
					}
					else
					{
						quantize_x(x, m, p->k, xq, xs);
						gemm_int8(p, m, xq, xs, y);
					}
				}
				if (rep >= 0)
				{
					t[kind][rep] = seconds(CLOCK_THREAD_CPUTIME_ID) - t0;
					w[kind][rep] = seconds(CLOCK_MONOTONIC) - w0;
				}
			}
		for (int kind = 0; kind < 3; kind++)
		{
			if (kind == 2 && !vnni)
				continue;
			qsort(t[kind], (size_t) repeats, sizeof(double), compare_double);
			qsort(w[kind], (size_t) repeats, sizeof(double), compare_double);
			med[kind] = t[kind][repeats / 2];
			wmed[kind] = w[kind][repeats / 2];
			printf("RESULT int8_probe_m%d_%s_cpu_ms %.3f\n", m, kinds[kind], med[kind] * 1e3);
			printf("RESULT int8_probe_m%d_%s_wall_ms %.3f\n", m, kinds[kind], wmed[kind] * 1e3);
		}
		fprintf(stderr, "text tower's 72 products, %3d rows, 1 thread, CPU (wall) ms: F32 %.2f (%.2f), "
				"BF16 %.2f (%.2f)", m, med[0] * 1e3, wmed[0] * 1e3, med[1] * 1e3, wmed[1] * 1e3);
		if (vnni)
			fprintf(stderr, ", INT8 %.2f (%.2f)", med[2] * 1e3, wmed[2] * 1e3);
		fprintf(stderr, " (median of %d, interleaved)\n", repeats);
	}

	/* fidelity of one fc1 product (10 rows) */
	{
		Product    *p = &prods[4];
		int			m = 10;
		double		c[3] = {0, 0, 0};

		cm_gemm(NULL, CM_GEMM_AUTO, m, p->n, p->k, cm_mat_f32(x, (size_t) p->k),
				cm_mat_f32(p->w32, (size_t) p->k), NULL, y, (size_t) p->n, false);
		c[0] = worst_cosine(p, m, x, y);
		{
			cm_mat		xm = cm_gemm_round_x(path, NULL, m, p->k, x, (size_t) p->k, xr);
			cm_mat		wm = {p->w16, (size_t) p->k, CM_ELEM_BF16};

			cm_gemm(NULL, CM_GEMM_AUTO, m, p->n, p->k, xm, wm, NULL, y, (size_t) p->n, false);
			c[1] = worst_cosine(p, m, x, y);
		}
		if (vnni)
		{
			quantize_x(x, m, p->k, xq, xs);
			gemm_int8(p, m, xq, xs, y);
			c[2] = worst_cosine(p, m, x, y);
		}
		for (int kind = 0; kind < 3; kind++)
			if (kind < 2 || vnni)
				printf("RESULT int8_probe_fc1_cos_%s %.7f\n", kinds[kind], c[kind]);
		fprintf(stderr, "one fc1 product (10 x 512 -> 2048), worst row cosine to double: F32 %.7f, BF16 %.7f",
				c[0], c[1]);
		if (vnni)
			fprintf(stderr, ", INT8 %.7f", c[2]);
		fprintf(stderr, "\n");
	}
	return 0;
}
