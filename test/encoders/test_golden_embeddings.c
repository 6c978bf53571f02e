/*
 * test_golden_embeddings.c
 *	  The runtime against transformers' outputs for the two golden models:
 *	  text features from the golden token ids, image features from the golden
 *	  pixel tensors, hidden states, logit scale, batching, normalisation,
 *	  cancellation, several threads on one model, and end to end from strings
 *	  and image files.
 *
 * Features are compared unnormalised (raw_features), as the reference stores
 * them: cosine > 0.99999 and max |error| < 1e-4 x max |reference|.
 */
#include <pthread.h>

#include "crossmodal_encoder.h"
#include "runtime_test_util.h"
#include "safetensors.h"

#define GOLDEN "test/golden"
#define MAX_DIM 128
#define MAX_TEXTS 32
#define MAX_IDS 77

#define COS_MIN 0.99999
#define REL_ERR_MAX 1e-4

/*
 * From image files through the runtime's own decoder and resizer, against
 * the reference computed from PIL's pixels: every golden image, both models.
 * Worst measured 0.9999952 (portrait_240x320_q92.jpg, the f32 model; JPEG
 * IDCT rounding differs from libjpeg's).
 */
#define FILE_COS_MIN 0.99999

static const char *const model_names[] = {"tiny-clip-quickgelu-f32", "tiny-clip-gelu-p16-f16"};

typedef struct golden_texts
{
	int			n;
	int32_t		ids[MAX_TEXTS][MAX_IDS];
	int			n_ids[MAX_TEXTS];
	const int32_t *rows[MAX_TEXTS];
	float		embeds[MAX_TEXTS][MAX_DIM];
	const char *strings[MAX_TEXTS];
} golden_texts;

static int
load_golden_texts(const cJSON *root, const char *model, int dim, golden_texts *g)
{
	const char *ids_path[] = {"models", model, "token_ids", "CLIPTokenizer", NULL};
	const char *emb_path[] = {"models", model, "text_embeds", NULL};
	const cJSON *ids = rt_json_path(root, ids_path);
	const cJSON *embs = rt_json_path(root, emb_path);
	const cJSON *texts = cJSON_GetObjectItemCaseSensitive(root, "texts");
	const cJSON *e;
	int			i = 0;

	if (!cJSON_IsArray(ids) || !cJSON_IsArray(embs) || !cJSON_IsArray(texts) ||
		cJSON_GetArraySize(ids) > MAX_TEXTS || cJSON_GetArraySize(ids) != cJSON_GetArraySize(embs))
		return 0;
	g->n = cJSON_GetArraySize(ids);
	cJSON_ArrayForEach(e, ids)
	{
		const cJSON *v;
		int			k = 0;

		cJSON_ArrayForEach(v, e)
		{
			if (k >= MAX_IDS)
				return 0;
			g->ids[i][k++] = (int32_t) v->valuedouble;
		}
		g->n_ids[i] = k;
		g->rows[i] = g->ids[i];
		if (rt_json_floats(cJSON_GetArrayItem(embs, i), g->embeds[i], MAX_DIM) != dim)
			return 0;
		g->strings[i] = cJSON_GetArrayItem(texts, i)->valuestring;
		i++;
	}
	return 1;
}

static void
check_info(const cJSON *root, const char *name, const cm_model *m)
{
	const char *ls_path[] = {"models", name, "logit_scale", NULL};
	const char *cfg_proj[] = {"models", name, "config", "projection_dim", NULL};
	const char *cfg_img[] = {"models", name, "config", "vision_config", "image_size", NULL};
	const cJSON *ls = rt_json_path(root, ls_path);
	cm_model_info info;

	cm_model_get_info(m, &info);
	RT_CHECK(cJSON_IsNumber(ls) && fabs(info.logit_scale - ls->valuedouble) <= 1e-6 * ls->valuedouble,
			 "%s: logit_scale %.9g, expected %.9g", name, info.logit_scale, ls ? ls->valuedouble : 0);
	RT_CHECK(info.embed_dim == rt_json_path(root, cfg_proj)->valueint, "%s: embed_dim %d", name, info.embed_dim);
	RT_CHECK(info.image_size == rt_json_path(root, cfg_img)->valueint, "%s: image_size %d", name, info.image_size);
	RT_CHECK(info.max_tokens == 77, "%s: max_tokens %d", name, info.max_tokens);
	RT_CHECK(strcmp(info.weight_dtype, strstr(name, "f16") ? "F16" : "F32") == 0,
			 "%s: weight dtype %s", name, info.weight_dtype);
	RT_CHECK(info.n_params > 0, "%s: parameter count %lld", name, (long long) info.n_params);
	printf("  %s: embed %d, image %d, params %lld, %s, logit_scale %.6g\n", name, info.embed_dim,
		   info.image_size, (long long) info.n_params, info.weight_dtype, info.logit_scale);
}

typedef struct log_count
{
	int			truncated;
} log_count;

static void
count_log(void *ctx, int level, const char *message)
{
	if (level == CM_LOG_DEBUG && strstr(message, "truncated") != NULL)
		((log_count *) ctx)->truncated++;
}

static void
check_texts(const cJSON *root, const char *name, const cm_model *m, cm_state *st, int dim,
			int text_hidden)
{
	static golden_texts g;
	static float out_buf[MAX_TEXTS * MAX_DIM];
	static float single[MAX_DIM];
	static float norm_buf[MAX_TEXTS * MAX_DIM];
	float	   *hidden;
	cm_run_options raw = {.raw_features = true};
	cm_error	err = {0};
	cm_status	s;
	double		worst_cos = 1,
				worst_err = 0;
	size_t		total_ids = 0;

	RT_CHECK(load_golden_texts(root, name, dim, &g), "%s: golden texts readable", name);
	if (g.n == 0)
		return;
	for (int i = 0; i < g.n; i++)
		total_ids += (size_t) g.n_ids[i];
	hidden = malloc(total_ids * (size_t) text_hidden * sizeof(float));

	/* All texts in one batch, with hidden states. */
	s = cm_encode_token_ids(m, st, g.rows, g.n_ids, g.n, &raw, out_buf, hidden, &err);
	RT_CHECK(s == CM_OK, "%s: encode token ids: %s", name, err.message);
	for (int i = 0; i < g.n && s == CM_OK; i++)
	{
		double		c = rt_cosine((out_buf + (size_t) i * dim), g.embeds[i], dim);
		double		e = rt_rel_max_err((out_buf + (size_t) i * dim), g.embeds[i], dim);

		worst_cos = c < worst_cos ? c : worst_cos;
		worst_err = e > worst_err ? e : worst_err;
		RT_CHECK(c > COS_MIN && e < REL_ERR_MAX, "%s: text %d: cosine %.9f, rel max err %.3g", name, i, c, e);
	}
	printf("  %s: %d texts from token ids: worst cosine %.9f, worst rel max err %.3g\n",
		   name, g.n, worst_cos, worst_err);

	/* Hidden states after the final layer norm, texts 0 and 1. */
	{
		const char *hp[] = {"models", name, "text_last_hidden_state_first2", NULL};
		const cJSON *h2 = rt_json_path(root, hp);
		size_t		offset = 0;
		double		hw_cos = 1,
					hw_err = 0;

		RT_CHECK(cJSON_GetArraySize(h2) == 2, "%s: golden hidden states present", name);
		for (int t = 0; t < 2 && s == CM_OK && h2; t++)
		{
			const cJSON *seq = cJSON_GetArrayItem(h2, t);

			RT_CHECK(cJSON_GetArraySize(seq) == g.n_ids[t], "%s: hidden %d length %d vs %d ids",
					 name, t, cJSON_GetArraySize(seq), g.n_ids[t]);
			for (int p = 0; p < g.n_ids[t] && p < cJSON_GetArraySize(seq); p++)
			{
				float		ref[MAX_DIM * 4];
				int			n = rt_json_floats(cJSON_GetArrayItem(seq, p), ref, MAX_DIM * 4);
				const float *mine = hidden + offset + (size_t) p * text_hidden;
				double		c,
							e;

				RT_CHECK(n == text_hidden, "%s: hidden width %d", name, n);
				if (n != text_hidden)
					break;
				c = rt_cosine(mine, ref, n);
				e = rt_rel_max_err(mine, ref, n);
				hw_cos = c < hw_cos ? c : hw_cos;
				hw_err = e > hw_err ? e : hw_err;
				RT_CHECK(c > COS_MIN && e < REL_ERR_MAX, "%s: hidden text %d pos %d: cosine %.9f err %.3g",
						 name, t, p, c, e);
			}
			offset += (size_t) g.n_ids[t] * text_hidden;
		}
		printf("  %s: last_hidden_state texts 0-1: worst cosine %.9f, worst rel max err %.3g\n",
			   name, hw_cos, hw_err);
	}
	free(hidden);

	/* One at a time (a different GEMM shape) agrees with the batch. */
	for (int i = 0; i < g.n; i++)
	{
		s = cm_encode_token_ids(m, st, &g.rows[i], &g.n_ids[i], 1, &raw, single, NULL, &err);
		RT_CHECK(s == CM_OK && rt_rel_max_err(single, (out_buf + (size_t) i * dim), dim) < 1e-5,
				 "%s: text %d alone differs from the batch (%.3g)", name, i,
				 rt_rel_max_err(single, (out_buf + (size_t) i * dim), dim));
	}

	/* Small batches (chunking) and the default, normalised output. */
	{
		cm_run_options small = {.batch_size = 5};

		s = cm_encode_token_ids(m, NULL, g.rows, g.n_ids, g.n, &small, norm_buf, NULL, &err);
		RT_CHECK(s == CM_OK, "%s: chunked encode: %s", name, err.message);
		for (int i = 0; i < g.n && s == CM_OK; i++)
		{
			double		nrm = rt_norm((out_buf + (size_t) i * dim), dim);
			float		expect[MAX_DIM];

			for (int k = 0; k < dim; k++)
				expect[k] = (float) ((out_buf + (size_t) i * dim)[k] / nrm);
			RT_CHECK(fabs(rt_norm((norm_buf + (size_t) i * dim), dim) - 1.0) < 1e-6, "%s: text %d not unit length", name, i);
			RT_CHECK(rt_rel_max_err((norm_buf + (size_t) i * dim), expect, dim) < 1e-5, "%s: text %d normalised differs", name, i);
		}
	}

	/* End to end: strings through the tokenizer equal the token-id path. */
	{
		static float strings_buf[MAX_TEXTS * MAX_DIM];

		for (int i = 0; i < g.n; i++)
		{
			int32_t		ids[MAX_IDS];
			int			n_ids = 0;

			s = cm_tokenize(m, g.strings[i], strlen(g.strings[i]), ids, MAX_IDS, &n_ids, &err);
			RT_CHECK(s == CM_OK && n_ids == g.n_ids[i] &&
					 memcmp(ids, g.ids[i], (size_t) n_ids * sizeof(int32_t)) == 0,
					 "%s: text %d tokenizes differently from CLIPTokenizer", name, i);
		}
		int			full = 0;
		log_count	logs = {0};
		cm_run_options raw_log = {.raw_features = true,.log = count_log,.log_ctx = &logs};

		for (int i = 0; i < g.n; i++)
			full += g.n_ids[i] == MAX_IDS;
		s = cm_encode_texts(m, st, g.strings, NULL, g.n, &raw_log, strings_buf, &err);
		RT_CHECK(s == CM_OK, "%s: encode texts: %s", name, err.message);
		RT_CHECK(full > 0 && logs.truncated == full, "%s: %d truncation notes for %d full texts",
				 name, logs.truncated, full);
		/* Same batch through the token-id entry point: identical bits. */
		s = cm_encode_token_ids(m, st, g.rows, g.n_ids, g.n, &raw, norm_buf, NULL, &err);
		RT_CHECK(s == CM_OK, "%s: encode token ids: %s", name, err.message);
		for (int i = 0; i < g.n && s == CM_OK; i++)
			RT_CHECK(memcmp(strings_buf + (size_t) i * dim, norm_buf + (size_t) i * dim, (size_t) dim * sizeof(float)) == 0,
					 "%s: text %d from its string differs from its token ids", name, i);
	}
}

static int
load_pixels(const cm_safetensors *px, const char *model, const char *image, int size, const float **out)
{
	char		key[256];
	const cm_tensor_view *t;

	snprintf(key, sizeof(key), "%s/%s", model, image);
	t = cm_safetensors_find(px, key);
	if (t == NULL || t->dtype != CM_DTYPE_F32 || t->n_elements != 3LL * size * size)
		return 0;
	*out = t->data;
	return 1;
}

static void
check_images(const cJSON *root, const char *name, const cm_model *m, cm_state *st, int dim,
			 int size, const cm_safetensors *px)
{
	const cJSON *images = cJSON_GetObjectItemCaseSensitive(root, "images");
	int			n = cJSON_GetArraySize(images);
	size_t		per = (size_t) 3 * size * size;
	float	   *pixels = malloc(per * (size_t) n * sizeof(float));
	float	   *out = malloc((size_t) n * dim * sizeof(float));
	float	   *single = malloc((size_t) dim * sizeof(float));
	float	   *ref = malloc((size_t) n * dim * sizeof(float));
	cm_run_options raw = {.raw_features = true};
	cm_error	err = {0};
	cm_status	s;
	double		worst_cos = 1,
				worst_err = 0;

	for (int i = 0; i < n; i++)
	{
		const char *img = cJSON_GetArrayItem(images, i)->valuestring;
		const char *ep[] = {"models", name, "image_embeds", img, NULL};
		const float *p = NULL;

		RT_CHECK(load_pixels(px, name, img, size, &p), "%s/%s: golden pixels", name, img);
		RT_CHECK(rt_json_floats(rt_json_path(root, ep), ref + (size_t) i * dim, dim) == dim,
				 "%s/%s: golden embedding", name, img);
		if (p != NULL)
			memcpy(pixels + (size_t) i * per, p, per * sizeof(float));
	}

	s = cm_encode_pixels(m, st, pixels, n, &raw, out, &err);
	RT_CHECK(s == CM_OK, "%s: encode pixels: %s", name, err.message);
	for (int i = 0; i < n && s == CM_OK; i++)
	{
		double		c = rt_cosine(out + (size_t) i * dim, ref + (size_t) i * dim, dim);
		double		e = rt_rel_max_err(out + (size_t) i * dim, ref + (size_t) i * dim, dim);

		worst_cos = c < worst_cos ? c : worst_cos;
		worst_err = e > worst_err ? e : worst_err;
		RT_CHECK(c > COS_MIN && e < REL_ERR_MAX, "%s: image %d: cosine %.9f, rel max err %.3g", name, i, c, e);

		s = cm_encode_pixels(m, st, pixels + (size_t) i * per, 1, &raw, single, &err);
		RT_CHECK(s == CM_OK && rt_rel_max_err(single, out + (size_t) i * dim, dim) < 1e-5,
				 "%s: image %d alone differs from the batch", name, i);
	}
	printf("  %s: %d images from pixel_values: worst cosine %.9f, worst rel max err %.3g\n",
		   name, n, worst_cos, worst_err);

	/*
	 * End to end from the image files.  The decoder and resizer round
	 * differently from PIL (the image helper's tests bound the pixel
	 * difference); the embedding must still match the reference closely.
	 */
	{
		double		file_worst = 1;
		const char *worst_name = "";

		for (int i = 0; i < n; i++)
		{
			const char *img = cJSON_GetArrayItem(images, i)->valuestring;
			char		path[512];
			size_t		len = 0;
			unsigned char *bytes;
			const unsigned char *one;

			snprintf(path, sizeof(path), GOLDEN "/images/%s", img);
			bytes = (unsigned char *) rt_read_file(path, &len);
			RT_CHECK(bytes != NULL, "read %s", path);
			if (bytes == NULL)
				continue;
			one = bytes;
			s = cm_encode_images(m, st, &one, &len, 1, &raw, single, &err);
			RT_CHECK(s == CM_OK, "%s: encode image file %s: %s", name, img, err.message);
			if (s == CM_OK)
			{
				double		c = rt_cosine(single, ref + (size_t) i * dim, dim);

				if (c < file_worst)
				{
					file_worst = c;
					worst_name = img;
				}
				RT_CHECK(c > FILE_COS_MIN, "%s: image file %s: cosine %.9f vs reference", name, img, c);
			}
			free(bytes);
		}
		printf("  %s: %d image files end to end: worst cosine %.9f (%s)\n", name, n, file_worst, worst_name);
	}

	free(pixels);
	free(out);
	free(single);
	free(ref);
}

/* Cancellation: stops at the first poll that says so, at least once per layer. */
typedef struct cancel_ctx
{
	int			calls;
	int			stop_at;
} cancel_ctx;

static bool
cancel_cb(void *p)
{
	cancel_ctx *c = p;

	return ++c->calls >= c->stop_at;
}

static void
check_cancel(const cm_model *m, int dim, int text_layers, int vision_layers, int size)
{
	static const int32_t ids[] = {2012, 320, 2013};
	const int32_t *rows[] = {ids};
	int			n_ids[] = {3};
	float		out[MAX_DIM];
	float	   *pixels = calloc((size_t) 3 * size * size, sizeof(float));
	cancel_ctx	c = {0, 1 << 30};
	cm_run_options opt = {.cancel = cancel_cb, .cancel_ctx = &c};
	cm_error	err = {0};
	cm_status	s;

	(void) dim;
	s = cm_encode_token_ids(m, NULL, rows, n_ids, 1, &opt, out, NULL, &err);
	RT_CHECK(s == CM_OK && c.calls >= text_layers, "text polls cancel %d times for %d layers", c.calls, text_layers);
	c.calls = 0;
	s = cm_encode_pixels(m, NULL, pixels, 1, &opt, out, &err);
	RT_CHECK(s == CM_OK && c.calls >= vision_layers, "vision polls cancel %d times for %d layers", c.calls, vision_layers);
	for (int stop = 1; stop <= 3; stop++)
	{
		c.calls = 0;
		c.stop_at = stop;
		s = cm_encode_token_ids(m, NULL, rows, n_ids, 1, &opt, out, NULL, &err);
		RT_CHECK(s == CM_ERR_CANCELLED && err.status == CM_ERR_CANCELLED && strstr(err.message, "cancel"),
				 "cancel at poll %d: status %d (%s)", stop, s, err.message);
		c.calls = 0;
		s = cm_encode_pixels(m, NULL, pixels, 1, &opt, out, &err);
		RT_CHECK(s == CM_ERR_CANCELLED, "vision cancel at poll %d: status %d", stop, s);
	}
	free(pixels);
}

/* Several threads on one model, each with its own state, agree with one thread. */
typedef struct thread_job
{
	const cm_model *m;
	const golden_texts *g;
	const float *pixels;
	int			n_images;
	int			dim;
	float		text_out[MAX_TEXTS][MAX_DIM];
	float	   *image_out;
	int			ok;
} thread_job;

static void *
thread_main(void *p)
{
	thread_job *j = p;
	cm_error	err = {0};
	cm_state   *st = cm_state_new(j->m, &err);

	j->ok = st != NULL;
	for (int rep = 0; rep < 3 && j->ok; rep++)
	{
		j->ok = cm_encode_token_ids(j->m, st, j->g->rows, j->g->n_ids, j->g->n, NULL,
									&j->text_out[0][0], NULL, &err) == CM_OK &&
			cm_encode_pixels(j->m, st, j->pixels, j->n_images, NULL, j->image_out, &err) == CM_OK;
	}
	cm_state_free(st);
	return NULL;
}

static void
check_threads(const cJSON *root, const char *name, const cm_model *m, int dim, int size,
			  const cm_safetensors *px)
{
	enum
	{
	N_THREADS = 4};
	static golden_texts g;
	static thread_job jobs[N_THREADS];
	pthread_t	tid[N_THREADS];
	const cJSON *images = cJSON_GetObjectItemCaseSensitive(root, "images");
	int			n = cJSON_GetArraySize(images);
	size_t		per = (size_t) 3 * size * size;
	float	   *pixels = malloc(per * (size_t) n * sizeof(float));

	if (!load_golden_texts(root, name, dim, &g))
		return;
	for (int i = 0; i < n; i++)
	{
		const float *p = NULL;

		if (load_pixels(px, name, cJSON_GetArrayItem(images, i)->valuestring, size, &p))
			memcpy(pixels + per * i, p, per * sizeof(float));
	}
	for (int t = 0; t < N_THREADS; t++)
	{
		jobs[t] = (thread_job)
		{
			.m = m,.g = &g,.pixels = pixels,.n_images = n,.dim = dim
		};
		jobs[t].image_out = malloc((size_t) n * dim * sizeof(float));
		pthread_create(&tid[t], NULL, thread_main, &jobs[t]);
	}
	for (int t = 0; t < N_THREADS; t++)
		pthread_join(tid[t], NULL);
	for (int t = 0; t < N_THREADS; t++)
	{
		RT_CHECK(jobs[t].ok, "%s: thread %d failed", name, t);
		RT_CHECK(rt_rel_max_err(&jobs[t].text_out[0][0], &jobs[0].text_out[0][0], MAX_TEXTS * MAX_DIM) < 1e-5,
				 "%s: thread %d texts differ", name, t);
		RT_CHECK(rt_rel_max_err(jobs[t].image_out, jobs[0].image_out, n * dim) < 1e-5,
				 "%s: thread %d images differ (%.3g)", name, t, rt_rel_max_err(jobs[t].image_out, jobs[0].image_out, n * dim));
	}
	for (int t = 0; t < N_THREADS; t++)
		free(jobs[t].image_out);
	free(pixels);
}

int
main(void)
{
	cJSON	   *root = rt_load_json(GOLDEN "/expected.json");
	cm_error	err = {0};
	cm_safetensors *px = cm_safetensors_open(GOLDEN "/pixel_values.safetensors", &err);

	RT_CHECK(root != NULL, "read " GOLDEN "/expected.json (run from the repository root)");
	RT_CHECK(px != NULL, "open pixel_values.safetensors: %s", err.message);
	if (root == NULL || px == NULL)
	{
		cJSON_Delete(root);
		cm_safetensors_close(px);
		return rt_summary("test_golden_embeddings");
	}

	for (size_t k = 0; k < sizeof(model_names) / sizeof(model_names[0]); k++)
	{
		const char *name = model_names[k];
		char		dir[256];
		cm_model   *m;
		cm_state   *st;
		cm_model_info info;

		snprintf(dir, sizeof(dir), GOLDEN "/%s", name);
		m = cm_model_load(dir, NULL, &err);
		RT_CHECK(m != NULL, "load %s: %s", dir, err.message);
		if (m == NULL)
			continue;
		cm_model_get_info(m, &info);
		st = cm_state_new(m, &err);
		check_info(root, name, m);
		check_texts(root, name, m, st, info.embed_dim, info.text_hidden);
		check_images(root, name, m, st, info.embed_dim, info.image_size, px);
		check_cancel(m, info.embed_dim, info.text_layers, info.vision_layers, info.image_size);
		check_threads(root, name, m, info.embed_dim, info.image_size, px);
		cm_state_free(st);
		cm_model_free(m);
	}
	cm_safetensors_close(px);
	cJSON_Delete(root);
	return rt_summary("test_golden_embeddings");
}
