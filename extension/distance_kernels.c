/*
 * distance_kernels.c
 *	  Distance kernels over float arrays: portable C and AVX2+FMA, chosen at run time.
 *
 * Plain C with no PostgreSQL headers (see distance_kernels.h).  The AVX2
 * kernels are compiled with a per-function target attribute, so the file as a
 * whole is built for the base ISA and a build runs on any x86-64; they are
 * only handed out after __builtin_cpu_supports confirms AVX2 and FMA.
 */
#include "distance_kernels.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

/*
 * Portable kernels.  Eight independent accumulators shorten the dependency
 * chain of the float additions (the compiler may not reassociate them
 * itself) and let it map the body onto whatever SIMD the base ISA has.
 */
#define PORTABLE_LANES 8

static float
portable_inner_product(const float *a, const float *b, int n)
{
	float		acc[PORTABLE_LANES] = {0};
	float		sum = 0.0f;
	int			i = 0;

	for (; i + PORTABLE_LANES <= n; i += PORTABLE_LANES)
		for (int k = 0; k < PORTABLE_LANES; k++)
			acc[k] += a[i + k] * b[i + k];
	for (int k = 0; k < PORTABLE_LANES; k++)
		sum += acc[k];
	for (; i < n; i++)
		sum += a[i] * b[i];
	return sum;
}

static float
portable_l2_squared(const float *a, const float *b, int n)
{
	float		acc[PORTABLE_LANES] = {0};
	float		sum = 0.0f;
	int			i = 0;

	for (; i + PORTABLE_LANES <= n; i += PORTABLE_LANES)
		for (int k = 0; k < PORTABLE_LANES; k++)
		{
			float		d = a[i + k] - b[i + k];

			acc[k] += d * d;
		}
	for (int k = 0; k < PORTABLE_LANES; k++)
		sum += acc[k];
	for (; i < n; i++)
	{
		float		d = a[i] - b[i];

		sum += d * d;
	}
	return sum;
}

static float
portable_l1(const float *a, const float *b, int n)
{
	float		acc[PORTABLE_LANES] = {0};
	float		sum = 0.0f;
	int			i = 0;

	for (; i + PORTABLE_LANES <= n; i += PORTABLE_LANES)
		for (int k = 0; k < PORTABLE_LANES; k++)
			acc[k] += fabsf(a[i + k] - b[i + k]);
	for (int k = 0; k < PORTABLE_LANES; k++)
		sum += acc[k];
	for (; i < n; i++)
		sum += fabsf(a[i] - b[i]);
	return sum;
}

static void
portable_cosine_parts(const float *a, const float *b, int n,
					  float *dot, float *norm_a2, float *norm_b2)
{
	float		ab[PORTABLE_LANES] = {0};
	float		aa[PORTABLE_LANES] = {0};
	float		bb[PORTABLE_LANES] = {0};
	float		sab = 0.0f,
				saa = 0.0f,
				sbb = 0.0f;
	int			i = 0;

	for (; i + PORTABLE_LANES <= n; i += PORTABLE_LANES)
		for (int k = 0; k < PORTABLE_LANES; k++)
		{
			ab[k] += a[i + k] * b[i + k];
			aa[k] += a[i + k] * a[i + k];
			bb[k] += b[i + k] * b[i + k];
		}
	for (int k = 0; k < PORTABLE_LANES; k++)
	{
		sab += ab[k];
		saa += aa[k];
		sbb += bb[k];
	}
	for (; i < n; i++)
	{
		sab += a[i] * b[i];
		saa += a[i] * a[i];
		sbb += b[i] * b[i];
	}
	*dot = sab;
	*norm_a2 = saa;
	*norm_b2 = sbb;
}


/* ---------- compact forms ---------- */

float
HalfToFloat(uint16_t h)
{
	uint32_t	sign = (uint32_t) (h & 0x8000) << 16;
	uint32_t	exponent = (h >> 10) & 0x1f;
	uint32_t	mantissa = h & 0x3ff;
	uint32_t	bits;
	float		f;

	if (exponent == 0x1f)		/* infinity or NaN */
		bits = sign | 0x7f800000 | (mantissa << 13);
	else if (exponent != 0)		/* normal */
		bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
	else if (mantissa == 0)		/* zero */
		bits = sign;
	else
	{
		/* subnormal: normalise the mantissa */
		exponent = 113;
		while (!(mantissa & 0x400))
		{
			mantissa <<= 1;
			exponent--;
		}
		bits = sign | (exponent << 23) | ((mantissa & 0x3ff) << 13);
	}
	memcpy(&f, &bits, sizeof(f));
	return f;
}

uint16_t
FloatToHalf(float f)
{
	uint32_t	bits;
	uint32_t	sign;
	int32_t		exponent;
	uint32_t	mantissa;

	memcpy(&bits, &f, sizeof(bits));
	sign = (bits >> 16) & 0x8000;
	exponent = (int32_t) ((bits >> 23) & 0xff) - 127 + 15;
	mantissa = bits & 0x7fffff;
	if (((bits >> 23) & 0xff) == 0xff)	/* infinity or NaN */
		return (uint16_t) (sign | 0x7c00 | (mantissa ? 0x200 : 0));
	if (exponent >= 0x1f)		/* too large: infinity */
		return (uint16_t) (sign | 0x7c00);
	if (exponent <= 0)
	{
		/* subnormal half (or zero): shift the mantissa, with its implicit 1 */
		uint32_t	shift;
		uint32_t	m;
		uint32_t	half;
		uint32_t	rest;

		if (exponent < -10)
			return (uint16_t) sign;
		m = mantissa | 0x800000;
		shift = (uint32_t) (14 - exponent);
		half = m >> shift;
		rest = m & ((1u << shift) - 1);
		if (rest > (1u << (shift - 1)) || (rest == (1u << (shift - 1)) && (half & 1)))
			half++;
		return (uint16_t) (sign | half);
	}
	{
		uint32_t	half = sign | ((uint32_t) exponent << 10) | (mantissa >> 13);
		uint32_t	rest = mantissa & 0x1fff;

		/* round to nearest even; a carry into the exponent is right, up to infinity */
		if (rest > 0x1000 || (rest == 0x1000 && (half & 1)))
			half++;
		return (uint16_t) half;
	}
}

static float
portable_inner_product_f16(const float *a, const uint16_t *b, int n)
{
	float		acc[PORTABLE_LANES] = {0};
	float		sum = 0.0f;
	int			i = 0;

	for (; i + PORTABLE_LANES <= n; i += PORTABLE_LANES)
		for (int k = 0; k < PORTABLE_LANES; k++)
			acc[k] += a[i + k] * HalfToFloat(b[i + k]);
	for (int k = 0; k < PORTABLE_LANES; k++)
		sum += acc[k];
	for (; i < n; i++)
		sum += a[i] * HalfToFloat(b[i]);
	return sum;
}

static float
portable_l2_squared_f16(const float *a, const uint16_t *b, int n)
{
	float		acc[PORTABLE_LANES] = {0};
	float		sum = 0.0f;
	int			i = 0;

	for (; i + PORTABLE_LANES <= n; i += PORTABLE_LANES)
		for (int k = 0; k < PORTABLE_LANES; k++)
		{
			float		d = a[i + k] - HalfToFloat(b[i + k]);

			acc[k] += d * d;
		}
	for (int k = 0; k < PORTABLE_LANES; k++)
		sum += acc[k];
	for (; i < n; i++)
	{
		float		d = a[i] - HalfToFloat(b[i]);

		sum += d * d;
	}
	return sum;
}

static float
portable_inner_product_i8(const float *a, const int8_t *b, int n)
{
	float		acc[PORTABLE_LANES] = {0};
	float		sum = 0.0f;
	int			i = 0;

	for (; i + PORTABLE_LANES <= n; i += PORTABLE_LANES)
		for (int k = 0; k < PORTABLE_LANES; k++)
			acc[k] += a[i + k] * (float) b[i + k];
	for (int k = 0; k < PORTABLE_LANES; k++)
		sum += acc[k];
	for (; i < n; i++)
		sum += a[i] * (float) b[i];
	return sum;
}

static float
portable_masked_sum(const float *a, const uint8_t *bits, int n)
{
	float		acc[PORTABLE_LANES] = {0};
	float		sum = 0.0f;
	int			i = 0;

	/* each lane adds its a[i] when its bit is set */
	for (; i + PORTABLE_LANES <= n; i += PORTABLE_LANES)
	{
		unsigned	byte = bits[i / 8];

		for (int k = 0; k < PORTABLE_LANES; k++)
			acc[k] += ((byte >> k) & 1) ? a[i + k] : 0.0f;
	}
	for (int k = 0; k < PORTABLE_LANES; k++)
		sum += acc[k];
	for (; i < n; i++)
		sum += ((bits[i / 8] >> (i % 8)) & 1) ? a[i] : 0.0f;
	return sum;
}

static int32_t
portable_dot_i8(const int8_t *a, const int8_t *b, int n)
{
	int32_t		sum = 0;

	for (int i = 0; i < n; i++)
		sum += (int32_t) a[i] * b[i];
	return sum;
}

static const DistanceKernels portable_kernels = {
	"portable",
	portable_inner_product,
	portable_l2_squared,
	portable_l1,
	portable_cosine_parts,
	portable_inner_product_f16,
	portable_l2_squared_f16,
	portable_inner_product_i8,
	portable_masked_sum,
	portable_dot_i8,
};

const DistanceKernels *
DistanceKernelsPortable(void)
{
	return &portable_kernels;
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define HAVE_AVX2_KERNELS 1
#endif

#ifdef HAVE_AVX2_KERNELS
#include <cpuid.h>
#include <immintrin.h>

/* F16C, from CPUID leaf 1 (ECX bit 29): not every compiler's __builtin_cpu_supports knows it. */
static int
cpu_has_f16c(void)
{
	unsigned int eax,
				ebx,
				ecx,
				edx;

	return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
}

#define AVX2_TARGET __attribute__((target("avx2,fma")))

/* Sum of the eight lanes. */
AVX2_TARGET static inline float
avx2_horizontal_sum(__m256 v)
{
	__m128		s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));

	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/*
 * Each kernel runs four 8-lane accumulators over blocks of 32 elements (FMA
 * latency is 4 cycles, so four chains keep both FMA ports busy), then single
 * 8-element steps, then a scalar tail for the last n % 8 elements.
 */
AVX2_TARGET static float
avx2_inner_product(const float *a, const float *b, int n)
{
	__m256		s0 = _mm256_setzero_ps(),
				s1 = _mm256_setzero_ps(),
				s2 = _mm256_setzero_ps(),
				s3 = _mm256_setzero_ps();
	float		sum;
	int			i = 0;

	for (; i + 32 <= n; i += 32)
	{
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
		s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
		s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
	sum = avx2_horizontal_sum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
	for (; i < n; i++)
		sum += a[i] * b[i];
	return sum;
}

AVX2_TARGET static float
avx2_l2_squared(const float *a, const float *b, int n)
{
	__m256		s0 = _mm256_setzero_ps(),
				s1 = _mm256_setzero_ps(),
				s2 = _mm256_setzero_ps(),
				s3 = _mm256_setzero_ps();
	float		sum;
	int			i = 0;

	for (; i + 32 <= n; i += 32)
	{
		__m256		d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
		__m256		d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
		__m256		d2 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16));
		__m256		d3 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24));

		s0 = _mm256_fmadd_ps(d0, d0, s0);
		s1 = _mm256_fmadd_ps(d1, d1, s1);
		s2 = _mm256_fmadd_ps(d2, d2, s2);
		s3 = _mm256_fmadd_ps(d3, d3, s3);
	}
	for (; i + 8 <= n; i += 8)
	{
		__m256		d = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));

		s0 = _mm256_fmadd_ps(d, d, s0);
	}
	sum = avx2_horizontal_sum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
	for (; i < n; i++)
	{
		float		d = a[i] - b[i];

		sum += d * d;
	}
	return sum;
}

AVX2_TARGET static float
avx2_l1(const float *a, const float *b, int n)
{
	const __m256 sign = _mm256_set1_ps(-0.0f);
	__m256		s0 = _mm256_setzero_ps(),
				s1 = _mm256_setzero_ps(),
				s2 = _mm256_setzero_ps(),
				s3 = _mm256_setzero_ps();
	float		sum;
	int			i = 0;

	for (; i + 32 <= n; i += 32)
	{
		s0 = _mm256_add_ps(s0, _mm256_andnot_ps(sign, _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i))));
		s1 = _mm256_add_ps(s1, _mm256_andnot_ps(sign, _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8))));
		s2 = _mm256_add_ps(s2, _mm256_andnot_ps(sign, _mm256_sub_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16))));
		s3 = _mm256_add_ps(s3, _mm256_andnot_ps(sign, _mm256_sub_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24))));
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_add_ps(s0, _mm256_andnot_ps(sign, _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i))));
	sum = avx2_horizontal_sum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
	for (; i < n; i++)
		sum += fabsf(a[i] - b[i]);
	return sum;
}

AVX2_TARGET static void
avx2_cosine_parts(const float *a, const float *b, int n,
				  float *dot, float *norm_a2, float *norm_b2)
{
	/* Two blocks of 8 per step: three sums each, six chains in flight. */
	__m256		ab0 = _mm256_setzero_ps(),
				ab1 = _mm256_setzero_ps(),
				aa0 = _mm256_setzero_ps(),
				aa1 = _mm256_setzero_ps(),
				bb0 = _mm256_setzero_ps(),
				bb1 = _mm256_setzero_ps();
	float		sab,
				saa,
				sbb;
	int			i = 0;

	for (; i + 16 <= n; i += 16)
	{
		__m256		a0 = _mm256_loadu_ps(a + i);
		__m256		b0 = _mm256_loadu_ps(b + i);
		__m256		a1 = _mm256_loadu_ps(a + i + 8);
		__m256		b1 = _mm256_loadu_ps(b + i + 8);

		ab0 = _mm256_fmadd_ps(a0, b0, ab0);
		aa0 = _mm256_fmadd_ps(a0, a0, aa0);
		bb0 = _mm256_fmadd_ps(b0, b0, bb0);
		ab1 = _mm256_fmadd_ps(a1, b1, ab1);
		aa1 = _mm256_fmadd_ps(a1, a1, aa1);
		bb1 = _mm256_fmadd_ps(b1, b1, bb1);
	}
	for (; i + 8 <= n; i += 8)
	{
		__m256		a0 = _mm256_loadu_ps(a + i);
		__m256		b0 = _mm256_loadu_ps(b + i);

		ab0 = _mm256_fmadd_ps(a0, b0, ab0);
		aa0 = _mm256_fmadd_ps(a0, a0, aa0);
		bb0 = _mm256_fmadd_ps(b0, b0, bb0);
	}
	sab = avx2_horizontal_sum(_mm256_add_ps(ab0, ab1));
	saa = avx2_horizontal_sum(_mm256_add_ps(aa0, aa1));
	sbb = avx2_horizontal_sum(_mm256_add_ps(bb0, bb1));
	for (; i < n; i++)
	{
		sab += a[i] * b[i];
		saa += a[i] * a[i];
		sbb += b[i] * b[i];
	}
	*dot = sab;
	*norm_a2 = saa;
	*norm_b2 = sbb;
}


/* ---------- compact forms ---------- */

#define AVX2_F16C_TARGET __attribute__((target("avx2,fma,f16c")))

AVX2_F16C_TARGET static float
avx2_inner_product_f16(const float *a, const uint16_t *b, int n)
{
	__m256		s0 = _mm256_setzero_ps(),
				s1 = _mm256_setzero_ps(),
				s2 = _mm256_setzero_ps(),
				s3 = _mm256_setzero_ps();
	float		sum;
	int			i = 0;

	for (; i + 32 <= n; i += 32)
	{
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (b + i))), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (b + i + 8))), s1);
		s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (b + i + 16))), s2);
		s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (b + i + 24))), s3);
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (b + i))), s0);
	sum = avx2_horizontal_sum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
	for (; i < n; i++)
		sum += a[i] * HalfToFloat(b[i]);
	return sum;
}

AVX2_F16C_TARGET static float
avx2_l2_squared_f16(const float *a, const uint16_t *b, int n)
{
	__m256		s0 = _mm256_setzero_ps(),
				s1 = _mm256_setzero_ps(),
				s2 = _mm256_setzero_ps(),
				s3 = _mm256_setzero_ps();
	float		sum;
	int			i = 0;

	for (; i + 32 <= n; i += 32)
	{
		__m256		d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (b + i))));
		__m256		d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (b + i + 8))));
		__m256		d2 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 16), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (b + i + 16))));
		__m256		d3 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 24), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (b + i + 24))));

		s0 = _mm256_fmadd_ps(d0, d0, s0);
		s1 = _mm256_fmadd_ps(d1, d1, s1);
		s2 = _mm256_fmadd_ps(d2, d2, s2);
		s3 = _mm256_fmadd_ps(d3, d3, s3);
	}
	for (; i + 8 <= n; i += 8)
	{
		__m256		d = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (b + i))));

		s0 = _mm256_fmadd_ps(d, d, s0);
	}
	sum = avx2_horizontal_sum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
	for (; i < n; i++)
	{
		float		d = a[i] - HalfToFloat(b[i]);

		sum += d * d;
	}
	return sum;
}

/* Eight int8 values (from the low 64 bits of v) as floats. */
AVX2_TARGET static inline __m256
avx2_i8_to_ps(__m128i v)
{
	return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
}

AVX2_TARGET static float
avx2_inner_product_i8(const float *a, const int8_t *b, int n)
{
	__m256		s0 = _mm256_setzero_ps(),
				s1 = _mm256_setzero_ps(),
				s2 = _mm256_setzero_ps(),
				s3 = _mm256_setzero_ps();
	float		sum;
	int			i = 0;

	for (; i + 32 <= n; i += 32)
	{
		__m128i		lo = _mm_loadu_si128((const __m128i *) (b + i));
		__m128i		hi = _mm_loadu_si128((const __m128i *) (b + i + 16));

		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), avx2_i8_to_ps(lo), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), avx2_i8_to_ps(_mm_srli_si128(lo, 8)), s1);
		s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), avx2_i8_to_ps(hi), s2);
		s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), avx2_i8_to_ps(_mm_srli_si128(hi, 8)), s3);
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), avx2_i8_to_ps(_mm_loadl_epi64((const __m128i *) (b + i))), s0);
	sum = avx2_horizontal_sum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
	for (; i < n; i++)
		sum += a[i] * (float) b[i];
	return sum;
}

/* The eight lanes whose bit is set in `byte`, as an all-ones mask. */
AVX2_TARGET static inline __m256
avx2_bit_mask(unsigned byte)
{
	const __m256i select = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
	__m256i		v = _mm256_and_si256(_mm256_set1_epi32((int) byte), select);

	return _mm256_castsi256_ps(_mm256_cmpeq_epi32(v, select));
}

AVX2_TARGET static float
avx2_masked_sum(const float *a, const uint8_t *bits, int n)
{
	__m256		s0 = _mm256_setzero_ps(),
				s1 = _mm256_setzero_ps(),
				s2 = _mm256_setzero_ps(),
				s3 = _mm256_setzero_ps();
	float		sum;
	int			i = 0;

	for (; i + 32 <= n; i += 32)
	{
		const uint8_t *p = bits + i / 8;

		s0 = _mm256_add_ps(s0, _mm256_and_ps(avx2_bit_mask(p[0]), _mm256_loadu_ps(a + i)));
		s1 = _mm256_add_ps(s1, _mm256_and_ps(avx2_bit_mask(p[1]), _mm256_loadu_ps(a + i + 8)));
		s2 = _mm256_add_ps(s2, _mm256_and_ps(avx2_bit_mask(p[2]), _mm256_loadu_ps(a + i + 16)));
		s3 = _mm256_add_ps(s3, _mm256_and_ps(avx2_bit_mask(p[3]), _mm256_loadu_ps(a + i + 24)));
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_add_ps(s0, _mm256_and_ps(avx2_bit_mask(bits[i / 8]), _mm256_loadu_ps(a + i)));
	sum = avx2_horizontal_sum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
	for (; i < n; i++)
		if ((bits[i / 8] >> (i % 8)) & 1)
			sum += a[i];
	return sum;
}

/* 16 int8 products summed in pairs into 8 int32 lanes, per step of 16 values. */
AVX2_TARGET static int32_t
avx2_dot_i8(const int8_t *a, const int8_t *b, int n)
{
	__m256i		s0 = _mm256_setzero_si256(),
				s1 = _mm256_setzero_si256();
	__m128i		s;
	int32_t		sum;
	int			i = 0;

	for (; i + 32 <= n; i += 32)
	{
		__m256i		a0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *) (a + i)));
		__m256i		b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *) (b + i)));
		__m256i		a1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *) (a + i + 16)));
		__m256i		b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *) (b + i + 16)));

		s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(a0, b0));
		s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(a1, b1));
	}
	for (; i + 16 <= n; i += 16)
	{
		__m256i		a0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *) (a + i)));
		__m256i		b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *) (b + i)));

		s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(a0, b0));
	}
	s0 = _mm256_add_epi32(s0, s1);
	s = _mm_add_epi32(_mm256_castsi256_si128(s0), _mm256_extracti128_si256(s0, 1));
	s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
	s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
	sum = _mm_cvtsi128_si32(s);
	for (; i < n; i++)
		sum += (int32_t) a[i] * b[i];
	return sum;
}

static const DistanceKernels avx2_kernels = {
	"avx2",
	avx2_inner_product,
	avx2_l2_squared,
	avx2_l1,
	avx2_cosine_parts,
	avx2_inner_product_f16,
	avx2_l2_squared_f16,
	avx2_inner_product_i8,
	avx2_masked_sum,
	avx2_dot_i8,
};
#endif							/* HAVE_AVX2_KERNELS */

const DistanceKernels *
DistanceKernelsAvx2(void)
{
#ifdef HAVE_AVX2_KERNELS
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c())
		return &avx2_kernels;
#endif
	return NULL;
}

const DistanceKernels *
DistanceKernelsBest(void)
{
	const DistanceKernels *avx2 = DistanceKernelsAvx2();

	return avx2 ? avx2 : DistanceKernelsPortable();
}

double
CosineDistanceFromParts(float dot, float norm_a2, float norm_b2)
{
	double		denominator = sqrt((double) norm_a2 * (double) norm_b2);
	double		similarity;

	if (denominator == 0.0)
		return NAN;
	similarity = (double) dot / denominator;
	/* Rounding can push |similarity| slightly past 1. */
	if (similarity > 1.0)
		similarity = 1.0;
	else if (similarity < -1.0)
		similarity = -1.0;
	return 1.0 - similarity;
}
