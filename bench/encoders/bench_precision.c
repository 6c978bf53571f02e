/*
 * bench_precision.c: the reduced-precision path (CM_PRECISION_BF16) against float32 on one model, in one
 * process: fidelity and speed.
 *
 * Fidelity: raw features of 256 captions (10 token ids from a fixed hash, as bench_encoders.c makes them)
 * and 64 images (hashed pixels) at BF16 against F32: the worst and mean cosine, and how many fall below the
 * acceptance bar of 0.9999; then retrieval over that sample with F32's and BF16's embeddings: each caption
 * queries the images and the other captions, each image the captions, and a query's top-1 and top-10 (in
 * order) are compared between the two.  The same comparisons between F32 in batches of 32 and F32 one
 * input at a time (the products then sum in another order) show how much float32 rounding alone moves:
 * random inputs to a random model give near-tied neighbours, whose order any rounding can swap.
 *
 * Speed: one 10-token caption, 32 captions, 32 images, timed F32 and BF16 alternately (interleaved A/B, so
 * that a busy machine slows both alike), median of the repeats, at each thread count.
 *
 * Output: "RESULT key value" lines on stdout (report.py reads them), notes on stderr.
 *
 * usage: bench_precision MODEL_DIR [--threads 1,2] [--repeats 5] [--no-timing]
 */
#include "crossmodal_encoder.h"
#include "bench_inputs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_TEXTS 256
#define N_IMAGES 64
#define MAX_TOKENS 1024
#define TOP_K 10
#define COS_BAR 0.9999

typedef struct Side
{
	cm_model   *model;
	cm_state   *state;
	cm_model_info info;
	float	   *texts;			/* [N_TEXTS][embed_dim], unit vectors */
	float	   *images;			/* [N_IMAGES][embed_dim] */
} Side;

static void
die(const char *what, const cm_error *err)
{
	fprintf(stderr, "bench_precision: %s: %s\n", what, err ? err->message : "failed");
	exit(1);
}

static void *
xmalloc(size_t n)
{
	void	   *p = malloc(n ? n : 1);

	if (p == NULL)
		die("out of memory", NULL);
	return p;
}

static void
load_side(Side *s, const char *dir, cm_precision precision)
{
	cm_load_options opt = {.precision = precision};
	cm_error	err = {0};

	s->model = cm_model_load(dir, &opt, &err);
	if (s->model == NULL)
		die(dir, &err);
	cm_model_get_info(s->model, &s->info);
	s->state = cm_state_new(s->model, &err);
	if (s->state == NULL)
		die("cm_state_new", &err);
}

/* Inputs shared by both sides. */
typedef struct Inputs
{
	int			tokens;			/* per caption */
	int32_t    *ids;			/* [N_TEXTS][tokens] */
	const int32_t **rows;
	int		   *n_ids;
	float	   *pixels;			/* [N_IMAGES][3][S][S] */
} Inputs;

/*
 * Captions: BOS, 8 ordinary ids, EOS; or, for a model that pads every text (the empty text has more than
 * two ids), 8 ordinary ids then the empty text's ids up to every position.
 */
static void
make_inputs(const Side *s, Inputs *in)
{
	int32_t		empty[MAX_TOKENS];
	int			n_empty = 0;
	cm_error	err = {0};
	size_t		per = (size_t) 3 * s->info.image_size * s->info.image_size;
	bool		padded;
	uint32_t	ordinary;

	if (cm_tokenize(s->model, "", 0, empty, MAX_TOKENS, &n_empty, &err) != CM_OK || n_empty < 2 ||
		(n_empty > 2 && n_empty <= CONTENT_TOKENS))
		die("tokenize the empty text", &err);
	padded = n_empty > 2;
	ordinary = padded ? (uint32_t) s->info.vocab_size
		: (uint32_t) (empty[0] < empty[1] ? empty[0] : empty[1]);
	if (ordinary == 0)			/* special ids first in the vocabulary */
		ordinary = (uint32_t) s->info.vocab_size;
	in->tokens = padded ? n_empty : CONTENT_TOKENS + 2;
	in->ids = xmalloc((size_t) N_TEXTS * in->tokens * sizeof(int32_t));
	in->rows = xmalloc(N_TEXTS * sizeof(*in->rows));
	in->n_ids = xmalloc(N_TEXTS * sizeof(int));
	for (int t = 0; t < N_TEXTS; t++)
	{
		int32_t    *row = in->ids + (size_t) t * in->tokens;

		fill_caption(row, t, in->tokens, padded, empty, ordinary);
		in->rows[t] = row;
		in->n_ids[t] = in->tokens;
	}
	in->pixels = xmalloc(per * N_IMAGES * sizeof(float));
	fill_pixels(in->pixels, per * N_IMAGES);
}

static void
normalize_rows(float *x, int n, int d)
{
	for (int i = 0; i < n; i++)
	{
		double		ss = 0;

		for (int c = 0; c < d; c++)
			ss += (double) x[(size_t) i * d + c] * x[(size_t) i * d + c];
		ss = ss > 0 ? 1.0 / sqrt(ss) : 0.0;
		for (int c = 0; c < d; c++)
			x[(size_t) i * d + c] = (float) (x[(size_t) i * d + c] * ss);
	}
}

/* Raw features of every input in batches of `batch`, normalised here (the cosine is scale-free). */
static void
encode_side(Side *s, const Inputs *in, int batch)
{
	cm_run_options raw = {.raw_features = true, .batch_size = batch};
	cm_error	err = {0};
	int			d = s->info.embed_dim;

	s->texts = xmalloc((size_t) N_TEXTS * d * sizeof(float));
	s->images = xmalloc((size_t) N_IMAGES * d * sizeof(float));
	if (cm_encode_token_ids(s->model, s->state, in->rows, in->n_ids, N_TEXTS, &raw, s->texts, NULL,
							&err) != CM_OK ||
		cm_encode_pixels(s->model, s->state, in->pixels, N_IMAGES, &raw, s->images, &err) != CM_OK)
		die("encode", &err);
	normalize_rows(s->texts, N_TEXTS, d);
	normalize_rows(s->images, N_IMAGES, d);
}

static double
dot(const float *a, const float *b, int d)
{
	double		s = 0;

	for (int c = 0; c < d; c++)
		s += (double) a[c] * b[c];
	return s;
}

static void
cosines(const char *label, const char *what, const float *a, const float *b, int n, int d)
{
	double		worst = 1.0,
				sum = 0.0;
	int			below = 0;

	for (int i = 0; i < n; i++)
	{
		double		c = dot(a + (size_t) i * d, b + (size_t) i * d, d);

		worst = c < worst ? c : worst;
		sum += c;
		below += c <= COS_BAR;
	}
	printf("RESULT fid_%s_%s_n %d\n", label, what, n);
	printf("RESULT fid_%s_%s_cos_min %.7f\n", label, what, worst);
	printf("RESULT fid_%s_%s_cos_mean %.7f\n", label, what, sum / n);
	printf("RESULT fid_%s_%s_below_bar %d\n", label, what, below);
	fprintf(stderr, "%-9s %-7s vs F32: cosine worst %.7f, mean %.7f; %d of %d at or below %.4f\n", label, what,
			worst, sum / n, below, n, COS_BAR);
}

/* Indices of the k best of scores[n] (descending), ties by index. */
static void
top_k(const double *scores, int n, int k, int *out)
{
	for (int j = 0; j < k; j++)
	{
		int			best = -1;

		for (int i = 0; i < n; i++)
		{
			bool		taken = false;

			for (int t = 0; t < j && !taken; t++)
				taken = out[t] == i;
			if (!taken && (best < 0 || scores[i] > scores[best]))
				best = i;
		}
		out[j] = best;
	}
}

/*
 * Each of nq queries against the nc candidates (skipping candidate q itself when same_set): how often the
 * top-1 and the ordered top-10 agree between F32's and BF16's embeddings.
 */
static void
retrieval(const char *label, const char *what, const float *q32, const float *c32, const float *q16, const float *c16, int nq,
		  int nc, int d, bool same_set)
{
	double	   *s32 = xmalloc((size_t) nc * sizeof(double)),
			   *s16 = xmalloc((size_t) nc * sizeof(double));
	int			k = nc - (same_set ? 1 : 0) < TOP_K ? nc - (same_set ? 1 : 0) : TOP_K;
	int			same1 = 0,
				samek = 0,
				overlap = 0;

	for (int q = 0; q < nq; q++)
	{
		int			t32[TOP_K],
					t16[TOP_K];
		bool		all = true;

		for (int c = 0; c < nc; c++)
		{
			bool		self = same_set && c == q;

			s32[c] = self ? -INFINITY : dot(q32 + (size_t) q * d, c32 + (size_t) c * d, d);
			s16[c] = self ? -INFINITY : dot(q16 + (size_t) q * d, c16 + (size_t) c * d, d);
		}
		top_k(s32, nc, k, t32);
		top_k(s16, nc, k, t16);
		for (int j = 0; j < k; j++)
		{
			all = all && t32[j] == t16[j];
			for (int i = 0; i < k; i++)
				overlap += t32[j] == t16[i];
		}
		same1 += t32[0] == t16[0];
		samek += all;
	}
	printf("RESULT rank_%s_%s_queries %d\n", label, what, nq);
	printf("RESULT rank_%s_%s_top1_same %d\n", label, what, same1);
	printf("RESULT rank_%s_%s_top%d_same %d\n", label, what, TOP_K, samek);
	printf("RESULT rank_%s_%s_top%d_overlap %.4f\n", label, what, TOP_K, (double) overlap / ((double) nq * k));
	fprintf(stderr, "%-9s %-10s: top-1 the same for %d of %d queries, top-%d in order for %d, "
			"top-%d sets overlap %.1f%%\n", label, what, same1, nq, k, samek, k, 100.0 * overlap / ((double) nq * k));
	free(s32);
	free(s16);
}

typedef enum Case
{
	CASE_CAPTION,
	CASE_TEXTS32,
	CASE_IMAGES32
} Case;

static const char *const case_keys[] = {"text_b1", "text_b32", "image_b32"};

static void
run_case(Side *s, const Inputs *in, Case c, float *out)
{
	cm_run_options opt = {.batch_size = 32};
	cm_error	err = {0};
	cm_status	st;

	if (c == CASE_IMAGES32)
		st = cm_encode_pixels(s->model, s->state, in->pixels, 32, &opt, out, &err);
	else
		st = cm_encode_token_ids(s->model, s->state, in->rows, in->n_ids, c == CASE_CAPTION ? 1 : 32, &opt,
								 out, NULL, &err);
	if (st != CM_OK)
		die(case_keys[c], &err);
}

static double
median(double *v, int n)
{
	qsort(v, (size_t) n, sizeof(double), compare_double);
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* F32 and BF16 alternately; the caption case repeats 20 times as often (it is short). */
static void
timing(Side sides[2], const Inputs *in, int threads, int repeats)
{
	float	   *out = xmalloc((size_t) 32 * sides[0].info.embed_dim * sizeof(float));

	cm_set_num_threads(threads);
	for (int c = CASE_CAPTION; c <= CASE_IMAGES32; c++)
	{
		int			n = c == CASE_CAPTION ? 20 * repeats : repeats;
		double	   *t[2] = {xmalloc((size_t) n * sizeof(double)), xmalloc((size_t) n * sizeof(double))};
		double		med[2];

		for (int p = 0; p < 2; p++)
			run_case(&sides[p], in, (Case) c, out);	/* warm-up */
		for (int r = 0; r < n; r++)
			for (int p = 0; p < 2; p++)
			{
				int			side = (r & 1) ? 1 - p : p;	/* alternate which goes first */
				double		t0 = now_seconds();

				run_case(&sides[side], in, (Case) c, out);
				t[side][r] = now_seconds() - t0;
			}
		for (int p = 0; p < 2; p++)
		{
			med[p] = median(t[p], n);
			printf("RESULT ab_%s_t%d_%s_ms %.3f\n", case_keys[c], threads, p == 0 ? "f32" : "bf16",
				   med[p] * 1e3);
		}
		fprintf(stderr, "threads %d %-9s: F32 %8.2f ms, BF16 %8.2f ms (median of %d, interleaved): BF16 %.2fx\n",
				threads, case_keys[c], med[0] * 1e3, med[1] * 1e3, n, med[0] / med[1]);
		free(t[0]);
		free(t[1]);
		fflush(stdout);
	}
	free(out);
}

int
main(int argc, char **argv)
{
	const char *dir = NULL;
	const char *thread_list = "1,2";
	int			repeats = 5;
	bool		timed = true;
	Side		sides[2] = {{0}},
				alone = {0};
	Inputs		in = {0};
	int			d;

	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
			thread_list = argv[++i];
		else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc)
			repeats = atoi(argv[++i]);
		else if (strcmp(argv[i], "--no-timing") == 0)
			timed = false;
		else if (argv[i][0] != '-' && dir == NULL)
			dir = argv[i];
		else
			dir = NULL, i = argc;
	}
	if (dir == NULL || repeats < 1)
	{
		fprintf(stderr, "usage: %s MODEL_DIR [--threads 1,2] [--repeats 5] [--no-timing]\n", argv[0]);
		return 2;
	}

	cm_set_num_threads(1);
	load_side(&sides[0], dir, CM_PRECISION_F32);
	load_side(&sides[1], dir, CM_PRECISION_BF16);
	d = sides[0].info.embed_dim;
	printf("RESULT prec_model %s\n", dir);
	printf("RESULT prec_kernels %s\n", sides[1].info.kernels);
	printf("RESULT prec_f32_private_weight_bytes %lld\n", (long long) sides[0].info.private_weight_bytes);
	printf("RESULT prec_bf16_private_weight_bytes %lld\n", (long long) sides[1].info.private_weight_bytes);
	fprintf(stderr, "%s: %s weights; BF16 products on %s; weights private to the process: F32 %lld bytes, "
			"BF16 %lld bytes\n", dir, sides[0].info.weight_dtype, sides[1].info.kernels,
			(long long) sides[0].info.private_weight_bytes, (long long) sides[1].info.private_weight_bytes);

	make_inputs(&sides[0], &in);
	for (int p = 0; p < 2; p++)
		encode_side(&sides[p], &in, 32);
	alone.model = sides[0].model;
	alone.state = sides[0].state;
	alone.info = sides[0].info;
	encode_side(&alone, &in, 1);
	for (int v = 0; v < 2; v++)
	{
		const char *label = v == 0 ? "bf16" : "f32alone";
		const Side *o = v == 0 ? &sides[1] : &alone;

		cosines(label, "texts", sides[0].texts, o->texts, N_TEXTS, d);
		cosines(label, "images", sides[0].images, o->images, N_IMAGES, d);
		retrieval(label, "text2image", sides[0].texts, sides[0].images, o->texts, o->images, N_TEXTS,
				  N_IMAGES, d, false);
		retrieval(label, "image2text", sides[0].images, sides[0].texts, o->images, o->texts, N_IMAGES,
				  N_TEXTS, d, false);
		retrieval(label, "text2text", sides[0].texts, sides[0].texts, o->texts, o->texts, N_TEXTS, N_TEXTS, d,
				  true);
	}
	free(alone.texts);
	free(alone.images);
	fflush(stdout);

	for (const char *p = thread_list; timed && *p;)
	{
		char	   *end;
		int			threads = (int) strtol(p, &end, 10);

		if (end == p || threads < 1)
		{
			fprintf(stderr, "bench_precision: bad --threads list \"%s\"\n", thread_list);
			return 2;
		}
		p = *end == ',' ? end + 1 : end;
		timing(sides, &in, threads, repeats);
	}

	for (int p = 0; p < 2; p++)
	{
		free(sides[p].texts);
		free(sides[p].images);
		cm_state_free(sides[p].state);
		cm_model_free(sides[p].model);
	}
	free(in.ids);
	free(in.rows);
	free(in.n_ids);
	free(in.pixels);
	return 0;
}
