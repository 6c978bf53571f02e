/*
 * transformer.c
 *	  The pre-LN transformer encoder layer shared by the text and vision
 *	  towers of every family.  Linear layers go through cm_linear: weights read in place by
 *	  gemm.c's kernels, or cblas_sgemm where its packing pays off.
 *
 * Layer (as transformers' CLIPEncoderLayer):
 *	  x += out_proj(attention(layer_norm1(x)))
 *	  x += fc2(act(fc1(layer_norm2(x))))
 * Rows of every sequence in a batch are stacked so the projections and the
 * MLP are single GEMMs over all tokens; attention runs per sequence and head.
 */
#include "transformer.h"

#include "gemm.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/*
 * With AVX2 only, cm_linear reads W in place (gemm.c) up to this many rows;
 * above, OpenBLAS's packed kernel wins (measured: 50 rows 1.2-1.4x faster
 * in place, 128 rows about even, 320 rows 1.3x slower).  The AVX-512
 * kernel wins at every batch size measured (up to 1600 rows).
 */
#define CM_LINEAR_AVX2_MAX_ROWS 64

/*
 * Attention is shared with a forward pass's second thread from this many
 * multiply-adds (one 50-token image: 3.8 million; one caption: 0.1).
 */
#define CM_ATTENTION_TEAM_MIN_WORK ((size_t) 1 << 20)

cm_status
cm_buf_reserve(cm_buf *b, size_t n_floats, cm_error *err)
{
	size_t		bytes;
	float	   *p;

	if (n_floats <= b->cap)
		return CM_OK;
	if (!cm_mul_size(n_floats, sizeof(float), &bytes))
		return cm_set_error(err, CM_ERR_NOMEM, "activation buffer size overflows");
	/* The contents need not survive: free first to keep the peak low. */
	free(b->p);
	b->cap = 0;
	p = malloc(bytes);
	if (p == NULL)
	{
		b->p = NULL;
		return cm_set_error(err, CM_ERR_NOMEM, "out of memory for a %zu-byte activation buffer", bytes);
	}
	b->p = p;
	b->cap = n_floats;
	return CM_OK;
}

cm_status
cm_state_reserve_seqs(cm_state *s, size_t n_seqs, cm_error *err)
{
	int		   *a,
			   *b,
			   *c;

	if (n_seqs <= s->seq_cap)
		return CM_OK;
	a = malloc(n_seqs * sizeof(int));
	b = malloc(n_seqs * sizeof(int));
	c = malloc(n_seqs * sizeof(int));
	if (a == NULL || b == NULL || c == NULL)
	{
		free(a);
		free(b);
		free(c);
		return cm_set_error(err, CM_ERR_NOMEM, "out of memory for %zu sequences", n_seqs);
	}
	free(s->seq_start);
	free(s->seq_len);
	free(s->keep_rows);
	s->seq_start = a;
	s->seq_len = b;
	s->keep_rows = c;
	s->seq_cap = n_seqs;
	return CM_OK;
}

cm_status
cm_state_reserve_tower(cm_state *s, const cm_tower_config *cfg, const cm_batch *batch,
					   cm_error *err)
{
	size_t		rows_d,
				rows_ff,
				scores,
				pooled;
	cm_status	st;

	if (!cm_mul_size((size_t) batch->n_rows, (size_t) cfg->hidden_size, &rows_d) ||
		!cm_mul_size((size_t) batch->n_rows, (size_t) cfg->intermediate_size, &rows_ff) ||
		!cm_mul_size((size_t) batch->max_len * 2, (size_t) batch->max_len, &scores) ||
		!cm_mul_size((size_t) batch->n_seqs, (size_t) cfg->hidden_size, &pooled))
		return cm_set_error(err, CM_ERR_LIMIT, "batch of %d rows is too large", batch->n_rows);
	if ((st = cm_buf_reserve(&s->x, rows_d, err)) != CM_OK ||
		(st = cm_buf_reserve(&s->h, rows_d, err)) != CM_OK ||
		(st = cm_buf_reserve(&s->q, rows_d, err)) != CM_OK ||
		(st = cm_buf_reserve(&s->k, rows_d, err)) != CM_OK ||
		(st = cm_buf_reserve(&s->v, rows_d, err)) != CM_OK ||
		(st = cm_buf_reserve(&s->attn, rows_d, err)) != CM_OK ||
		(st = cm_buf_reserve(&s->ff, rows_ff, err)) != CM_OK ||
		(st = cm_buf_reserve(&s->scores, scores, err)) != CM_OK ||
		(st = cm_buf_reserve(&s->pooled, pooled, err)) != CM_OK)
		return st;
	return CM_OK;
}

cm_status
cm_check_cancel(const cm_run_options *opt, cm_error *err)
{
	if (opt != NULL && opt->cancel != NULL && opt->cancel(opt->cancel_ctx))
		return cm_set_error(err, CM_ERR_CANCELLED, "cancelled by the caller");
	return CM_OK;
}

/*
 * OpenBLAS's work buffer per thread: BUFFER_SIZE, 128 MiB in Debian's x86-64
 * build (and less on other architectures), plus a page; a little more is
 * asked of the address space, to be sure.
 */
#define CM_BLAS_BUFFER_BYTES (((size_t) 128 << 20) + ((size_t) 1 << 20))

/* The process in which this thread's buffer was taken (0: none yet). */
static _Thread_local pid_t blas_thread_ready;

/* pid << 8 | OpenBLAS threads whose buffers were taken in that process. */
static _Atomic uint64_t blas_workers_ready;

/* Whether n buffers of address space can be had right now. */
static bool
address_space_for(size_t n)
{
	size_t		bytes;
	void	   *p;

	if (!cm_mul_size(n, CM_BLAS_BUFFER_BYTES, &bytes))
		return false;
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return false;
	munmap(p, bytes);
	return true;
}

/*
 * A product large enough that OpenBLAS runs it through its buffers (its
 * small-matrix kernels take products up to 100^3 multiply-adds) and splits
 * it over n_threads threads.
 */
static bool
blas_touch(int n_threads)
{
	int			n = n_threads > 3 ? 48 * n_threads : 160;
	float	   *a = calloc((size_t) 3 * n * n, sizeof(float));

	if (a == NULL)
		return false;
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n,
				1.0f, a, n, a + (size_t) n * n, n, 0.0f, a + (size_t) 2 * n * n, n);
	free(a);
	return true;
}

cm_status
cm_blas_prepare(int n_threads, cm_error *err)
{
	pid_t		pid = getpid();
	bool		self = blas_thread_ready != pid;
	uint64_t	ready = atomic_load(&blas_workers_ready);
	bool		workers = n_threads > 1 &&
		((pid_t) (ready >> 8) != pid || (int) (ready & 0xFF) < n_threads);

	if (!self && !workers)
		return CM_OK;
	if (!address_space_for((self ? 1 : 0) + (workers ? (size_t) n_threads - 1 : 0)) ||
		!blas_touch(workers ? n_threads : 1))
		return cm_set_error(err, CM_ERR_NOMEM,
							"out of memory for OpenBLAS's work buffers (%d x %zu MiB)",
							workers ? n_threads : 1, CM_BLAS_BUFFER_BYTES >> 20);
	blas_thread_ready = pid;
	if (workers)
		atomic_store(&blas_workers_ready, (uint64_t) pid << 8 | (uint64_t) (n_threads & 0xFF));
	return CM_OK;
}

/* The team's helper calls OpenBLAS too (attention): its buffer first. */
static bool
helper_blas_init(void)
{
	return cm_blas_prepare(1, NULL) == CM_OK;
}

cm_status
cm_forward_begin(cm_state *s, cm_gemm_team *team, cm_error *err)
{
	int			n_threads = openblas_get_num_threads();
	cm_status	st = cm_blas_prepare(n_threads, err);

	s->team = NULL;
	if (st != CM_OK)
		return st;
	/* a helper that cannot have its buffer leaves the pass to the caller */
	s->team = cm_gemm_team_start(team, n_threads, helper_blas_init) ? team : NULL;
	return CM_OK;
}

void
cm_forward_team_stop(cm_state *s)
{
	cm_gemm_team_stop(s->team);
	s->team = NULL;
}

void
cm_linear(cm_gemm_team *team, const float *x, int rows, int in, const float *W, const float *bias,
		  float *y, int out, bool accumulate)
{
	cm_gemm_path path = cm_gemm_best_path();

	if (path == CM_GEMM_AVX512 || (path == CM_GEMM_AVX2 && rows <= CM_LINEAR_AVX2_MAX_ROWS))
	{
		/* W read in place, no packing. */
		cm_gemm_nt_path(path, team, rows, out, in, x, (size_t) in,
						W, (size_t) in, bias, y, (size_t) out, accumulate);
		return;
	}
	/* Put the bias (plus the residual, if any) in y, then y += x W^T. */
	for (int r = 0; r < rows; r++)
	{
		float	   *yr = y + (size_t) r * out;

		if (bias == NULL)
		{
			if (!accumulate)
				memset(yr, 0, (size_t) out * sizeof(float));
		}
		else if (accumulate)
			for (int j = 0; j < out; j++)
				yr[j] += bias[j];
		else
			memcpy(yr, bias, (size_t) out * sizeof(float));
	}
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, out, in,
				1.0f, x, in, W, in, 1.0f, y, out);
}

/* One attention pass over the sequences and heads of a batch. */
typedef struct attention_task
{
	const cm_tower_config *cfg;
	cm_state   *s;
	const cm_batch *batch;
	bool		causal;
} attention_task;

/*
 * Scaled dot-product attention of one (sequence, head) unit, from
 * s->q/k/v into its columns of s->attn; each thread has its own scores.
 */
static void
attention_unit(void *ctx, int unit, int thread)
{
	const attention_task *t = ctx;
	cm_state   *s = t->s;
	int			d = t->cfg->hidden_size;
	int			hd = d / t->cfg->num_heads;
	int			q = unit / t->cfg->num_heads;
	int			h = unit % t->cfg->num_heads;
	size_t		r0 = (size_t) t->batch->start[q] * d;
	size_t		col = (size_t) h * hd;
	int			n = t->batch->len[q];
	float	   *scores = s->scores.p + (size_t) thread * t->batch->max_len * t->batch->max_len;
	float		scale = 1.0f / sqrtf((float) hd);

	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, hd,
				scale, s->q.p + r0 + col, d, s->k.p + r0 + col, d,
				0.0f, scores, n);
	cm_softmax_rows(scores, n, t->causal);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hd, n,
				1.0f, scores, n, s->v.p + r0 + col, d,
				0.0f, s->attn.p + r0 + col, d);
}

/*
 * Multi-head attention of s->q/k/v into s->attn, the (sequence, head)
 * units shared with the team's helper when there is enough of them.
 */
static void
attention(const cm_tower_config *cfg, cm_state *s, const cm_batch *batch, bool causal)
{
	attention_task task = {cfg, s, batch, causal};
	int			units = batch->n_seqs * cfg->num_heads;
	size_t		work = 0;

	for (int q = 0; q < batch->n_seqs; q++)
		work += (size_t) batch->len[q] * batch->len[q];
	work *= (size_t) 2 * cfg->hidden_size;	/* multiply-adds of both products */
	cm_gemm_team_run(work >= CM_ATTENTION_TEAM_MIN_WORK ? s->team : NULL,
					 attention_unit, &task, units);
}

cm_status
cm_transformer_forward(const cm_tower_config *cfg, const cm_layer_weights *layers,
					   cm_state *s, const cm_batch *batch, bool causal,
					   const cm_run_options *opt, cm_error *err)
{
	int			d = cfg->hidden_size;
	int			rows = batch->n_rows;
	cm_status	st;

	for (int l = 0; l < cfg->num_layers; l++)
	{
		const cm_layer_weights *w = &layers[l];

		if ((st = cm_check_cancel(opt, err)) != CM_OK)
			return st;

		cm_layer_norm(s->x.p, s->h.p, rows, d, w->ln1_w, w->ln1_b, cfg->layer_norm_eps);
		cm_linear(s->team, s->h.p, rows, d, w->q_w, w->q_b, s->q.p, d, false);
		cm_linear(s->team, s->h.p, rows, d, w->k_w, w->k_b, s->k.p, d, false);
		cm_linear(s->team, s->h.p, rows, d, w->v_w, w->v_b, s->v.p, d, false);
		attention(cfg, s, batch, causal);
		if (l == cfg->num_layers - 1 && batch->keep != NULL)
		{
			/*
			 * Past the last attention, rows do not mix: only the rows the
			 * caller pools need the rest.  Move them to the front (keep is
			 * ascending, so keep[i] >= i and forward copies are safe).
			 */
			for (int i = 0; i < batch->n_keep; i++)
				if (batch->keep[i] != i)
				{
					memcpy(s->attn.p + (size_t) i * d, s->attn.p + (size_t) batch->keep[i] * d,
						   (size_t) d * sizeof(float));
					memcpy(s->x.p + (size_t) i * d, s->x.p + (size_t) batch->keep[i] * d,
						   (size_t) d * sizeof(float));
				}
			rows = batch->n_keep;
		}
		cm_linear(s->team, s->attn.p, rows, d, w->o_w, w->o_b, s->x.p, d, true);
		cm_mlp_residual(cfg, w, s, rows);
	}
	return CM_OK;
}

void
cm_mlp_residual(const cm_tower_config *cfg, const cm_layer_weights *w, cm_state *s, int rows)
{
	int			d = cfg->hidden_size;
	int			ff = cfg->intermediate_size;

	cm_layer_norm(s->x.p, s->h.p, rows, d, w->ln2_w, w->ln2_b, cfg->layer_norm_eps);
	cm_linear(s->team, s->h.p, rows, d, w->fc1_w, w->fc1_b, s->ff.p, ff, false);
	cm_apply_activation(s->ff.p, (size_t) rows * ff, cfg->act);
	cm_linear(s->team, s->ff.p, rows, ff, w->fc2_w, w->fc2_b, s->x.p, d, true);
}
