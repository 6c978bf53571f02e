/*
 * distance_kernels.c
 *	  Benchmark: ns per 512-d distance for each kernel set, against this machine's memory bandwidth.
 *
 * Two settings per kernel:
 *   hot    - 256 stored vectors (512 KB, cache-resident) against one query: compute bound;
 *   stream - 100,000 stored vectors (205 MB, like an exact scan of a 100k x 512 table) against
 *            one query: each pair reads one 2 KB vector from memory.
 * The bandwidth bound is measured in the same run by a streaming sum over the same 205 MB
 * buffer; 2048 bytes / bandwidth is the least time a streamed pair can take.
 * Build and run: make -C bench distance_kernels && build/bench/distance_kernels
 */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "distance_kernels.h"

#define DIM 512
#define STREAM_VECTORS 100000
#define HOT_VECTORS 256

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

/* Defeats dead-code elimination of the results. */
static volatile float sink;
static volatile uint64_t word_sink;

typedef float (*PairKernel) (const float *a, const float *b, int n);

static float
cosine_via_parts(const DistanceKernels *k, const float *a, const float *b, int n)
{
	float		dot,
				aa,
				bb;

	k->cosine_parts(a, b, n, &dot, &aa, &bb);
	return (float) CosineDistanceFromParts(dot, aa, bb);
}

/* ns per pair: best of `repeats` passes of query against vectors[0..count). */
static double
time_kernel(const DistanceKernels *k, int which, const float *query, const float *vectors,
			int count, int passes, int repeats)
{
	double		best = 1e30;

	for (int r = 0; r < repeats; r++)
	{
		double		start = now_seconds();
		float		acc = 0.0f;

		for (int p = 0; p < passes; p++)
			for (int i = 0; i < count; i++)
			{
				const float *v = vectors + (size_t) i * DIM;

				switch (which)
				{
					case 0:
						acc += cosine_via_parts(k, query, v, DIM);
						break;
					case 1:
						acc += k->l2_squared(query, v, DIM);
						break;
					case 2:
						acc += k->inner_product(query, v, DIM);
						break;
					default:
						acc += k->l1(query, v, DIM);
						break;
				}
			}
		sink = acc;
		{
			double		ns = (now_seconds() - start) * 1e9 / ((double) passes * count);

			if (ns < best)
				best = ns;
		}
	}
	return best;
}

int
main(void)
{
	static const char *const metric_names[] = {"cosine", "l2_squared", "inner_product", "l1"};
	size_t		stream_floats = (size_t) STREAM_VECTORS * DIM;
	float	   *vectors = malloc(sizeof(float) * stream_floats);
	float	   *query = malloc(sizeof(float) * DIM);
	const DistanceKernels *sets[2];
	int			nsets = 0;
	double		best_bandwidth = 0.0;

	if (vectors == NULL || query == NULL)
	{
		fprintf(stderr, "out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < stream_floats; i++)
		vectors[i] = (float) ((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
	for (int i = 0; i < DIM; i++)
		query[i] = (float) ((i * 40503u) % 2001) / 1000.0f - 1.0f;

	/*
	 * Memory bandwidth: best of 5 streaming passes over the whole buffer,
	 * summed as 64-bit integers in four chains, so that the loop is limited by
	 * memory, not by the latency of float additions.
	 */
	for (int r = 0; r < 5; r++)
	{
		const uint64_t *words = (const uint64_t *) vectors;
		size_t		nwords = stream_floats * sizeof(float) / sizeof(uint64_t);
		uint64_t	s0 = 0,
					s1 = 0,
					s2 = 0,
					s3 = 0;
		double		start = now_seconds();
		double		seconds;

		for (size_t i = 0; i + 4 <= nwords; i += 4)
		{
			s0 += words[i];
			s1 += words[i + 1];
			s2 += words[i + 2];
			s3 += words[i + 3];
		}
		word_sink = s0 + s1 + s2 + s3;
		seconds = now_seconds() - start;
		if (stream_floats * sizeof(float) / seconds > best_bandwidth)
			best_bandwidth = stream_floats * sizeof(float) / seconds;
	}

	sets[nsets++] = DistanceKernelsPortable();
	if (DistanceKernelsAvx2() != NULL)
		sets[nsets++] = DistanceKernelsAvx2();

	printf("memory bandwidth (streaming sum over %.0f MB): %.2f GB/s\n",
		   stream_floats * sizeof(float) / 1e6, best_bandwidth / 1e9);
	printf("bandwidth bound for a streamed 512-d pair (2048 bytes): %.1f ns\n\n",
		   DIM * sizeof(float) / best_bandwidth * 1e9);
	printf("%-9s %-14s %12s %15s\n", "kernels", "metric", "hot ns/pair", "stream ns/pair");
	for (int s = 0; s < nsets; s++)
		for (int m = 0; m < 4; m++)
		{
			double		hot = time_kernel(sets[s], m, query, vectors, HOT_VECTORS, 400, 5);
			double		stream = time_kernel(sets[s], m, query, vectors, STREAM_VECTORS, 1, 3);

			printf("%-9s %-14s %12.1f %15.1f\n", sets[s]->name, metric_names[m], hot, stream);
		}
	free(vectors);
	free(query);
	return 0;
}
