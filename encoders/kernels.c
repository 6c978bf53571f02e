/*
 * kernels.c
 *	  Layer norm, activations (quick_gelu, exact gelu, tanh gelu) and softmax:
 *	  portable C, and AVX2/FMA versions selected per call from the CPU's
 *	  feature bits (no global state of our own).
 *
 * The AVX2 exp is Cephes' expf (Cody-Waite reduction, degree-5 polynomial,
 * about 1 ulp); erf is Abramowitz & Stegun 7.1.26 (absolute error below
 * 1.5e-7, i.e. float rounding level for GELU).  Tails shorter than 8 lanes
 * go through the same vector code on a padded copy, so an element's result
 * never depends on where it sits in the array.
 */
#include "kernels.h"

#include "gemm.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define CM_HAVE_AVX2_KERNELS 1
#include <immintrin.h>
#endif

/* ---- portable versions ---- */

static void
layer_norm_portable(const float *x, float *y, int rows, int d, const float *w, const float *b,
					float eps)
{
	for (int r = 0; r < rows; r++)
	{
		const float *xr = x + (size_t) r * d;
		float	   *yr = y + (size_t) r * d;
		float		mean = 0.0f,
					var = 0.0f,
					inv;

		for (int i = 0; i < d; i++)
			mean += xr[i];
		mean /= (float) d;
		for (int i = 0; i < d; i++)
		{
			float		c = xr[i] - mean;

			var += c * c;
		}
		var /= (float) d;
		inv = 1.0f / sqrtf(var + eps);
		for (int i = 0; i < d; i++)
			yr[i] = fmaf((xr[i] - mean) * inv, w[i], b[i]);
	}
}

static void
activation_portable(float *x, size_t n, cm_activation act)
{
	switch (act)
	{
		case CM_ACT_QUICK_GELU:
			for (size_t i = 0; i < n; i++)
				x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
			break;
		case CM_ACT_GELU:
			for (size_t i = 0; i < n; i++)
				x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float) M_SQRT1_2));
			break;
		case CM_ACT_GELU_TANH:
			for (size_t i = 0; i < n; i++)
			{
				float		v = x[i];

				x[i] = 0.5f * v * (1.0f + tanhf(0.7978845608f * (v + 0.044715f * v * v * v)));
			}
			break;
	}
}

static void
softmax_rows_portable(float *s, int rows, int n, bool causal)
{
	for (int i = 0; i < rows; i++)
	{
		float	   *row = s + (size_t) i * n;
		int			len = causal ? i + 1 : n;
		float		max = row[0],
					sum = 0.0f,
					inv;

		for (int j = 1; j < len; j++)
			max = row[j] > max ? row[j] : max;
		for (int j = 0; j < len; j++)
		{
			row[j] = expf(row[j] - max);
			sum += row[j];
		}
		inv = 1.0f / sum;
		for (int j = 0; j < len; j++)
			row[j] *= inv;
		for (int j = len; j < n; j++)
			row[j] = 0.0f;
	}
}

/* ---- AVX2 + FMA versions ---- */

#ifdef CM_HAVE_AVX2_KERNELS
#define AVX2 __attribute__((target("avx2,fma")))

static inline AVX2 __m256
exp256(__m256 x)
{
	__m256		n,
				r,
				z,
				y;
	__m256i		e;

	x = _mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f));
	x = _mm256_max_ps(x, _mm256_set1_ps(-87.3365447505531f));
	n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
						_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
	r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
	z = _mm256_mul_ps(r, r);
	y = _mm256_set1_ps(1.9875691500e-4f);
	y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
	y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
	y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
	y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
	y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
	y = _mm256_fmadd_ps(y, z, r);
	y = _mm256_add_ps(y, _mm256_set1_ps(1.0f));
	e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
	return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

/* erf for x >= 0 (A&S 7.1.26). */
static inline AVX2 __m256
erf_abs256(__m256 a)
{
	__m256		t = _mm256_div_ps(_mm256_set1_ps(1.0f),
								  _mm256_fmadd_ps(a, _mm256_set1_ps(0.3275911f), _mm256_set1_ps(1.0f)));
	__m256		p = _mm256_set1_ps(1.061405429f);

	p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
	p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
	p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
	p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
	p = _mm256_mul_ps(p, t);
	return _mm256_fnmadd_ps(p, exp256(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(a, a))),
							_mm256_set1_ps(1.0f));
}

static inline AVX2 __m256
act256(__m256 v, cm_activation act)
{
	const __m256 one = _mm256_set1_ps(1.0f);
	const __m256 half = _mm256_set1_ps(0.5f);

	switch (act)
	{
		case CM_ACT_QUICK_GELU:
			return _mm256_div_ps(v, _mm256_add_ps(one, exp256(_mm256_mul_ps(v, _mm256_set1_ps(-1.702f)))));
		case CM_ACT_GELU:
			{
				__m256		u = _mm256_mul_ps(v, _mm256_set1_ps((float) M_SQRT1_2));
				__m256		sign = _mm256_and_ps(u, _mm256_set1_ps(-0.0f));
				__m256		erf = _mm256_or_ps(erf_abs256(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), u)), sign);

				return _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, erf));
			}
		case CM_ACT_GELU_TANH:
			{
				__m256		v3 = _mm256_mul_ps(_mm256_mul_ps(v, v), v);
				__m256		y = _mm256_mul_ps(_mm256_set1_ps(0.7978845608f),
											  _mm256_fmadd_ps(v3, _mm256_set1_ps(0.044715f), v));
				/* tanh(y) = 1 - 2 / (1 + exp(2y)) */
				__m256		e = exp256(_mm256_add_ps(y, y));
				__m256		th = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(one, e)));

				return _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, th));
			}
	}
	return v;
}

static AVX2 void
activation_avx2(float *x, size_t n, cm_activation act)
{
	size_t		i = 0;

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(x + i, act256(_mm256_loadu_ps(x + i), act));
	if (i < n)
	{
		float		tail[8] = {0};

		memcpy(tail, x + i, (n - i) * sizeof(float));
		_mm256_storeu_ps(tail, act256(_mm256_loadu_ps(tail), act));
		memcpy(x + i, tail, (n - i) * sizeof(float));
	}
}

static inline AVX2 float
hsum256(__m256 v)
{
	__m128		s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));

	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

static inline AVX2 float
hmax256(__m256 v)
{
	__m128		s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));

	s = _mm_max_ps(s, _mm_movehl_ps(s, s));
	s = _mm_max_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

static AVX2 void
layer_norm_avx2(const float *x, float *y, int rows, int d, const float *w, const float *b,
				float eps)
{
	for (int r = 0; r < rows; r++)
	{
		const float *xr = x + (size_t) r * d;
		float	   *yr = y + (size_t) r * d;
		__m256		acc = _mm256_setzero_ps();
		__m256		vmean,
					vinv;
		float		mean,
					var,
					inv;
		int			i;

		for (i = 0; i + 8 <= d; i += 8)
			acc = _mm256_add_ps(acc, _mm256_loadu_ps(xr + i));
		mean = hsum256(acc);
		for (; i < d; i++)
			mean += xr[i];
		mean /= (float) d;
		vmean = _mm256_set1_ps(mean);
		acc = _mm256_setzero_ps();
		for (i = 0; i + 8 <= d; i += 8)
		{
			__m256		c = _mm256_sub_ps(_mm256_loadu_ps(xr + i), vmean);

			acc = _mm256_fmadd_ps(c, c, acc);
		}
		var = hsum256(acc);
		for (; i < d; i++)
			var += (xr[i] - mean) * (xr[i] - mean);
		var /= (float) d;
		inv = 1.0f / sqrtf(var + eps);
		vinv = _mm256_set1_ps(inv);
		for (i = 0; i + 8 <= d; i += 8)
		{
			__m256		t = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + i), vmean), vinv);

			_mm256_storeu_ps(yr + i, _mm256_fmadd_ps(t, _mm256_loadu_ps(w + i), _mm256_loadu_ps(b + i)));
		}
		for (; i < d; i++)
			yr[i] = fmaf((xr[i] - mean) * inv, w[i], b[i]);
	}
}

static AVX2 void
softmax_rows_avx2(float *s, int rows, int n, bool causal)
{
	for (int i = 0; i < rows; i++)
	{
		float	   *row = s + (size_t) i * n;
		int			len = causal ? i + 1 : n;
		__m256		vmax = _mm256_set1_ps(-INFINITY);
		__m256		acc = _mm256_setzero_ps();
		float		max,
					sum,
					inv;
		int			j;

		for (j = 0; j + 8 <= len; j += 8)
			vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(row + j));
		max = hmax256(vmax);
		for (; j < len; j++)
			max = row[j] > max ? row[j] : max;
		vmax = _mm256_set1_ps(max);
		for (j = 0; j + 8 <= len; j += 8)
		{
			__m256		e = exp256(_mm256_sub_ps(_mm256_loadu_ps(row + j), vmax));

			_mm256_storeu_ps(row + j, e);
			acc = _mm256_add_ps(acc, e);
		}
		sum = hsum256(acc);
		if (j < len)
		{
			/* padding lanes hold max (exp 1) and are dropped */
			float		tail[8];

			for (int k = 0; k < 8; k++)
				tail[k] = j + k < len ? row[j + k] : max;
			_mm256_storeu_ps(tail, exp256(_mm256_sub_ps(_mm256_loadu_ps(tail), vmax)));
			for (int k = 0; j + k < len; k++)
			{
				row[j + k] = tail[k];
				sum += tail[k];
			}
		}
		inv = 1.0f / sum;
		{
			__m256		vinv = _mm256_set1_ps(inv);

			for (j = 0; j + 8 <= len; j += 8)
				_mm256_storeu_ps(row + j, _mm256_mul_ps(_mm256_loadu_ps(row + j), vinv));
			for (; j < len; j++)
				row[j] *= inv;
		}
		for (j = len; j < n; j++)
			row[j] = 0.0f;
	}
}
#endif							/* CM_HAVE_AVX2_KERNELS */

/* ---- dispatch ---- */

bool
cm_kernels_use_avx2(void)
{
#ifdef CM_HAVE_AVX2_KERNELS
	/* the CPU's support and CROSSMODAL_MAX_ISA's cap */
	return cm_gemm_best_path() >= CM_GEMM_AVX2;
#else
	return false;
#endif
}

void
cm_layer_norm(const float *x, float *y, int rows, int d, const float *w, const float *b, float eps)
{
#ifdef CM_HAVE_AVX2_KERNELS
	if (cm_kernels_use_avx2())
	{
		layer_norm_avx2(x, y, rows, d, w, b, eps);
		return;
	}
#endif
	layer_norm_portable(x, y, rows, d, w, b, eps);
}

void
cm_apply_activation(float *x, size_t n, cm_activation act)
{
#ifdef CM_HAVE_AVX2_KERNELS
	if (cm_kernels_use_avx2())
	{
		activation_avx2(x, n, act);
		return;
	}
#endif
	activation_portable(x, n, act);
}

void
cm_softmax_rows(float *s, int n, bool causal)
{
#ifdef CM_HAVE_AVX2_KERNELS
	if (cm_kernels_use_avx2())
	{
		softmax_rows_avx2(s, n, n, causal);
		return;
	}
#endif
	softmax_rows_portable(s, n, n, causal);
}

void
cm_softmax(float *s, int rows, int cols)
{
#ifdef CM_HAVE_AVX2_KERNELS
	if (cm_kernels_use_avx2())
	{
		softmax_rows_avx2(s, rows, cols, false);
		return;
	}
#endif
	softmax_rows_portable(s, rows, cols, false);
}

void
cm_layer_norm_portable(const float *x, float *y, int rows, int d, const float *w, const float *b,
					   float eps)
{
	layer_norm_portable(x, y, rows, d, w, b, eps);
}

void
cm_apply_activation_portable(float *x, size_t n, cm_activation act)
{
	activation_portable(x, n, act);
}

void
cm_softmax_rows_portable(float *s, int n, bool causal)
{
	softmax_rows_portable(s, n, n, causal);
}
