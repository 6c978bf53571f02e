/*
 * transformer.h
 *	  Per-call activation state, the shared pre-LN encoder layer and the
 *	  batch bookkeeping both towers use (row-wise kernels: kernels.h).
 */
#ifndef CM_TRANSFORMER_H
#define CM_TRANSFORMER_H

#include "cm_common.h"
#include "crossmodal_encoder.h"
#include "gemm.h"
#include "kernels.h"
#include "model.h"

/* A float buffer that only grows. */
typedef struct cm_buf
{
	float	   *p;
	size_t		cap;			/* in floats */
} cm_buf;

/*
 * One thread's working buffers for the layers of a forward pass over some
 * rows (lane 0: every row of the batch; the others: the rows of the
 * sequences a thread takes when a batch is split between threads).
 */
typedef struct cm_lane
{
	cm_buf		h;				/* [rows][d] layer-normed input of a block */
	cm_buf		q;				/* [rows][d] */
	cm_buf		k;				/* [rows][d] */
	cm_buf		v;				/* [rows][d] */
	cm_buf		attn;			/* [rows][d] attention output, heads side by side */
	cm_buf		ff;				/* [rows][ff] MLP hidden */
	cm_buf		scores;			/* per thread: a head's scores, k and v^T (transformer.c's attention_slot) */
	cm_buf		xr;				/* [rows][max(d, ff, patch)] a product's x rounded to bfloat16 */
} cm_lane;

void		cm_lane_free(cm_lane *lane);

/*
 * Activations for one forward pass at a time.  Rows are tokens of all the
 * sequences of a batch, stacked; d is the running tower's hidden size.
 */
struct cm_state
{
	cm_buf		x;				/* [rows][d] residual stream */
	cm_lane		lanes[CM_TEAM_MAX_THREADS];
	cm_buf		patches;		/* [n_images * grid^2][3 * p * p] im2col */
	cm_buf		pooled;			/* [n_seqs][d] */
	cm_buf		pixels;			/* [batch][3][S][S] decoded images */
	int		   *seq_start;		/* [n_seqs] first row of each sequence */
	int		   *seq_len;		/* [n_seqs] */
	int		   *keep_rows;		/* [n_seqs] the row each sequence is pooled at */
	size_t		seq_cap;
	int32_t    *ids;			/* [batch][max_positions] tokenized texts */
	size_t		ids_cap;
	const int32_t **id_rows;	/* [batch] */
	int		   *id_counts;		/* [batch] */
	size_t		id_rows_cap;
	cm_team    *team;			/* during a forward pass on two or more threads, else NULL */
	int			split_parts;	/* parts the layers' batch is split into between the
								 * team's threads, 0: each product shared */
	cm_team_advice advice;		/* whether this state's passes start a team */
};

/* Stacked sequences: sequence i is rows start[i] .. start[i] + len[i] - 1. */
typedef struct cm_batch
{
	int			n_seqs;
	int			n_rows;
	int			max_len;
	const int  *start;
	const int  *len;

	/*
	 * When not NULL: only these rows (ascending) are wanted after the last
	 * layer, which then leaves them in rows 0 .. n_keep - 1 of s->x and the
	 * other rows undefined.
	 */
	const int  *keep;
	int			n_keep;
} cm_batch;

cm_status	cm_buf_reserve(cm_buf *b, size_t n_floats, cm_error *err);
cm_status	cm_state_reserve_seqs(cm_state *s, size_t n_seqs, cm_error *err);

/*
 * Grow every buffer a tower with these sizes needs for this batch (lane 0
 * for all its rows, the helpers' lanes for their share when the batch will
 * be split between threads).  x_width: the widest x of a product outside
 * the layers (the patch embedding's 3 p p), or 0; bf16: the model's
 * products round their x (CM_PRECISION_BF16).  Call after
 * cm_forward_plan.
 */
cm_status	cm_state_reserve_tower(cm_state *s, const cm_tower_config *cfg,
								   const cm_batch *batch, int x_width, bool bf16,
								   cm_error *err);

/* Poll the caller's cancel callback. */
cm_status	cm_check_cancel(const cm_run_options *opt, cm_error *err);

/*
 * Run cfg->num_layers pre-LN encoder layers over s->x (in place).  causal
 * masks each position from the ones after it (the text tower).  See
 * cm_batch.keep for where the output rows are.  On a team, a batch with
 * enough rows is split between the threads by whole sequences, each thread
 * running every layer on its own (no waiting between products); a smaller
 * one shares each product.
 */
cm_status	cm_transformer_forward(const cm_tower_config *cfg, const cm_layer_weights *layers,
								   cm_state *s, const cm_batch *batch, bool causal,
								   const cm_run_options *opt, cm_error *err);

/*
 * The second half of a layer on rows 0 .. rows-1 of x, in place, with the
 * lane's buffers: x += fc2(act(fc1(layer_norm2(x)))).
 */
void		cm_mlp_residual(const cm_tower_config *cfg, const cm_layer_weights *w, cm_team *team,
							cm_gemm_algo algo, cm_lane *lane, float *x, int rows);

/*
 * x [rows][in] as a product with W takes it: as it is for float32 W, rounded
 * to bfloat16 into scratch (rows * in floats) for bfloat16 W.
 */
cm_mat		cm_linear_input(cm_team *team, const float *x, int rows, int in, cm_mat W,
							float *scratch);

/*
 * y[rows][out] = x[rows][in] W^T + bias with W [out][in]; accumulate adds
 * the result to y instead (a residual connection).  bias may be NULL.  x as
 * cm_linear_input makes it; team (may be NULL) shares the product; algo as
 * cm_gemm takes it.
 */
void		cm_linear(cm_team *team, cm_gemm_algo algo, cm_mat x, int rows, int in, cm_mat W,
					  const float *bias, float *y, int out, bool accumulate);

/* cm_linear_input then cm_linear, with the lane's scratch. */
void		cm_linear_f32(cm_team *team, cm_gemm_algo algo, cm_lane *lane, const float *x, int rows,
						  int in, cm_mat W, const float *bias, float *y, int out, bool accumulate);

/* The instruction set a model's products run on here (cm_model_info.kernels). */
const char *cm_model_kernels(const cm_model *model);

/*
 * Before a forward pass: make sure that OpenBLAS has the per-thread work
 * buffers the pass will use (CM_ERR_NOMEM when they cannot be had, see
 * cm_blas_prepare), then start a team when OpenBLAS is given two or more
 * threads (the in-place kernels then use as many; each helper prepares its
 * own buffer first, and the pass runs on the caller alone if one cannot);
 * sets s->team.  cm_forward_team_stop ends the team (harmless when none
 * started).
 */
cm_status	cm_forward_begin(cm_state *s, cm_team *team, cm_error *err);
void		cm_forward_team_stop(cm_state *s);

/*
 * OpenBLAS gives every thread that calls it a work buffer, allocated at the
 * thread's first call and kept; when that allocation fails it retries
 * forever, deaf to cancellation.  This checks, for the calling thread and
 * (n_threads > 1) OpenBLAS's own worker threads, that the buffers can be
 * had, and has OpenBLAS take them now; CM_ERR_NOMEM when they cannot.
 * Cheap once done (per thread, and per process for the workers).
 */
cm_status	cm_blas_prepare(int n_threads, cm_error *err);

/*
 * How the coming forward pass over batch uses the team: split by sequences
 * or sharing each product (sets s->split_parts).  After cm_forward_begin,
 * before cm_state_reserve_tower.
 */
void		cm_forward_plan(cm_state *s, const cm_layer_weights *layers, const cm_batch *batch);

/* Text tower on token ids (at most the batch the caller chose). */
cm_status	cm_text_forward(const cm_model *model, cm_state *s,
							const int32_t *const *ids, const int *n_ids, int n,
							const cm_run_options *opt, float *out, float *hidden,
							cm_error *err);

/* Vision tower on preprocessed pixel tensors [n][3][S][S]. */
cm_status	cm_vision_forward(const cm_model *model, cm_state *s,
							  const float *pixels, int n,
							  const cm_run_options *opt, float *out, cm_error *err);

#endif							/* CM_TRANSFORMER_H */
