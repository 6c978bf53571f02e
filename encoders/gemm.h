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

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One unit of a task run by a team; thread is 0 (the caller) or 1. */
typedef void (*cm_team_fn) (void *ctx, int unit, int thread);

/*
 * Two threads for the products (and other tasks) of one forward pass: the
 * caller and a helper started by cm_gemm_team_start and joined by
 * cm_gemm_team_stop (call both within one call of the runtime, so that no
 * thread outlives it: safe across fork).  Owned by the caller, e.g. on its
 * stack; the fields are private to gemm.c.
 */
typedef struct cm_gemm_team
{
	bool		running;		/* the helper exists */
	bool		stop;
	pthread_t	helper;
	pthread_mutex_t lock;
	pthread_cond_t wake;		/* a new product, or stop */
	pthread_cond_t done;		/* the last unit of a product finished */
	uint32_t	gen;			/* task number */
	_Atomic uint32_t posted;	/* gen (or stop) published for threads spinning without the lock */
	cm_team_fn	fn;				/* the current task, NULL between tasks */
	void	   *ctx;
	int			n_units;
	_Atomic uint64_t claim;		/* gen << 32 | next unit */
	_Atomic int finished;		/* units of the current task done */
	bool		(*helper_init) (void);	/* run first by the helper */
	int			init_result;	/* 0 while it runs, then 1 (ok) or -1 */
} cm_gemm_team;

/*
 * Start a team when n_threads >= 2; false (and nothing to stop) when not
 * started: products then run on the caller's thread alone.  helper_init,
 * when not NULL, runs first on the helper (e.g. to claim what a library
 * allocates per thread); the team starts only when it returns true.
 */
bool		cm_gemm_team_start(cm_gemm_team *team, int n_threads, bool (*helper_init) (void));

/* Join the helper; harmless on a team that did not start, or NULL. */
void		cm_gemm_team_stop(cm_gemm_team *team);

/*
 * fn(ctx, unit, thread) for every unit < n_units, spread over the team's
 * threads (on the caller alone when team is NULL or not started); returns
 * when all are done.  Units must be independent of each other.
 */
void		cm_gemm_team_run(cm_gemm_team *team, cm_team_fn fn, void *ctx, int n_units);

/*
 * y[m][n] = (accumulate ? y[m][n] : 0) + bias[n] + sum_k x[m][k] W[n][k]
 * for m < M, n < N, k < K.  bias may be NULL.  Leading dimensions are in
 * floats; x, W and y need no particular alignment.  y must not overlap x
 * or W.  team, when not NULL and started, shares a large enough product
 * between its two threads.
 */
void		cm_gemm_nt(cm_gemm_team *team, int M, int N, int K, const float *x, size_t ldx,
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
void		cm_gemm_nt_path(cm_gemm_path path, cm_gemm_team *team, int M, int N, int K,
							const float *x, size_t ldx, const float *W, size_t ldw,
							const float *bias, float *y, size_t ldy, bool accumulate);

#endif							/* CM_GEMM_H */
