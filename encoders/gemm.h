/*
 * gemm.h
 *	  Matrix product with the weight read in place: y = x W^T + bias for a
 *	  weight W [N][K] stored row-major (a linear layer's layout), without
 *	  packing or copying W.  Weights in float32 or bfloat16; x in float32, or
 *	  rounded to bfloat16 for the reduced-precision path.  AVX-512 (with
 *	  AVX512_BF16 where the CPU has it) or AVX2/FMA versions chosen at run
 *	  time, portable fallback.
 */
#ifndef CM_GEMM_H
#define CM_GEMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "team.h"

/* Element types of a product's operands. */
typedef enum cm_elem
{
	CM_ELEM_F32,
	CM_ELEM_BF16				/* the upper 16 bits of a float32 */
} cm_elem;

/* A row-major matrix operand; ld is in elements. */
typedef struct cm_mat
{
	const void *p;
	size_t		ld;
	cm_elem		type;
} cm_mat;

static inline cm_mat
cm_mat_f32(const float *p, size_t ld)
{
	cm_mat		m = {p, ld, CM_ELEM_F32};

	return m;
}

/* The instruction sets a product can run on. */
typedef enum cm_gemm_path
{
	CM_GEMM_PORTABLE,
	CM_GEMM_AVX2,				/* AVX2 + FMA */
	CM_GEMM_AVX512,				/* AVX-512 F, BW and VL */
	CM_GEMM_AVX512_BF16			/* and AVX512_BF16's bfloat16 dot products */
} cm_gemm_path;

/*
 * How a product reads W: CM_GEMM_AUTO picks by the number of x rows;
 * CM_GEMM_IN_PLACE always dots x rows with W rows where they lie (the
 * kernel for a few rows); CM_GEMM_PACKED copies panels of W transposed and
 * multiplies them as outer products (the kernel for many rows, AVX-512
 * only: elsewhere, or for operands it does not take, in place).  The two
 * sum an output's products in different orders: an output's bits depend
 * on the algorithm and, in place, on where W's rows start within an
 * aligned block (the kernels split each row there to load W aligned), and
 * on nothing else of the product (other rows, the number of threads).  A
 * caller whose W is a scratch copy keeps it aligned for the same bits.
 */
typedef enum cm_gemm_algo
{
	CM_GEMM_AUTO = 0,
	CM_GEMM_IN_PLACE,
	CM_GEMM_PACKED
} cm_gemm_algo;

/*
 * CM_GEMM_AUTO packs from this many x rows (where it can): packing pays
 * from about here with float32, from somewhat fewer rows with bfloat16.
 */
#define CM_GEMM_PACK_MIN_ROWS 96

/*
 * y[m][n] = (accumulate ? y[m][n] : 0) + bias[n] + sum_k x[m][k] W[n][k]
 * for m < M, n < N, k < K, products and sums in float32.  bias may be NULL.
 * x and W need no particular alignment beyond their element size; y must
 * not overlap x or W.  team, when started, shares a large enough product
 * between its threads; the result is the same bits on any number of
 * threads.  Every combination of element types is accepted; the fast
 * kernels take float32 x with float32 or bfloat16 W, and bfloat16 x with
 * bfloat16 W (what cm_gemm_round_x makes on the AVX512_BF16 path).
 */
void		cm_gemm(cm_team *team, cm_gemm_algo algo, int M, int N, int K, cm_mat x, cm_mat W,
					const float *bias, float *y, size_t ldy, bool accumulate);

/* cm_gemm on a given path (tests compare them); one the CPU lacks falls back to the best below it. */
void		cm_gemm_on_path(cm_gemm_path path, cm_team *team, cm_gemm_algo algo, int M, int N,
							int K, cm_mat x, cm_mat W, const float *bias, float *y, size_t ldy,
							bool accumulate);

/*
 * x [M][K] rounded to bfloat16 (to nearest even; subnormals to zero, as
 * AVX512_BF16's conversion does) into out, for products with bfloat16
 * weights on path: packed bfloat16 where the path multiplies bfloat16 pairs
 * (AVX512_BF16), float32 holding the rounded values elsewhere, so that
 * every path computes the same products.  out holds M * K floats; returns
 * the operand (ld = K).
 */
cm_mat		cm_gemm_round_x(cm_gemm_path path, cm_team *team, int M, int K, const float *x,
							size_t ldx, float *out);

/* bfloat16 of a float32, to nearest even as torch's .to(torch.bfloat16) does (NaN stays NaN). */
uint16_t	cm_bf16_from_f32(float f);
float		cm_f32_from_bf16(uint16_t h);

bool		cm_gemm_path_supported(cm_gemm_path path);

/*
 * The path cm_gemm takes on this CPU: the best it supports, at most the one
 * the environment variable CROSSMODAL_MAX_ISA names (portable, avx2, avx512
 * or avx512_bf16, as cm_gemm_path_env_name spells them; read once per
 * process), so that tests and comparisons can run a lesser CPU's kernels.
 * The row-wise kernels (kernels.c) follow the same cap.
 */
cm_gemm_path cm_gemm_best_path(void);
const char *cm_gemm_path_name(cm_gemm_path path);
const char *cm_gemm_path_env_name(cm_gemm_path path);

#endif							/* CM_GEMM_H */
