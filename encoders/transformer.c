/*
 * transformer.c
 *	  The pre-LN transformer encoder layer shared by the text and vision
 *	  towers of every family.  Linear layers go through cm_linear: weights
 *	  read in place by gemm.c's kernels, or cblas_sgemm where its packing
 *	  pays off.
 *
 * Layer (as transformers' CLIPEncoderLayer):
 *	  x += out_proj(attention(layer_norm1(x)))
 *	  x += fc2(act(fc1(layer_norm2(x))))
 * Rows of every sequence in a batch are stacked so the projections and the
 * MLP are single GEMMs over all tokens; attention runs per sequence and head.
 *
 * On a team (crossmodal.threads > 1), a batch with enough rows is split by
 * whole sequences into parts that the threads claim, each running every
 * layer of its part on its own buffers (a lane): the threads meet once per
 * forward pass instead of at each of the ~7 products and row-wise steps of
 * every layer, so a thread the scheduler holds back (a busy machine) delays
 * only its own part, and the row-wise steps run in parallel too.  A single
 * caption or image shares each product instead (its rows are too few to
 * split, and its weights are read once rather than once per thread).
 */
#include "transformer.h"

#include "gemm.h"

#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
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
 * Attention is shared with a forward pass's team from this many
 * multiply-adds (one 50-token image: 3.8 million; one caption: 0.1).
 */
#define CM_ATTENTION_TEAM_MIN_WORK ((size_t) 1 << 20)

/*
 * A batch is split between threads, one part each, when each gets at least
 * this many rows (below, a product's x rows are too few to reuse each
 * weight slice well).  More parts than threads would balance a thread the
 * scheduler holds back, but every part reads (and packs) all the weights,
 * so each part added costs CPU time (bench/encoders/README.md).
 */
#define CM_SPLIT_MIN_ROWS 64

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

void
cm_lane_free(cm_lane *lane)
{
	free(lane->h.p);
	free(lane->q.p);
	free(lane->k.p);
	free(lane->v.p);
	free(lane->attn.p);
	free(lane->ff.p);
	free(lane->scores.p);
	free(lane->xr.p);
	memset(lane, 0, sizeof(*lane));
}

/* Rows of the sequences [first, first + n) of a batch. */
static int
rows_of(const cm_batch *batch, int first, int n)
{
	return batch->start[first + n - 1] + batch->len[first + n - 1] - batch->start[first];
}

/*
 * How a batch is split between a team's threads: n_parts parts of whole
 * sequences (part p: sequences [p * n_seqs / n_parts, (p + 1) * n_seqs /
 * n_parts)), or 0 parts when each product is shared instead.  The in-place
 * kernels must take every product: OpenBLAS's own threads (cm_linear's
 * fallback for many rows on AVX2) would run inside ours.
 */
static int
split_parts(cm_team *team, const cm_layer_weights *layers, const cm_batch *batch)
{
	int			threads = cm_team_threads(team);

	if (threads < 2 || batch->n_seqs < threads || batch->n_rows < threads * CM_SPLIT_MIN_ROWS)
		return 0;
	if (layers[0].q_w.type != CM_ELEM_BF16 && cm_gemm_best_path() < CM_GEMM_AVX512)
		return 0;
	return threads;
}

/* The most rows of a part of a split into n_parts. */
static int
max_part_rows(const cm_batch *batch, int n_parts)
{
	int			most = 0;

	for (int p = 0; p < n_parts; p++)
	{
		int			first = (int) ((int64_t) p * batch->n_seqs / n_parts);
		int			end = (int) ((int64_t) (p + 1) * batch->n_seqs / n_parts);
		int			r = rows_of(batch, first, end - first);

		most = r > most ? r : most;
	}
	return most;
}

/* floats rounded up to whole 64-byte lines */
static size_t
whole_lines(size_t n)
{
	return (n + 15) & ~(size_t) 15;
}

/*
 * A thread's attention scratch, in floats: the scores [max_len][max_len],
 * the head's k [max_len][head_dim] and v^T [head_dim][max_len], each from
 * a cache line, plus a line to align the first.
 */
static size_t
attention_slot(size_t max_len, size_t head_dim)
{
	return whole_lines(max_len * max_len) + max_len * whole_lines(head_dim) +
		head_dim * whole_lines(max_len) + 16;
}

/* A lane's buffers for rows rows, score slots for `slots` threads. */
static cm_status
reserve_lane(cm_lane *lane, const cm_tower_config *cfg, size_t rows, int max_len, int slots,
			 size_t xr_width, cm_error *err)
{
	size_t		rows_d,
				rows_ff,
				rows_xr,
				scores;
	cm_status	st;

	if (!cm_mul_size(rows, (size_t) cfg->hidden_size, &rows_d) ||
		!cm_mul_size(rows, (size_t) cfg->intermediate_size, &rows_ff) ||
		!cm_mul_size(rows, xr_width, &rows_xr) ||
		!cm_mul_size(attention_slot((size_t) max_len, (size_t) (cfg->hidden_size / cfg->num_heads)),
					 (size_t) slots, &scores))
		return cm_set_error(err, CM_ERR_LIMIT, "batch of %zu rows is too large", rows);
	if ((st = cm_buf_reserve(&lane->h, rows_d, err)) != CM_OK ||
		(st = cm_buf_reserve(&lane->q, rows_d, err)) != CM_OK ||
		(st = cm_buf_reserve(&lane->k, rows_d, err)) != CM_OK ||
		(st = cm_buf_reserve(&lane->v, rows_d, err)) != CM_OK ||
		(st = cm_buf_reserve(&lane->attn, rows_d, err)) != CM_OK ||
		(st = cm_buf_reserve(&lane->ff, rows_ff, err)) != CM_OK ||
		(st = cm_buf_reserve(&lane->scores, scores, err)) != CM_OK ||
		(st = cm_buf_reserve(&lane->xr, rows_xr, err)) != CM_OK)
		return st;
	return CM_OK;
}

cm_status
cm_state_reserve_tower(cm_state *s, const cm_tower_config *cfg, const cm_batch *batch,
					   int x_width, bool bf16, cm_error *err)
{
	size_t		rows_d,
				pooled;
	int			threads = cm_team_threads(s->team);
	size_t		xr_width = 0;
	int			parts;
	cm_status	st;

	if (bf16)
	{
		xr_width = (size_t) (cfg->intermediate_size > cfg->hidden_size ?
							 cfg->intermediate_size : cfg->hidden_size);
		if ((size_t) x_width > xr_width)
			xr_width = (size_t) x_width;
	}
	if (!cm_mul_size((size_t) batch->n_rows, (size_t) cfg->hidden_size, &rows_d) ||
		!cm_mul_size((size_t) batch->n_seqs, (size_t) cfg->hidden_size, &pooled))
		return cm_set_error(err, CM_ERR_LIMIT, "batch of %d rows is too large", batch->n_rows);
	if ((st = cm_buf_reserve(&s->x, rows_d, err)) != CM_OK ||
		(st = cm_buf_reserve(&s->pooled, pooled, err)) != CM_OK ||
		(st = reserve_lane(&s->lanes[0], cfg, (size_t) batch->n_rows, batch->max_len, threads,
						   xr_width, err)) != CM_OK)
		return st;
	parts = s->team != NULL ? s->split_parts : 0;
	if (parts > 0)
	{
		int			most = max_part_rows(batch, parts);

		for (int t = 1; t < threads; t++)
			if ((st = reserve_lane(&s->lanes[t], cfg, (size_t) most, batch->max_len, 1,
								   xr_width, err)) != CM_OK)
				return st;
	}
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
cm_forward_begin(cm_state *s, cm_team *team, cm_error *err)
{
	int			n_threads = openblas_get_num_threads();
	cm_status	st = cm_blas_prepare(n_threads, err);

	s->team = NULL;
	s->split_parts = 0;
	if (st != CM_OK)
		return st;
	/*
	 * Alone while the last team passes found the machine too busy for one
	 * (team.h); helpers that cannot have their buffers leave the pass to the
	 * caller too.
	 */
	n_threads = cm_team_advice_threads(&s->advice, n_threads, cm_monotonic_us());
	s->team = cm_team_start(team, n_threads, helper_blas_init) > 1 ? team : NULL;
	return CM_OK;
}

void
cm_forward_team_stop(cm_state *s)
{
	if (s->team != NULL)
	{
		double		wall_us,
					wait;

		cm_team_stop(s->team);
		wait = cm_team_wait_share(s->team, &wall_us);
		cm_team_advice_note(&s->advice, wait, wall_us, cm_monotonic_us());
	}
	s->team = NULL;
	s->split_parts = 0;
}

const char *
cm_model_kernels(const cm_model *model)
{
	switch (cm_gemm_best_path())
	{
		case CM_GEMM_AVX512_BF16:
			return model->precision == CM_PRECISION_BF16 ? "AVX-512 with AVX512_BF16" : "AVX-512";
		case CM_GEMM_AVX512:
			return model->precision == CM_PRECISION_BF16 ?
				"AVX-512 (no AVX512_BF16: bfloat16 widened to float32)" : "AVX-512";
		case CM_GEMM_AVX2:
			return model->precision == CM_PRECISION_BF16 ?
				"AVX2/FMA (no AVX512_BF16: bfloat16 widened to float32)" :
				"AVX2/FMA, and OpenBLAS above 64 rows";
		case CM_GEMM_PORTABLE:
			break;
	}
	return model->precision == CM_PRECISION_BF16 ? "portable C" : "OpenBLAS";
}

cm_mat
cm_linear_input(cm_team *team, const float *x, int rows, int in, cm_mat W, float *scratch)
{
	if (W.type == CM_ELEM_BF16)
		return cm_gemm_round_x(cm_gemm_best_path(), team, rows, in, x, (size_t) in, scratch);
	return cm_mat_f32(x, (size_t) in);
}

void
cm_linear(cm_team *team, cm_gemm_algo algo, cm_mat x, int rows, int in, cm_mat W,
		  const float *bias, float *y, int out, bool accumulate)
{
	cm_gemm_path path = cm_gemm_best_path();

	if (W.type != CM_ELEM_F32 || x.type != CM_ELEM_F32 || path >= CM_GEMM_AVX512 ||
		(path == CM_GEMM_AVX2 && rows <= CM_LINEAR_AVX2_MAX_ROWS))
	{
		/* W read in place, no packing. */
		cm_gemm(team, algo, rows, out, in, x, W, bias, y, (size_t) out, accumulate);
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
				1.0f, x.p, (int) x.ld, W.p, (int) W.ld, 1.0f, y, out);
}

void
cm_linear_f32(cm_team *team, cm_gemm_algo algo, cm_lane *lane, const float *x, int rows, int in,
			  cm_mat W, const float *bias, float *y, int out, bool accumulate)
{
	cm_linear(team, algo, cm_linear_input(team, x, rows, in, W, lane->xr.p), rows, in, W, bias,
			  y, out, accumulate);
}

/* Rows [row0, row0 + n_rows) of a batch: its sequences [first_seq, first_seq + n_seqs). */
typedef struct part
{
	const cm_batch *batch;
	int			first_seq;
	int			n_seqs;
	int			row0;
	int			n_rows;
} part;

/* One attention pass over the sequences and heads of a part. */
typedef struct attention_task
{
	const cm_tower_config *cfg;
	cm_lane    *lane;
	const part *pt;
	bool		causal;
} attention_task;

/*
 * Scaled dot-product attention of one (sequence, head) unit, from the
 * lane's q/k/v into its columns of attn; each thread has its own scratch.
 * The products go through cm_gemm on this thread alone: OpenBLAS would
 * start its own threads for a product this size (from 64 tokens) and they
 * would fight the team's for the CPUs.  k and v are copied to lines of
 * their own: an in-place product's sums depend on where W lies in a line,
 * and a head's bits must not depend on which thread's buffer it used.
 */
static void
attention_unit(void *ctx, int unit, int thread)
{
	const attention_task *t = ctx;
	cm_lane    *ln = t->lane;
	const cm_batch *batch = t->pt->batch;
	int			d = t->cfg->hidden_size;
	int			hd = d / t->cfg->num_heads;
	int			q = t->pt->first_seq + unit / t->cfg->num_heads;
	int			h = unit % t->cfg->num_heads;
	size_t		r0 = (size_t) (batch->start[q] - t->pt->row0) * d;
	size_t		col = (size_t) h * hd;
	int			n = batch->len[q];
	size_t		ldk = whole_lines((size_t) hd),
				ldv = whole_lines((size_t) n);
	uintptr_t	base = (uintptr_t) (ln->scores.p +
									(size_t) thread * attention_slot((size_t) batch->max_len, (size_t) hd));
	float	   *scores = (float *) ((base + 63) & ~(uintptr_t) 63);
	float	   *kc = scores + whole_lines((size_t) batch->max_len * batch->max_len);
	float	   *vt = kc + (size_t) batch->max_len * ldk;
	const float *k = ln->k.p + r0 + col;
	const float *v = ln->v.p + r0 + col;
	float		scale = 1.0f / sqrtf((float) hd);

	for (int j = 0; j < n; j++)
		memcpy(kc + (size_t) j * ldk, k + (size_t) j * d, (size_t) hd * sizeof(float));
	for (int j = 0; j < n; j++)
		for (int c = 0; c < hd; c++)
			vt[(size_t) c * ldv + j] = v[(size_t) j * d + c];
	cm_gemm(NULL, CM_GEMM_AUTO, n, n, hd, cm_mat_f32(ln->q.p + r0 + col, d), cm_mat_f32(kc, ldk),
			NULL, scores, n, false);
	for (size_t i = 0; i < (size_t) n * n; i++)
		scores[i] *= scale;
	cm_softmax_rows(scores, n, t->causal);
	cm_gemm(NULL, CM_GEMM_AUTO, n, hd, n, cm_mat_f32(scores, n), cm_mat_f32(vt, ldv), NULL,
			ln->attn.p + r0 + col, d, false);
}

/*
 * Multi-head attention of the lane's q/k/v into its attn, the (sequence,
 * head) units shared with the team (when given) if there is enough of them.
 */
static void
attention(const cm_tower_config *cfg, cm_team *team, cm_lane *lane, const part *pt, bool causal)
{
	attention_task task = {cfg, lane, pt, causal};
	int			units = pt->n_seqs * cfg->num_heads;
	size_t		work = 0;

	for (int q = pt->first_seq; q < pt->first_seq + pt->n_seqs; q++)
		work += (size_t) pt->batch->len[q] * pt->batch->len[q];
	work *= (size_t) 2 * cfg->hidden_size;	/* multiply-adds of both products */
	cm_team_run(work >= CM_ATTENTION_TEAM_MIN_WORK ? team : NULL, attention_unit, &task, units);
}

/*
 * The layers over one part, its rows at x (row 0 = the part's row0), on
 * lane's buffers; team (may be NULL) shares each product.  Polls for
 * cancellation when opt is given, else stops (returning CM_ERR_CANCELLED)
 * once *stop is set.
 */
static cm_status
part_forward(const cm_tower_config *cfg, const cm_layer_weights *layers, cm_team *team,
			 cm_lane *ln, float *x, const part *pt, bool causal, const cm_run_options *opt,
			 _Atomic bool *stop, cm_error *err)
{
	int			d = cfg->hidden_size;
	int			rows = pt->n_rows;
	const cm_batch *batch = pt->batch;

	/*
	 * How the products read W, chosen from the whole batch's rows: every
	 * part of a batch split between threads multiplies as the whole batch
	 * would, so an embedding is the same bits on any number of threads.
	 */
	cm_gemm_algo body = batch->n_rows >= CM_GEMM_PACK_MIN_ROWS ? CM_GEMM_PACKED : CM_GEMM_IN_PLACE;
	cm_status	st;

	for (int l = 0; l < cfg->num_layers; l++)
	{
		const cm_layer_weights *w = &layers[l];
		cm_gemm_algo tail = body;
		cm_mat		hx;

		if (opt != NULL && (st = cm_check_cancel(opt, err)) != CM_OK)
			return st;
		if (stop != NULL && atomic_load_explicit(stop, memory_order_relaxed))
			return CM_ERR_CANCELLED;

		cm_layer_norm(x, ln->h.p, rows, d, w->ln1_w, w->ln1_b, cfg->layer_norm_eps);
		/* q, k and v read the same x, rounded once */
		hx = cm_linear_input(team, ln->h.p, rows, d, w->q_w, ln->xr.p);
		cm_linear(team, body, hx, rows, d, w->q_w, w->q_b, ln->q.p, d, false);
		cm_linear(team, body, hx, rows, d, w->k_w, w->k_b, ln->k.p, d, false);
		cm_linear(team, body, hx, rows, d, w->v_w, w->v_b, ln->v.p, d, false);
		attention(cfg, team, ln, pt, causal);
		if (l == cfg->num_layers - 1 && batch->keep != NULL)
		{
			/*
			 * Past the last attention, rows do not mix: only the rows the
			 * caller pools need the rest.  Move them to the front (keep is
			 * ascending, so keep[i] >= i and forward copies are safe).
			 */
			for (int i = 0; i < pt->n_seqs; i++)
			{
				int			from = batch->keep[pt->first_seq + i] - pt->row0;

				if (from != i)
				{
					memcpy(ln->attn.p + (size_t) i * d, ln->attn.p + (size_t) from * d,
						   (size_t) d * sizeof(float));
					memcpy(x + (size_t) i * d, x + (size_t) from * d, (size_t) d * sizeof(float));
				}
			}
			rows = pt->n_seqs;

			/*
			 * However many they are, the pooled rows are multiplied in
			 * place, whether or not the batch is split.
			 */
			tail = CM_GEMM_IN_PLACE;
		}
		cm_linear_f32(team, tail, ln, ln->attn.p, rows, d, w->o_w, w->o_b, x, d, true);
		cm_mlp_residual(cfg, w, team, tail, ln, x, rows);
	}
	return CM_OK;
}

/* A batch split between a team's threads by whole sequences. */
typedef struct split_task
{
	const cm_tower_config *cfg;
	const cm_layer_weights *layers;
	cm_state   *s;
	const cm_batch *batch;
	bool		causal;
	const cm_run_options *opt;
	int			n_parts;
	_Atomic bool stop;			/* a part was cancelled: the others stop too */
	cm_error   *err;			/* filled by the caller's thread only */
} split_task;

static void
split_unit(void *ctx, int unit, int thread)
{
	split_task *t = ctx;
	const cm_batch *batch = t->batch;
	part		pt;

	pt.batch = batch;
	pt.first_seq = (int) ((int64_t) unit * batch->n_seqs / t->n_parts);
	pt.n_seqs = (int) ((int64_t) (unit + 1) * batch->n_seqs / t->n_parts) - pt.first_seq;
	pt.row0 = batch->start[pt.first_seq];
	pt.n_rows = rows_of(batch, pt.first_seq, pt.n_seqs);

	/* Only the caller's thread calls back into the caller (cancel, logging). */
	if (part_forward(t->cfg, t->layers, NULL, &t->s->lanes[thread],
					 t->s->x.p + (size_t) pt.row0 * t->cfg->hidden_size, &pt, t->causal,
					 thread == 0 ? t->opt : NULL, &t->stop, thread == 0 ? t->err : NULL) != CM_OK)
		atomic_store(&t->stop, true);
}

cm_status
cm_transformer_forward(const cm_tower_config *cfg, const cm_layer_weights *layers,
					   cm_state *s, const cm_batch *batch, bool causal,
					   const cm_run_options *opt, cm_error *err)
{
	int			d = cfg->hidden_size;
	split_task	task;
	int			kept = 0;

	if (s->split_parts == 0)
	{
		part		whole = {batch, 0, batch->n_seqs, 0, batch->n_rows};

		return part_forward(cfg, layers, s->team, &s->lanes[0], s->x.p, &whole, causal, opt,
							NULL, err);
	}

	task.cfg = cfg;
	task.layers = layers;
	task.s = s;
	task.batch = batch;
	task.causal = causal;
	task.opt = opt;
	task.n_parts = s->split_parts;
	atomic_init(&task.stop, false);
	task.err = err;
	cm_team_run(s->team, split_unit, &task, task.n_parts);
	if (atomic_load(&task.stop))
	{
		/* a part on the caller's thread that saw the request has set err */
		if (err != NULL && err->status != CM_ERR_CANCELLED)
			cm_set_error(err, CM_ERR_CANCELLED, "cancelled by the caller");
		return CM_ERR_CANCELLED;
	}
	if (batch->keep == NULL)
		return CM_OK;
	/* Each part left its pooled rows at its front; gather them to rows 0 .. n_seqs - 1. */
	for (int p = 0; p < task.n_parts; p++)
	{
		int			first = (int) ((int64_t) p * batch->n_seqs / task.n_parts);
		int			end = (int) ((int64_t) (p + 1) * batch->n_seqs / task.n_parts);
		int			row0 = batch->start[first];

		for (int i = 0; i < end - first; i++, kept++)
			if (row0 + i != kept)
				memmove(s->x.p + (size_t) kept * d, s->x.p + (size_t) (row0 + i) * d,
						(size_t) d * sizeof(float));
	}
	return CM_OK;
}

void
cm_mlp_residual(const cm_tower_config *cfg, const cm_layer_weights *w, cm_team *team,
				cm_gemm_algo algo, cm_lane *ln, float *x, int rows)
{
	int			d = cfg->hidden_size;
	int			ff = cfg->intermediate_size;

	cm_layer_norm(x, ln->h.p, rows, d, w->ln2_w, w->ln2_b, cfg->layer_norm_eps);
	cm_linear_f32(team, algo, ln, ln->h.p, rows, d, w->fc1_w, w->fc1_b, ln->ff.p, ff, false);
	cm_apply_activation(ln->ff.p, (size_t) rows * ff, cfg->act);
	cm_linear_f32(team, algo, ln, ln->ff.p, rows, ff, w->fc2_w, w->fc2_b, x, d, true);
}

/*
 * Decide how the coming forward pass over batch uses the team (sets
 * s->split_parts); call after cm_forward_begin, before reserving.
 */
void
cm_forward_plan(cm_state *s, const cm_layer_weights *layers, const cm_batch *batch)
{
	s->split_parts = split_parts(s->team, layers, batch);
}
