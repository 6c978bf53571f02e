/*
 * test_default_model.c
 *	  The runtime against the training code's own forward for the shipped
 *	  default model, models/emoji-clip-en-ko: tokenizer ids, text embeddings
 *	  from strings, image preprocessing and embeddings from the sample files,
 *	  and embeddings from the reference pixel tensors.
 *
 * The reference, models/emoji-clip-en-ko/reference_outputs.json, is written
 * by tools/export_samples.py from tools/clip_model.py (float32, CPU) and
 * holds raw (unnormalised) features; they are normalised here and compared
 * with the runtime's default, normalised output.  A missing model directory
 * or reference file is a failure, never a skip.
 */
#include "crossmodal_encoder.h"
#include "runtime_test_util.h"

#define MODEL_DIR "models/emoji-clip-en-ko"
#define REFERENCE MODEL_DIR "/reference_outputs.json"
#define MAX_DIM 1024
#define MAX_IDS 77

/* Embeddings, normalised on both sides. */
#define COS_MIN 0.9999
#define ABS_ERR_MAX 1e-4

/*
 * The runtime's decoder and bicubic resampler against PIL's pixels, after
 * CLIP normalisation, where one 8-bit level is about 0.015.  Observed on
 * the three samples: worst mean |diff| 2.8e-7, worst max |diff| 9.5e-7,
 * i.e. identical 8-bit pixels (the JSON holds 6 decimals, so up to 5e-7 of
 * that is the file's rounding, the rest float32 arithmetic).  The bounds
 * leave room for rounding only: a single differing 8-bit level fails.
 */
#define PIXEL_MEAN_ABS_MAX 1e-6
#define PIXEL_MAX_ABS_MAX 1e-5

static void
normalise(float *v, int n)
{
	double		nrm = rt_norm(v, n);

	for (int i = 0; i < n && nrm > 0; i++)
		v[i] = (float) (v[i] / nrm);
}

static double
max_abs_diff(const float *a, const float *b, size_t n)
{
	double		m = 0;

	for (size_t i = 0; i < n; i++)
	{
		double		d = fabs((double) a[i] - b[i]);

		m = d > m ? d : m;
	}
	return m;
}

static double
mean_abs_diff(const float *a, const float *b, size_t n)
{
	double		s = 0;

	for (size_t i = 0; i < n; i++)
		s += fabs((double) a[i] - b[i]);
	return n > 0 ? s / (double) n : 0;
}

static void
check_texts(const cJSON *root, const cm_model *m, cm_state *st, int dim)
{
	const cJSON *texts = cJSON_GetObjectItemCaseSensitive(root, "texts");
	const cJSON *t;
	int			n = 0;
	double		worst_cos = 1,
				worst_err = 0;
	cm_error	err = {0};

	RT_CHECK(cJSON_IsArray(texts) && cJSON_GetArraySize(texts) > 0, "reference texts present");
	cJSON_ArrayForEach(t, texts)
	{
		const cJSON *text = cJSON_GetObjectItemCaseSensitive(t, "text");
		const cJSON *ref_ids = cJSON_GetObjectItemCaseSensitive(t, "token_ids");
		const cJSON *ref_emb = cJSON_GetObjectItemCaseSensitive(t, "text_embeds");
		int32_t		ids[MAX_IDS];
		int			n_ids = 0;
		int			n_ref_ids = cJSON_GetArraySize(ref_ids);
		float		ref[MAX_DIM];
		float		out[MAX_DIM];
		const char *str;
		cm_status	s;

		RT_CHECK(cJSON_IsString(text) && cJSON_IsArray(ref_ids) &&
				 rt_json_floats(ref_emb, ref, MAX_DIM) == dim,
				 "text %d: reference entry complete (%d-dim embedding)", n, dim);
		if (!cJSON_IsString(text) || rt_json_floats(ref_emb, ref, MAX_DIM) != dim)
		{
			n++;
			continue;
		}
		str = text->valuestring;

		/* (1) Tokenizer: exactly the training code's ids. */
		s = cm_tokenize(m, str, strlen(str), ids, MAX_IDS, &n_ids, &err);
		RT_CHECK(s == CM_OK, "text %d \"%s\": tokenize: %s", n, str, err.message);
		if (s == CM_OK)
		{
			int			same = n_ids == n_ref_ids;

			for (int k = 0; same && k < n_ids; k++)
				same = cJSON_IsNumber(cJSON_GetArrayItem(ref_ids, k)) &&
					ids[k] == (int32_t) cJSON_GetArrayItem(ref_ids, k)->valuedouble;
			RT_CHECK(same, "text %d \"%s\": %d ids, reference %d, or they differ", n, str, n_ids, n_ref_ids);
		}

		/* (2) Embedding from the string, normalised, against the reference. */
		s = cm_encode_texts(m, st, &str, NULL, 1, NULL, out, &err);
		RT_CHECK(s == CM_OK, "text %d \"%s\": encode: %s", n, str, err.message);
		if (s == CM_OK)
		{
			double		c,
						e;

			normalise(ref, dim);
			c = rt_cosine(out, ref, dim);
			e = max_abs_diff(out, ref, (size_t) dim);
			worst_cos = c < worst_cos ? c : worst_cos;
			worst_err = e > worst_err ? e : worst_err;
			RT_CHECK(fabs(rt_norm(out, dim) - 1.0) < 1e-5, "text %d: output not unit length", n);
			RT_CHECK(c > COS_MIN, "text %d \"%s\": cosine %.9f", n, str, c);
			RT_CHECK(e < ABS_ERR_MAX, "text %d \"%s\": max abs err %.3g", n, str, e);
		}
		n++;
	}
	printf("  %d texts from strings: worst cosine %.12f, worst max abs err %.3g\n", n, worst_cos, worst_err);
}

static void
check_images(const cJSON *root, const cm_model *m, cm_state *st, int dim, int size)
{
	const cJSON *images = cJSON_GetObjectItemCaseSensitive(root, "images");
	const cJSON *im;
	size_t		per = (size_t) 3 * size * size;
	float	   *ref_px = malloc(per * sizeof(float));
	float	   *my_px = malloc(per * sizeof(float));
	int			n = 0;
	double		px_mean = 0,
				px_max = 0,
				file_cos = 1,
				file_err = 0,
				pix_cos = 1,
				pix_err = 0;
	cm_error	err = {0};

	RT_CHECK(cJSON_IsArray(images) && cJSON_GetArraySize(images) > 0, "reference images present");
	if (ref_px == NULL || my_px == NULL)
	{
		RT_CHECK(0, "out of memory");
		free(ref_px);
		free(my_px);
		return;
	}
	cJSON_ArrayForEach(im, images)
	{
		const cJSON *file = cJSON_GetObjectItemCaseSensitive(im, "file");
		const cJSON *shape = cJSON_GetObjectItemCaseSensitive(im, "pixel_values_shape");
		float		ref[MAX_DIM];
		float		out[MAX_DIM];
		char		path[512];
		unsigned char *bytes = NULL;
		size_t		len = 0;
		const char *name;
		cm_status	s;
		int			ok;

		ok = cJSON_IsString(file) && cJSON_GetArraySize(shape) == 3 &&
			cJSON_GetArrayItem(shape, 0)->valueint == 3 &&
			cJSON_GetArrayItem(shape, 1)->valueint == size &&
			cJSON_GetArrayItem(shape, 2)->valueint == size &&
			rt_json_floats(cJSON_GetObjectItemCaseSensitive(im, "pixel_values"), ref_px, (int) per) == (int) per &&
			rt_json_floats(cJSON_GetObjectItemCaseSensitive(im, "image_embeds"), ref, MAX_DIM) == dim;
		RT_CHECK(ok, "image %d: reference entry complete ([3,%d,%d] pixels, %d-dim embedding)", n, size, size, dim);
		if (!ok)
		{
			n++;
			continue;
		}
		name = file->valuestring;
		normalise(ref, dim);

		snprintf(path, sizeof(path), MODEL_DIR "/%s", name);
		bytes = (unsigned char *) rt_read_file(path, &len);
		RT_CHECK(bytes != NULL, "read %s", path);
		if (bytes != NULL)
		{
			const unsigned char *one = bytes;

			/* (3a) Preprocessing of the file against PIL's tensor. */
			s = cm_preprocess_image(m, bytes, len, NULL, my_px, &err);
			RT_CHECK(s == CM_OK, "%s: preprocess: %s", name, err.message);
			if (s == CM_OK)
			{
				double		mean = mean_abs_diff(my_px, ref_px, per);
				double		mx = max_abs_diff(my_px, ref_px, per);

				px_mean = mean > px_mean ? mean : px_mean;
				px_max = mx > px_max ? mx : px_max;
				RT_CHECK(mean < PIXEL_MEAN_ABS_MAX, "%s: pixel mean abs diff %.3g", name, mean);
				RT_CHECK(mx < PIXEL_MAX_ABS_MAX, "%s: pixel max abs diff %.3g", name, mx);
			}

			/* (3b) Embedding from the file bytes. */
			s = cm_encode_images(m, st, &one, &len, 1, NULL, out, &err);
			RT_CHECK(s == CM_OK, "%s: encode image: %s", name, err.message);
			if (s == CM_OK)
			{
				double		c = rt_cosine(out, ref, dim);
				double		e = max_abs_diff(out, ref, (size_t) dim);

				file_cos = c < file_cos ? c : file_cos;
				file_err = e > file_err ? e : file_err;
				RT_CHECK(c > COS_MIN, "%s: file embedding cosine %.9f", name, c);
				RT_CHECK(e < ABS_ERR_MAX, "%s: file embedding max abs err %.3g", name, e);
			}
			free(bytes);
		}

		/* (4) Embedding from the reference pixel tensor. */
		s = cm_encode_pixels(m, st, ref_px, 1, NULL, out, &err);
		RT_CHECK(s == CM_OK, "%s: encode pixels: %s", name, err.message);
		if (s == CM_OK)
		{
			double		c = rt_cosine(out, ref, dim);
			double		e = max_abs_diff(out, ref, (size_t) dim);

			pix_cos = c < pix_cos ? c : pix_cos;
			pix_err = e > pix_err ? e : pix_err;
			RT_CHECK(c > COS_MIN, "%s: pixel embedding cosine %.9f", name, c);
			RT_CHECK(e < ABS_ERR_MAX, "%s: pixel embedding max abs err %.3g", name, e);
		}
		n++;
	}
	printf("  %d image files: preprocessing vs PIL worst mean abs diff %.3g, worst max abs diff %.3g\n",
		   n, px_mean, px_max);
	printf("  %d image files end to end: worst cosine %.12f, worst max abs err %.3g\n", n, file_cos, file_err);
	printf("  %d reference pixel tensors: worst cosine %.12f, worst max abs err %.3g\n", n, pix_cos, pix_err);
	free(ref_px);
	free(my_px);
}

int
main(void)
{
	cJSON	   *root = rt_load_json(REFERENCE);
	cm_error	err = {0};
	cm_model   *m;
	cm_state   *st;
	cm_model_info info;
	const cJSON *ls;

	RT_CHECK(root != NULL, "read " REFERENCE " (run from the repository root)");
	m = cm_model_load(MODEL_DIR, NULL, &err);
	RT_CHECK(m != NULL, "load " MODEL_DIR ": %s", err.message);
	if (root == NULL || m == NULL)
	{
		cJSON_Delete(root);
		cm_model_free(m);
		return rt_summary("test_default_model");
	}
	cm_model_get_info(m, &info);
	st = cm_state_new(m, &err);
	RT_CHECK(st != NULL, "state: %s", err.message);
	RT_CHECK(info.embed_dim > 0 && info.embed_dim <= MAX_DIM, "embed_dim %d", info.embed_dim);
	ls = cJSON_GetObjectItemCaseSensitive(root, "logit_scale");
	RT_CHECK(cJSON_IsNumber(ls) && fabs(info.logit_scale - ls->valuedouble) <= 1e-5 * ls->valuedouble,
			 "logit_scale %.9g, reference %.9g", info.logit_scale, cJSON_IsNumber(ls) ? ls->valuedouble : 0);
	printf("  " MODEL_DIR ": embed %d, image %d, tokens %d, params %lld, %s, logit_scale %.6g\n",
		   info.embed_dim, info.image_size, info.max_tokens, (long long) info.n_params,
		   info.weight_dtype, info.logit_scale);

	if (st != NULL && info.embed_dim > 0 && info.embed_dim <= MAX_DIM)
	{
		check_texts(root, m, st, info.embed_dim);
		check_images(root, m, st, info.embed_dim, info.image_size);
	}
	cm_state_free(st);
	cm_model_free(m);
	cJSON_Delete(root);
	return rt_summary("test_default_model");
}
