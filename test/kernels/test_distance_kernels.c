/*
 * test_distance_kernels.c
 *	  Checks every distance kernel set (portable, AVX2+FMA) against a double-precision reference.
 *
 * Two kinds of data at every length 0..67 (all the tails of the 8- and 32-wide
 * loops), and at longer lengths up to the 16000-dimension limit:
 *   - small integers, for which float arithmetic is exact, so the kernels must
 *     match the reference exactly (a dropped or doubled element shows);
 *   - random floats, where the error must stay within the worst-case bound of
 *     float summation, gamma(n + 3) * sum |term|, gamma(k) = k u / (1 - k u).
 * Inputs are also read from an address that is not 32-byte aligned.  The
 * kernels over compact forms (half precision, int8, bit masks) run on the
 * same data, converted, against a reference over the converted values; the
 * half-precision conversions are checked on every half value and, where
 * the CPU has F16C, against the hardware's rounding of random floats.
 * Exit status 0 when every check passes; failures are listed on stderr.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distance_kernels.h"

#define MAX_LEN 16000

static int	failures = 0;
static int	checks = 0;

/* splitmix64: a deterministic generator, so failures reproduce. */
static uint64_t rng_state = 0x243f6a8885a308d3ULL;

static uint64_t
next_random(void)
{
	uint64_t	z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static float
random_unit(void)
{
	return (float) ((double) (next_random() >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* Integer in [-8, 8]. */
static float
random_small_integer(void)
{
	return (float) ((int) (next_random() % 17) - 8);
}

typedef struct Reference
{
	double		inner_product,
				l2_squared,
				l1,
				norm_a2,
				norm_b2;
	/* sums of |term|, for the error bounds */
	double		abs_inner_product,
				abs_norm_a2,
				abs_norm_b2;
} Reference;

static Reference
reference(const float *a, const float *b, int n)
{
	Reference	r;

	memset(&r, 0, sizeof(r));
	for (int i = 0; i < n; i++)
	{
		double		x = a[i],
					y = b[i],
					d = x - y;

		r.inner_product += x * y;
		r.abs_inner_product += fabs(x * y);
		r.l2_squared += d * d;
		r.l1 += fabs(d);
		r.norm_a2 += x * x;
		r.norm_b2 += y * y;
	}
	r.abs_norm_a2 = r.norm_a2;
	r.abs_norm_b2 = r.norm_b2;
	return r;
}

static double
gamma_bound(int n)
{
	double		nu = (double) n * ldexp(1.0, -24);

	return nu / (1.0 - nu);
}

static void
check_value(const char *kernels, const char *what, int n, const char *data,
			double got, double want, double tolerance)
{
	checks++;
	if (!(fabs(got - want) <= tolerance))
	{
		failures++;
		fprintf(stderr, "FAIL %s %s n=%d (%s): got %.9g, want %.9g (tolerance %.3g)\n",
				kernels, what, n, data, got, want, tolerance);
	}
}

static void
check_kernels(const DistanceKernels *k, const float *a, const float *b, int n, int exact)
{
	Reference	r = reference(a, b, n);
	const char *data = exact ? "integers, exact" : "random";
	double		g = exact ? 0.0 : gamma_bound(n + 3);
	float		dot,
				aa,
				bb;

	check_value(k->name, "inner_product", n, data, k->inner_product(a, b, n),
				r.inner_product, g * r.abs_inner_product);
	check_value(k->name, "l2_squared", n, data, k->l2_squared(a, b, n),
				r.l2_squared, g * r.l2_squared);
	check_value(k->name, "l1", n, data, k->l1(a, b, n), r.l1, g * r.l1);
	k->cosine_parts(a, b, n, &dot, &aa, &bb);
	check_value(k->name, "cosine_parts.dot", n, data, dot,
				r.inner_product, g * r.abs_inner_product);
	check_value(k->name, "cosine_parts.norm_a2", n, data, aa, r.norm_a2, g * r.abs_norm_a2);
	check_value(k->name, "cosine_parts.norm_b2", n, data, bb, r.norm_b2, g * r.abs_norm_b2);
}

/* The compact-form kernels on a and b converted (b: half, int8 and bits). */
static void
check_compact_kernels(const DistanceKernels *k, const float *a, const float *b, int n, int exact)
{
	uint16_t   *h = malloc(sizeof(uint16_t) * (n + 1));
	int8_t	   *q = malloc(n + 1);
	int8_t	   *q2 = malloc(n + 1);
	int64_t		dot8 = 0;
	uint8_t    *bits = calloc(n / 8 + 2, 1);
	double		ip16 = 0,
				abs16 = 0,
				l2_16 = 0,
				ip8 = 0,
				abs8 = 0,
				masked = 0,
				absMasked = 0;
	const char *data = exact ? "integers, exact" : "random";
	double		g = exact ? 0.0 : gamma_bound(n + 3);

	for (int i = 0; i < n; i++)
	{
		double		x = a[i];
		double		y16;
		int			v = (int) lrint(b[i] * (exact ? 1.0 : 127.0));

		h[i] = FloatToHalf(b[i]);
		y16 = HalfToFloat(h[i]);
		ip16 += x * y16;
		abs16 += fabs(x * y16);
		l2_16 += (x - y16) * (x - y16);
		q[i] = (int8_t) (v > 127 ? 127 : v < -127 ? -127 : v);
		q2[i] = (int8_t) ((int) (next_random() % 255) - 127);
		dot8 += (int64_t) q[i] * q2[i];
		ip8 += x * q[i];
		abs8 += fabs(x * q[i]);
		if (next_random() & 1)
		{
			bits[i / 8] |= (uint8_t) (1 << (i % 8));
			masked += x;
			absMasked += fabs(x);
		}
	}
	check_value(k->name, "inner_product_f16", n, data, k->inner_product_f16(a, h, n), ip16, g * abs16);
	check_value(k->name, "l2_squared_f16", n, data, k->l2_squared_f16(a, h, n), l2_16, g * l2_16);
	check_value(k->name, "inner_product_i8", n, data, k->inner_product_i8(a, q, n), ip8, g * abs8);
	check_value(k->name, "masked_sum", n, data, k->masked_sum(a, bits, n), masked, g * absMasked);
	check_value(k->name, "dot_i8", n, "int8, exact", (double) k->dot_i8(q, q2, n), (double) dot8, 0.0);
	free(h);
	free(q);
	free(q2);
	free(bits);
}

static void
run_length(const DistanceKernels *k, float *a, float *b, int n)
{
	for (int i = 0; i < n; i++)
	{
		a[i] = random_small_integer();
		b[i] = random_small_integer();
	}
	check_kernels(k, a, b, n, 1);
	check_compact_kernels(k, a, b, n, 1);
	for (int i = 0; i < n; i++)
	{
		a[i] = random_unit();
		b[i] = random_unit();
	}
	check_kernels(k, a, b, n, 0);
	check_compact_kernels(k, a, b, n, 0);
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define HAVE_F16C_CHECK 1

__attribute__((target("f16c"))) static uint16_t
hardware_half(float f)
{
	return (uint16_t) _mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(f), _MM_FROUND_TO_NEAREST_INT), 0);
}
#endif

/*
 * Every half value converts to a float and back unchanged (NaNs stay NaN);
 * random floats of every magnitude, and the values halfway between two
 * halves, round as the hardware rounds them.
 */
static void
check_half_conversions(void)
{
	for (uint32_t v = 0; v <= 0xffff; v++)
	{
		uint16_t	h = (uint16_t) v;
		float		f = HalfToFloat(h);
		uint16_t	back = FloatToHalf(f);
		int			isnan16 = (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;

		checks++;
		if (isnan16 ? !((back & 0x7c00) == 0x7c00 && (back & 0x3ff) != 0) : back != h)
		{
			failures++;
			fprintf(stderr, "FAIL half 0x%04x -> %g -> 0x%04x\n", (unsigned) h, f, (unsigned) back);
		}
	}
#ifdef HAVE_F16C_CHECK
	__builtin_cpu_init();
	if (__builtin_cpu_supports("f16c"))
	{
		for (int i = 0; i < 2000000; i++)
		{
			uint32_t	bits = (uint32_t) next_random();
			float		f;

			if (i % 2 == 0)
			{
				/* around the half range: exponents -30 .. +17 */
				bits = (bits & 0x807fffff) | ((uint32_t) (97 + next_random() % 48) << 23);
			}
			if (i % 8 == 1)
				bits = (bits & 0xffffe000) | 0x1000;	/* exactly halfway */
			memcpy(&f, &bits, sizeof(f));
			if (isnan(f))
				continue;
			checks++;
			if (FloatToHalf(f) != hardware_half(f))
			{
				failures++;
				if (failures < 20)
					fprintf(stderr, "FAIL FloatToHalf(%a) = 0x%04x, hardware 0x%04x\n", f,
							(unsigned) FloatToHalf(f), (unsigned) hardware_half(f));
			}
		}
	}
	else
		printf("note: this CPU has no F16C; half rounding was checked by round trips only\n");
#endif
}

static void
check_cosine_from_parts(void)
{
	checks += 5;
	if (!isnan(CosineDistanceFromParts(0.0f, 0.0f, 4.0f)) ||
		!isnan(CosineDistanceFromParts(0.0f, 4.0f, 0.0f)))
	{
		failures++;
		fprintf(stderr, "FAIL cosine distance with a zero vector is not NaN\n");
	}
	if (CosineDistanceFromParts(2.0f, 2.0f, 2.0f) != 0.0)
	{
		failures++;
		fprintf(stderr, "FAIL cosine distance of identical vectors is not 0\n");
	}
	if (CosineDistanceFromParts(-2.0f, 2.0f, 2.0f) != 2.0)
	{
		failures++;
		fprintf(stderr, "FAIL cosine distance of opposite vectors is not 2\n");
	}
	/* Rounding may make |dot| exceed |a| |b| slightly: the result stays in [0, 2]. */
	if (CosineDistanceFromParts(1.0000001f, 1.0f, 1.0f) != 0.0)
	{
		failures++;
		fprintf(stderr, "FAIL cosine distance is not clamped at 0\n");
	}
	if (fabs(CosineDistanceFromParts(0.0f, 1.0f, 1.0f) - 1.0) > 0.0)
	{
		failures++;
		fprintf(stderr, "FAIL cosine distance of orthogonal vectors is not 1\n");
	}
}

int
main(void)
{
	const DistanceKernels *sets[2];
	int			nsets = 0;
	static const int long_lengths[] = {96, 127, 128, 129, 255, 256, 383, 512, 768, 1000, 1536, 2048, 3072, 16000};
	/* One spare float in front, so that a + 1 is not 32-byte aligned. */
	float	   *a = malloc(sizeof(float) * (MAX_LEN + 1));
	float	   *b = malloc(sizeof(float) * (MAX_LEN + 1));

	if (a == NULL || b == NULL)
	{
		fprintf(stderr, "out of memory\n");
		return 2;
	}

	sets[nsets++] = DistanceKernelsPortable();
	if (DistanceKernelsAvx2() != NULL)
		sets[nsets++] = DistanceKernelsAvx2();
	else
		printf("note: this CPU (or build target) has no AVX2+FMA; only the portable kernels were tested\n");

	if (DistanceKernelsBest() != sets[nsets - 1])
	{
		failures++;
		fprintf(stderr, "FAIL DistanceKernelsBest did not choose the fastest available kernels\n");
	}

	for (int s = 0; s < nsets; s++)
	{
		for (int n = 0; n <= 67; n++)
		{
			run_length(sets[s], a, b, n);
			run_length(sets[s], a + 1, b + 1, n);
		}
		for (size_t i = 0; i < sizeof(long_lengths) / sizeof(long_lengths[0]); i++)
		{
			run_length(sets[s], a, b, long_lengths[i]);
			run_length(sets[s], a + 1, b + 1, long_lengths[i] - 1);
		}
	}
	check_cosine_from_parts();
	check_half_conversions();

	printf("distance kernels: %d checks over %d kernel set(s) (%s%s), %d failed\n",
		   checks, nsets, sets[0]->name, nsets > 1 ? ", avx2" : "", failures);
	free(a);
	free(b);
	return failures == 0 ? 0 : 1;
}
