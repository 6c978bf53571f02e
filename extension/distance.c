/*
 * distance.c
 *	  SQL-callable distance functions between embeddings, on the dispatched kernels.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"

#include "crossmodal.h"
#include "distance_kernels.h"
#include "embedding.h"

/* The kernels this CPU runs, chosen once per process. */
static const DistanceKernels *kernels = NULL;

void
DistanceInit(void)
{
	kernels = DistanceKernelsBest();
}

static inline const DistanceKernels *
Kernels(void)
{
	if (unlikely(kernels == NULL))
		DistanceInit();
	return kernels;
}

/*
 * The float4 kernels overflow to infinity only for elements near the float4
 * limits; the result is then recomputed in double, where it is finite.
 */
static double
InnerProductDouble(const Embedding *a, const Embedding *b)
{
	double		sum = 0.0;

	for (int i = 0; i < a->dim; i++)
		sum += (double) a->x[i] * (double) b->x[i];
	return sum;
}

double
EmbeddingInnerProduct(const Embedding *a, const Embedding *b)
{
	float		result;

	EmbeddingCheckSameDim(a, b);
	result = Kernels()->inner_product(a->x, b->x, a->dim);
	if (unlikely(!isfinite(result)))
		return InnerProductDouble(a, b);
	return result;
}

double
EmbeddingL2Distance(const Embedding *a, const Embedding *b)
{
	float		result;

	EmbeddingCheckSameDim(a, b);
	result = Kernels()->l2_squared(a->x, b->x, a->dim);
	if (unlikely(!isfinite(result)))
	{
		double		sum = 0.0;

		for (int i = 0; i < a->dim; i++)
		{
			double		d = (double) a->x[i] - (double) b->x[i];

			sum += d * d;
		}
		return sqrt(sum);
	}
	return sqrt((double) result);
}

double
EmbeddingL1Distance(const Embedding *a, const Embedding *b)
{
	float		result;

	EmbeddingCheckSameDim(a, b);
	result = Kernels()->l1(a->x, b->x, a->dim);
	if (unlikely(!isfinite(result)))
	{
		double		sum = 0.0;

		for (int i = 0; i < a->dim; i++)
			sum += fabs((double) a->x[i] - (double) b->x[i]);
		return sum;
	}
	return result;
}

double
EmbeddingCosineDistance(const Embedding *a, const Embedding *b)
{
	float		dot,
				norm_a2,
				norm_b2;

	EmbeddingCheckSameDim(a, b);
	Kernels()->cosine_parts(a->x, b->x, a->dim, &dot, &norm_a2, &norm_b2);
	if (unlikely(!isfinite(dot) || !isfinite(norm_a2) || !isfinite(norm_b2)))
	{
		/* Scale-free in double: cos = a.b / (|a| |b|). */
		double		ab = InnerProductDouble(a, b);
		double		aa = InnerProductDouble(a, a);
		double		bb = InnerProductDouble(b, b);
		double		similarity = ab / sqrt(aa * bb);

		return 1.0 - Max(-1.0, Min(1.0, similarity));
	}
	return CosineDistanceFromParts(dot, norm_a2, norm_b2);
}

#define DISTANCE_FUNCTION(name, expr) \
CROSSMODAL_FUNCTION(name); \
Datum \
name(PG_FUNCTION_ARGS) \
{ \
	Embedding  *a = PG_GETARG_EMBEDDING_P(0); \
	Embedding  *b = PG_GETARG_EMBEDDING_P(1); \
	double		result = (expr); \
\
	PG_FREE_IF_COPY(a, 0); \
	PG_FREE_IF_COPY(b, 1); \
	PG_RETURN_FLOAT8(result); \
}

DISTANCE_FUNCTION(crossmodal_cosine_distance, EmbeddingCosineDistance(a, b))
DISTANCE_FUNCTION(crossmodal_l2_distance, EmbeddingL2Distance(a, b))
DISTANCE_FUNCTION(crossmodal_inner_product, EmbeddingInnerProduct(a, b))
DISTANCE_FUNCTION(crossmodal_embedding_negative_inner_product, -EmbeddingInnerProduct(a, b))
DISTANCE_FUNCTION(crossmodal_l1_distance, EmbeddingL1Distance(a, b))
