/*
 * test_kernels.c
 *	  The row-wise kernels (layer norm, activations, softmax) against a
 *	  double-precision reference, through the dispatching entry points (AVX2
 *	  where the CPU has it) and the portable versions, at every tail length.
 */
#include "kernels.h"
#include "runtime_test_util.h"

#include <stdint.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float
rand_float(float scale)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return scale * ((float) (rng >> 40) / (float) (1 << 24) * 2.0f - 1.0f);
}

static double
ref_act(double x, cm_activation act)
{
	switch (act)
	{
		case CM_ACT_QUICK_GELU:
			return x / (1.0 + exp(-1.702 * x));
		case CM_ACT_GELU:
			return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
		case CM_ACT_GELU_TANH:
			return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
	}
	return x;
}

typedef void (*act_fn) (float *x, size_t n, cm_activation act);
typedef void (*ln_fn) (const float *x, float *y, int rows, int d, const float *w, const float *b, float eps);
typedef void (*sm_fn) (float *s, int n, bool causal);

static void
check_activations(const char *path, act_fn fn)
{
	static const float extremes[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 50.0f, -50.0f, 100.0f, -100.0f,
	1e4f, -1e4f, 1e30f, -1e30f, 3.0f, -3.0f, 0.5f, -0.5f};
	float		x[80],
				y[80];

	for (int a = CM_ACT_QUICK_GELU; a <= CM_ACT_GELU_TANH; a++)
	{
		double		worst = 0;

		for (size_t n = 1; n <= 80; n++)
		{
			for (size_t i = 0; i < n; i++)
				x[i] = i < sizeof(extremes) / sizeof(extremes[0]) && n == 80 ? extremes[i] : rand_float(8.0f);
			memcpy(y, x, n * sizeof(float));
			fn(y, n, (cm_activation) a);
			for (size_t i = 0; i < n; i++)
			{
				double		r = ref_act(x[i], (cm_activation) a);
				double		e = fabs(y[i] - r) / (fabs(r) > 1 ? fabs(r) : 1);

				worst = e > worst ? e : worst;
				RT_CHECK(isfinite(y[i]) && e < 2e-6, "%s %s(%.9g) = %.9g, expected %.9g",
						 path, cm_activation_name((cm_activation) a), x[i], y[i], r);
			}
		}
		/* An element's result does not depend on its position (tail or not). */
		for (size_t i = 0; i < 80; i++)
			x[i] = rand_float(5.0f);
		memcpy(y, x, sizeof(y));
		fn(y, 80, (cm_activation) a);
		for (size_t n = 1; n < 80; n++)
		{
			float		t = x[n];

			fn(&t, 1, (cm_activation) a);
			RT_CHECK(t == y[n], "%s %s: element %zu alone differs", path, cm_activation_name((cm_activation) a), n);
		}
		printf("  %s %-18s worst relative error %.3g\n", path, cm_activation_name((cm_activation) a), worst);
	}
}

static void
check_layer_norm(const char *path, ln_fn fn)
{
	float		x[3 * 77],
				w[77],
				b[77],
				y[3 * 77];
	double		worst = 0;

	for (int d = 1; d <= 77; d++)
	{
		for (int i = 0; i < 3 * d; i++)
			x[i] = rand_float(4.0f) + (i < d ? 100.0f : 0.0f);	/* row 0: large mean */
		for (int i = 0; i < d; i++)
		{
			w[i] = rand_float(2.0f);
			b[i] = rand_float(1.0f);
		}
		fn(x, y, 3, d, w, b, 1e-5f);
		for (int r = 0; r < 3; r++)
		{
			double		mean = 0,
						var = 0;

			for (int i = 0; i < d; i++)
				mean += x[r * d + i];
			mean /= d;
			for (int i = 0; i < d; i++)
				var += (x[r * d + i] - mean) * (x[r * d + i] - mean);
			var /= d;
			for (int i = 0; i < d; i++)
			{
				double		ref = (x[r * d + i] - mean) / sqrt(var + 1e-5) * w[i] + b[i];
				double		e = fabs(y[r * d + i] - ref);

				worst = e > worst ? e : worst;
				RT_CHECK(e < 2e-4, "%s layer norm d=%d row %d [%d]: %.9g vs %.9g", path, d, r, i,
						 y[r * d + i], ref);
			}
		}
	}
	/* In place */
	memcpy(y, x, sizeof(float) * 2 * 77);
	fn(y, y, 2, 77, w, b, 1e-5f);
	fn(x, x + 2 * 77, 1, 77, w, b, 1e-5f);
	RT_CHECK(memcmp(y, x + 2 * 77, 77 * sizeof(float)) == 0, "%s layer norm in place", path);
	printf("  %s layer_norm         worst absolute error %.3g\n", path, worst);
}

static void
check_softmax(const char *path, sm_fn fn)
{
	float		s[40 * 40],
				in[40 * 40];
	double		worst = 0;

	for (int n = 1; n <= 40; n++)
		for (int causal = 0; causal <= 1; causal++)
		{
			for (int i = 0; i < n * n; i++)
				in[i] = rand_float(30.0f);
			memcpy(s, in, (size_t) n * n * sizeof(float));
			fn(s, n, causal);
			for (int i = 0; i < n; i++)
			{
				int			len = causal ? i + 1 : n;
				double		max = -INFINITY,
							sum = 0,
							total = 0;

				for (int j = 0; j < len; j++)
					max = in[i * n + j] > max ? in[i * n + j] : max;
				for (int j = 0; j < len; j++)
					sum += exp(in[i * n + j] - max);
				for (int j = 0; j < n; j++)
				{
					double		ref = j < len ? exp(in[i * n + j] - max) / sum : 0.0;
					double		e = fabs(s[i * n + j] - ref);

					total += s[i * n + j];
					worst = e > worst ? e : worst;
					RT_CHECK(e < 1e-6 && (j < len || s[i * n + j] == 0.0f),
							 "%s softmax n=%d causal=%d [%d][%d]: %.9g vs %.9g", path, n, causal, i, j,
							 s[i * n + j], ref);
				}
				RT_CHECK(fabs(total - 1.0) < 1e-5, "%s softmax row sum %.9g", path, total);
			}
		}
	printf("  %s softmax            worst absolute error %.3g\n", path, worst);
}

int
main(void)
{
	printf("  dispatch: %s\n", cm_kernels_use_avx2() ? "AVX2+FMA" : "portable");
	check_activations("dispatch", cm_apply_activation);
	check_activations("portable", cm_apply_activation_portable);
	check_layer_norm("dispatch", cm_layer_norm);
	check_layer_norm("portable", cm_layer_norm_portable);
	check_softmax("dispatch", cm_softmax_rows);
	check_softmax("portable", cm_softmax_rows_portable);
	return rt_summary("test_kernels");
}
