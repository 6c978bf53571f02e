/*
 * distance_kernels.h
 *	  Distance kernels over float arrays: portable C and AVX2+FMA, chosen at run time.
 *
 * Plain C with no PostgreSQL headers, so the kernels can be unit-tested and
 * benchmarked on their own.  Every kernel accepts any length n >= 0 and
 * accumulates in float4, like the rest of the field; callers that need a
 * distance in double convert the returned sums.
 */
#ifndef CROSSMODAL_DISTANCE_KERNELS_H
#define CROSSMODAL_DISTANCE_KERNELS_H

#include <stdint.h>

typedef struct DistanceKernels
{
	const char *name;			/* "portable" or "avx2" */
	/* sum of a[i] * b[i] */
	float		(*inner_product) (const float *a, const float *b, int n);
	/* sum of (a[i] - b[i])^2 */
	float		(*l2_squared) (const float *a, const float *b, int n);
	/* sum of |a[i] - b[i]| */
	float		(*l1) (const float *a, const float *b, int n);
	/* a.b, a.a and b.b in one pass, for cosine distance */
	void		(*cosine_parts) (const float *a, const float *b, int n,
								 float *dot, float *norm_a2, float *norm_b2);

	/*
	 * Against vectors stored in compact forms (the HNSW index's storage
	 * options): b in IEEE half precision, as 8-bit integers, or as bits.
	 */
	/* sum of a[i] * b[i], b half precision */
	float		(*inner_product_f16) (const float *a, const uint16_t *b, int n);
	/* sum of (a[i] - b[i])^2, b half precision */
	float		(*l2_squared_f16) (const float *a, const uint16_t *b, int n);
	/* sum of a[i] * b[i], b 8-bit integers */
	float		(*inner_product_i8) (const float *a, const int8_t *b, int n);
	/* sum of the a[i] whose bit is set: bit i is bit i % 8 of byte i / 8 */
	float		(*masked_sum) (const float *a, const uint8_t *bits, int n);
	/* sum of a[i] * b[i], both 8-bit integers in -127..127, exact (n <= 100,000) */
	int32_t		(*dot_i8) (const int8_t *a, const int8_t *b, int n);
} DistanceKernels;

/*
 * IEEE half precision (binary16) conversions.  FloatToHalf rounds to
 * nearest, ties to even; a value beyond the half range becomes infinite.
 */
extern uint16_t FloatToHalf(float f);
extern float HalfToFloat(uint16_t h);

/* The portable kernels: plain loops the compiler may vectorise for the base ISA. */
extern const DistanceKernels *DistanceKernelsPortable(void);

/*
 * The AVX2+FMA(+F16C) kernels, or NULL when this CPU lacks AVX2, FMA or
 * F16C or the build target is not x86.
 */
extern const DistanceKernels *DistanceKernelsAvx2(void);

/* The fastest kernels this CPU can run. */
extern const DistanceKernels *DistanceKernelsBest(void);

/*
 * Cosine distance 1 - a.b / (|a| |b|) from the parts, in [0, 2].  When either
 * vector is zero the cosine is undefined and the result is NaN (which
 * PostgreSQL sorts after every number, so zero vectors come last).
 */
extern double CosineDistanceFromParts(float dot, float norm_a2, float norm_b2);

#endif							/* CROSSMODAL_DISTANCE_KERNELS_H */
