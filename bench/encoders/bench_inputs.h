/*
 * bench_inputs.h: the hashed inputs and the clock that bench_encoders.c and
 * bench_precision.c share.  torch_clip.py (bench_inputs) reproduces the
 * same hash, so the C runtime and PyTorch encode the same texts and pixels.
 */
#ifndef BENCH_INPUTS_H
#define BENCH_INPUTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* Content tokens of a hashed caption (CLIP's 10-token caption less its two specials). */
#define CONTENT_TOKENS 8

static inline double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static inline uint32_t
input_hash(uint32_t i, uint32_t seed)
{
	uint32_t	x = i * 2654435761u + seed;

	x ^= x >> 16;
	x *= 0x45d9f3bu;
	x ^= x >> 16;
	return x;
}

/* n pixel values in [-2, 2], the same for every model. */
static inline void
fill_pixels(float *pixels, size_t n)
{
	for (size_t i = 0; i < n; i++)
		pixels[i] = (float) (input_hash((uint32_t) i, 1) % 4001u) / 1000.0f - 2.0f;
}

/*
 * Caption number s of `tokens` ids: CONTENT_TOKENS hashed ids below
 * `ordinary`, then the empty text's ids when the tokenizer pads (padded),
 * else between the empty text's two specials.
 */
static inline void
fill_caption(int32_t *row, int s, int tokens, bool padded, const int32_t *empty, uint32_t ordinary)
{
	int			first = padded ? 0 : 1;

	for (int j = 0; j < CONTENT_TOKENS; j++)
		row[first + j] = (int32_t) (input_hash((uint32_t) (s * tokens + first + j), 2) % ordinary);
	if (padded)
		memcpy(row + CONTENT_TOKENS, empty, (size_t) (tokens - CONTENT_TOKENS) * sizeof(int32_t));
	else
	{
		row[0] = empty[0];
		row[tokens - 1] = empty[1];
	}
}

static inline int
compare_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

#endif							/* BENCH_INPUTS_H */
