/*
 * kernels.h
 *	  Row-wise float kernels of the transformer (layer norm, activations,
 *	  softmax): portable C plus AVX2/FMA versions chosen at run time.
 */
#ifndef CM_KERNELS_H
#define CM_KERNELS_H

#include <stddef.h>

#include "config.h"

/* y[rows][d] = layer_norm(x) * w + b; x and y may be the same. */
void		cm_layer_norm(const float *x, float *y, int rows, int d,
						  const float *w, const float *b, float eps);

/* x[i] = act(x[i]) for n elements. */
void		cm_apply_activation(float *x, size_t n, cm_activation act);

/*
 * Softmax of each row of s[n][n] in place.  causal: row i covers columns
 * 0..i and the rest become 0.
 */
void		cm_softmax_rows(float *s, int n, bool causal);

/* Softmax of each row of s[rows][cols] in place. */
void		cm_softmax(float *s, int rows, int cols);

/* true when the AVX2/FMA versions run on this CPU. */
bool		cm_kernels_use_avx2(void);

/* The portable versions, always available (tests compare both paths). */
void		cm_layer_norm_portable(const float *x, float *y, int rows, int d,
								   const float *w, const float *b, float eps);
void		cm_apply_activation_portable(float *x, size_t n, cm_activation act);
void		cm_softmax_rows_portable(float *s, int n, bool causal);

#endif							/* CM_KERNELS_H */
