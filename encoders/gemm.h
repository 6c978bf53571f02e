/*
 * gemm.h
 *	  Matrix product with the weight read in place: y = x W^T + bias for a
 *	  weight W [N][K] stored row-major (a linear layer's layout), without
 *	  packing or copying W, for the few-row products of single captions and
 *	  images.  AVX-512 or AVX2/FMA versions chosen at run time, portable
 *	  fallback.
 */
#ifndef CM_GEMM_H
#define CM_GEMM_H

#include <stdbool.h>
#include <stddef.h>

/*
 * y[m][n] = (accumulate ? y[m][n] : 0) + bias[n] + sum_k x[m][k] W[n][k]
 * for m < M, n < N, k < K.  bias may be NULL.  Leading dimensions are in
 * floats; x, W and y need no particular alignment.  y must not overlap x
 * or W.  n_threads >= 2 lets a large enough product run on two threads
 * (the caller's and one started and joined within the call).
 */
void		cm_gemm_nt(int n_threads, int M, int N, int K, const float *x, size_t ldx,
					   const float *W, size_t ldw, const float *bias,
					   float *y, size_t ldy, bool accumulate);

/* The instruction sets a product can run on. */
typedef enum cm_gemm_path
{
	CM_GEMM_PORTABLE,
	CM_GEMM_AVX2,				/* AVX2 + FMA */
	CM_GEMM_AVX512				/* AVX-512F */
} cm_gemm_path;

bool		cm_gemm_path_supported(cm_gemm_path path);

/* The path cm_gemm_nt takes on this CPU. */
cm_gemm_path cm_gemm_best_path(void);
const char *cm_gemm_path_name(cm_gemm_path path);

/*
 * cm_gemm_nt on a given path (tests compare them); a path the CPU lacks
 * falls back to the best one below it.
 */
void		cm_gemm_nt_path(cm_gemm_path path, int n_threads, int M, int N, int K,
							const float *x, size_t ldx, const float *W, size_t ldw,
							const float *bias, float *y, size_t ldy, bool accumulate);

#endif							/* CM_GEMM_H */
