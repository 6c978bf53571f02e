/*
 * crossmodal_encoder.c
 *	  The public API: load a model directory, manage per-thread state, and
 *	  run batched text and image encodes in bounded chunks.
 */
#include "crossmodal_encoder.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "image.h"
#include "model.h"
#include "safetensors.h"
#include "tokenizer.h"
#include "transformer.h"


static void
log_msg(cm_log_fn log, void *ctx, int level, const char *fmt,...)
	__attribute__((format(printf, 4, 5)));

static void
log_msg(cm_log_fn log, void *ctx, int level, const char *fmt,...)
{
	char		buf[CM_ERROR_MESSAGE_LEN];
	va_list		ap;

	if (log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log(ctx, level, buf);
}

static cm_status
load_json_file(const char *dir, const char *file, char *path, char **text, size_t *len,
			   cm_error *err)
{
	cm_status	s = cm_join_path(path, dir, file, err);

	if (s != CM_OK)
		return s;
	return cm_read_file(path, CM_CONFIG_MAX_FILE_BYTES, text, len, err);
}

static bool
file_exists(const char *dir, const char *file, char *path)
{
	return cm_join_path(path, dir, file, NULL) == CM_OK && access(path, F_OK) == 0;
}

/* open_clip's default merges file, shipped in its package and in some model directories */
#define OPENCLIP_DEFAULT_BPE "bpe_simple_vocab_16e6.txt.gz"

/*
 * open_clip's SimpleTokenizer: the merges file text_cfg.tokenizer_kwargs.
 * bpe_path names (inside the model directory), else the default merges file
 * if the directory has it, else a merges.txt (Hugging Face's copy of the
 * same merges, which open_clip checkpoints on the Hub ship): the ids are the
 * same, the cleaning is open_clip's.
 */
static cm_status
load_openclip_tokenizer(cm_model *m, const char *dir, char *path, cm_error *err)
{
	const char *name = m->config.bpe_path[0] != '\0' ? m->config.bpe_path : OPENCLIP_DEFAULT_BPE;
	char	   *text = NULL;
	size_t		len = 0,
				n = strlen(name);
	cm_status	s;

	if (cm_join_path(path, dir, name, err) != CM_OK)
		return err ? err->status : CM_ERR_IO;
	if (m->config.bpe_path[0] == '\0' && access(path, F_OK) != 0 &&
		file_exists(dir, "merges.txt", path))
		name = "merges.txt";
	n = strlen(name);
	if (n > 3 && strcmp(name + n - 3, ".gz") == 0)
		s = cm_read_gzip_file(path, CM_TOKENIZER_MAX_FILE_BYTES, CM_TOKENIZER_MAX_FILE_BYTES,
							  &text, &len, err);
	else
		s = cm_read_file(path, CM_TOKENIZER_MAX_FILE_BYTES, &text, &len, err);
	if (s != CM_OK)
	{
		if (m->config.bpe_path[0] == '\0' && err != NULL && err->missing_file[0] != '\0')
			cm_set_error(err, CM_ERR_IO, "%s: no tokenizer: %s (or merges.txt), or a bpe_path in open_clip_config.json",
						 dir, OPENCLIP_DEFAULT_BPE);
		return s;
	}
	m->tokenizer = cm_tokenizer_load_openclip(text, len, m->config.clean_lower, err);
	free(text);
	if (m->tokenizer == NULL)
	{
		/* name the file in the message */
		if (err != NULL)
		{
			char		msg[CM_ERROR_MESSAGE_LEN];

			snprintf(msg, sizeof(msg), "%s", err->message);
			cm_set_error(err, err->status, "%s: %s", path, msg);
		}
		return err ? err->status : CM_ERR_MODEL;
	}
	m->tokenizer_kind = "OpenCLIP BPE";
	return CM_OK;
}

/*
 * The tokenizer a model directory ships: CLIP's vocab.json + merges.txt,
 * else a tokenizer.json, else (SigLIP) a SentencePiece spiece.model.
 */
static cm_status
load_tokenizer(cm_model *m, const char *dir, char *path, char *vocab_path, cm_log_fn log,
			   void *log_ctx, cm_error *err)
{
	bool		siglip = m->config.family == CM_FAMILY_SIGLIP;
	int32_t		n_tokens;
	char	   *text = NULL;
	size_t		len;
	cm_status	s;

	m->pad_id = -1;
	if (m->config.family == CM_FAMILY_OPENCLIP)
	{
		if ((s = load_openclip_tokenizer(m, dir, path, err)) != CM_OK)
			return s;
		n_tokens = cm_tokenizer_vocab_size(m->tokenizer);
		strcpy(vocab_path, path);
	}
	/* either CLIP file present: both are required (the loader names the missing one) */
	else if ((int) file_exists(dir, "vocab.json", vocab_path) + (int) file_exists(dir, "merges.txt", path) > 0)
	{
		m->tokenizer = cm_tokenizer_load(vocab_path, path, err);
		if (m->tokenizer == NULL)
			return err ? err->status : CM_ERR_MODEL;
		m->tokenizer_kind = "CLIP BPE";
		n_tokens = cm_tokenizer_vocab_size(m->tokenizer);
		if (m->config.text.pooling == CM_POOL_FIRST_EOS &&
			cm_tokenizer_eos_id(m->tokenizer) != m->config.text.eos_token_id)
			log_msg(log, log_ctx, CM_LOG_WARNING,
					"%s: the tokenizer's <|endoftext|> is %d but config.json's eos_token_id is %d; pooling follows config.json",
					vocab_path, (int) cm_tokenizer_eos_id(m->tokenizer), (int) m->config.text.eos_token_id);
	}
	else if (file_exists(dir, "tokenizer.json", path))
	{
		if ((s = cm_read_file(path, CM_HF_TOKENIZER_MAX_FILE_BYTES, &text, &len, err)) != CM_OK)
			return s;
		m->hf_tokenizer = cm_hf_tokenizer_from_json(text, len, path, err);
		free(text);
		if (m->hf_tokenizer == NULL)
			return err ? err->status : CM_ERR_MODEL;
		/* SigLIP 2 was trained on lower-cased text (transformers' docs) */
		cm_hf_tokenizer_set_lower_case(m->hf_tokenizer, siglip);
		m->tokenizer_kind = cm_hf_tokenizer_kind(m->hf_tokenizer);
		n_tokens = cm_hf_tokenizer_vocab_size(m->hf_tokenizer);
	}
	else if (siglip && file_exists(dir, "spiece.model", path))
	{
		if ((s = cm_read_file(path, CM_HF_TOKENIZER_MAX_FILE_BYTES, &text, &len, err)) != CM_OK)
			return s;
		m->hf_tokenizer = cm_hf_tokenizer_from_spm_siglip((const unsigned char *) text, len, path, true, err);
		free(text);
		if (m->hf_tokenizer == NULL)
			return err ? err->status : CM_ERR_MODEL;
		m->tokenizer_kind = cm_hf_tokenizer_kind(m->hf_tokenizer);
		n_tokens = cm_hf_tokenizer_vocab_size(m->hf_tokenizer);
	}
	else
	{
		cm_join_path(path, dir, siglip ? "spiece.model" : "vocab.json", NULL);
		s = cm_set_error(err, CM_ERR_IO, "%s: no tokenizer: vocab.json + merges.txt, tokenizer.json%s",
						 dir, siglip ? " or spiece.model" : "");
		cm_error_set_missing(err, path);
		return s;
	}
	if (n_tokens > m->config.text.vocab_size)
		return cm_set_error(err, CM_ERR_MODEL, "%s: the tokenizer has %d tokens, the config's vocab_size is %d",
							m->tokenizer != NULL ? vocab_path : path, (int) n_tokens, m->config.text.vocab_size);
	if (m->config.family == CM_FAMILY_OPENCLIP &&
		(!m->config.text.causal || m->config.text.pooling == CM_POOL_LAST))
		m->pad_id = 0;			/* padding is seen: pad as SimpleTokenizer does, with 0 */
	if (siglip)
	{
		/* SigLIP was trained on texts padded to the full length */
		m->pad_id = m->config.text.pad_token_id;
		if (m->pad_id < 0 && m->hf_tokenizer != NULL)
			m->pad_id = cm_hf_tokenizer_token_id(m->hf_tokenizer, "<pad>");
		if (m->pad_id < 0)
			return cm_set_error(err, CM_ERR_MODEL, "%s: SigLIP needs a pad_token_id to pad texts with", dir);
	}
	return CM_OK;
}

/* Tokenize with the model's tokenizer into ids[max_ids] (padded for SigLIP). */
static cm_status
model_tokenize(const cm_model *m, const char *text, size_t len, int32_t *ids, int max_ids,
			   int *n_ids, cm_error *err)
{
	cm_status	s;

	if (m->tokenizer != NULL)
		s = cm_tokenizer_encode(m->tokenizer, text, len, ids, max_ids, n_ids, err);
	else
		s = cm_hf_tokenizer_encode(m->hf_tokenizer, text, len, ids, max_ids, n_ids, err);
	if (s == CM_OK && m->pad_id >= 0)
		while (*n_ids < max_ids)
			ids[(*n_ids)++] = m->pad_id;
	return s;
}

bool
cm_model_dir_has_config(const char *dir)
{
	static const char *const names[] = {"config.json", "open_clip_config.json"};
	char		path[CM_MAX_PATH];

	for (size_t i = 0; dir != NULL && i < sizeof(names) / sizeof(names[0]); i++)
	{
		struct stat st;

		if (cm_join_path(path, dir, names[i], NULL) == CM_OK && stat(path, &st) == 0 &&
			S_ISREG(st.st_mode))
			return true;
	}
	return false;
}

cm_model *
cm_model_load(const char *dir, const cm_load_options *options, cm_error *err)
{
	cm_model   *m;
	char	   *path = NULL;
	char	   *text = NULL;
	size_t		len;
	char	   *vocab_path = NULL;
	cm_safetensors *st = NULL;
	cm_log_fn	log = options ? options->log : NULL;
	void	   *log_ctx = options ? options->log_ctx : NULL;
	bool		openclip;
	const char *weights;

	if (dir == NULL)
	{
		cm_set_error(err, CM_ERR_INPUT, "no model directory given");
		return NULL;
	}
	if (options != NULL && options->precision != CM_PRECISION_DEFAULT &&
		options->precision != CM_PRECISION_F32 && options->precision != CM_PRECISION_BF16)
	{
		cm_set_error(err, CM_ERR_INPUT, "unknown precision %d", (int) options->precision);
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	path = malloc(CM_MAX_PATH);
	vocab_path = malloc(CM_MAX_PATH);
	if (m == NULL || path == NULL || vocab_path == NULL)
	{
		cm_set_error(err, CM_ERR_NOMEM, "out of memory loading %s", dir);
		goto fail;
	}
	m->precision = options != NULL && options->precision == CM_PRECISION_BF16 ?
		CM_PRECISION_BF16 : CM_PRECISION_F32;

	/*
	 * config.json (transformers' layout), else open_clip_config.json
	 * (open_clip's own).  A checkpoint that ships both loads as transformers
	 * saved it.
	 */
	openclip = !file_exists(dir, "config.json", path) && file_exists(dir, "open_clip_config.json", path);
	if (openclip)
	{
		if (load_json_file(dir, "open_clip_config.json", path, &text, &len, err) != CM_OK ||
			cm_openclip_config_parse(text, len, path, &m->config, &m->image, err) != CM_OK)
			goto fail;
		free(text);
		text = NULL;
		if (m->config.defaulted[0] != '\0')
			log_msg(log, log_ctx, CM_LOG_INFO, "%s: absent keys take open_clip's defaults: %s",
					path, m->config.defaulted);
	}
	else
	{
		if (load_json_file(dir, "config.json", path, &text, &len, err) != CM_OK ||
			cm_config_parse(text, len, path, &m->config, err) != CM_OK)
			goto fail;
		free(text);
		text = NULL;
		if (m->config.defaulted[0] != '\0')
			log_msg(log, log_ctx, CM_LOG_INFO, "%s: absent keys take transformers' defaults: %s",
					path, m->config.defaulted);

		/* preprocessor_config.json */
		if (load_json_file(dir, "preprocessor_config.json", path, &text, &len, err) != CM_OK ||
			cm_preprocessor_parse(text, len, path, &m->config.vision, &m->image, err) != CM_OK)
			goto fail;
		free(text);
		text = NULL;
	}

	if (load_tokenizer(m, dir, path, vocab_path, log, log_ctx, err) != CM_OK)
		goto fail;

	/* model.safetensors, or the shards its index names */
	weights = openclip ? "open_clip_model.safetensors" : "model.safetensors";
	if (cm_join_path(path, dir, weights, err) != CM_OK)
		goto fail;
	if (access(path, F_OK) != 0 && errno == ENOENT)
	{
		char		index[64];

		snprintf(index, sizeof(index), "%s.index.json", weights);
		if (cm_join_path(path, dir, index, err) != CM_OK)
			goto fail;
		if (access(path, F_OK) != 0 && errno == ENOENT)
		{
			cm_set_error(err, CM_ERR_IO, "%s: no %s and no %s", dir, weights, index);
			cm_join_path(path, dir, weights, NULL);
			cm_error_set_missing(err, path);
			goto fail;
		}
		st = cm_safetensors_open_index(dir, index, err);
	}
	else
		st = cm_safetensors_open(path, err);
	if (st == NULL)
		goto fail;
	if (cm_model_bind_weights(m, st, path, err) != CM_OK)
		goto fail;
	log_msg(log, log_ctx, CM_LOG_DEBUG, "%s: %lld parameters, %s weights, %s products on %s, "
			"%zu bytes of weights copied into this process",
			dir, (long long) m->n_params, m->weight_dtype,
			m->precision == CM_PRECISION_BF16 ? "BF16" : "F32", cm_model_kernels(m),
			m->widened_floats * sizeof(float) + m->converted_halves * sizeof(uint16_t));
	free(path);
	free(vocab_path);
	return m;

fail:
	free(text);
	free(path);
	free(vocab_path);
	cm_safetensors_close(st);
	if (m != NULL)
	{
		m->st = NULL;			/* closed above when bind failed */
		cm_model_free(m);
	}
	return NULL;
}

void
cm_model_free(cm_model *model)
{
	if (model == NULL)
		return;
	cm_model_release_weights(model);
	cm_safetensors_close(model->st);
	cm_tokenizer_free(model->tokenizer);
	cm_hf_tokenizer_free(model->hf_tokenizer);
	free(model);
}

cm_status
cm_model_check_files(const cm_model *model, cm_error *err)
{
	return cm_safetensors_check_unchanged(model->st, err);
}

void
cm_model_get_info(const cm_model *m, cm_model_info *info)
{
	memset(info, 0, sizeof(*info));
	info->embed_dim = m->config.projection_dim;
	info->image_size = m->config.vision.image_size;
	info->max_tokens = m->config.text.max_positions;
	info->vocab_size = m->config.text.vocab_size;
	info->text_hidden = m->config.text.t.hidden_size;
	info->text_layers = m->config.text.t.num_layers;
	info->vision_hidden = m->config.vision.t.hidden_size;
	info->vision_layers = m->config.vision.t.num_layers;
	info->patch_size = m->config.vision.patch_size;
	info->n_params = m->n_params;
	info->weight_dtype = m->weight_dtype;
	info->precision = m->precision;
	info->kernels = cm_model_kernels(m);
	info->private_weight_bytes = (int64_t) (m->widened_floats * sizeof(float) +
											m->converted_halves * sizeof(uint16_t));
	info->logit_scale = expf(m->w.logit_scale[0]);
	info->family = m->config.family == CM_FAMILY_SIGLIP ? "siglip"
		: m->config.family == CM_FAMILY_OPENCLIP ? "openclip" : "clip";
	info->tokenizer_kind = m->tokenizer_kind;
	info->has_logit_bias = m->w.logit_bias != NULL;
	info->logit_bias = m->w.logit_bias != NULL ? m->w.logit_bias[0] : 0.0f;
}

cm_state *
cm_state_new(const cm_model *model, cm_error *err)
{
	cm_state   *s;

	(void) model;				/* buffers are sized per call, for any model */
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		cm_set_error(err, CM_ERR_NOMEM, "out of memory for encoder state");
	return s;
}

void
cm_state_free(cm_state *s)
{
	if (s == NULL)
		return;
	free(s->x.p);
	for (int i = 0; i < CM_TEAM_MAX_THREADS; i++)
		cm_lane_free(&s->lanes[i]);
	free(s->patches.p);
	free(s->pooled.p);
	free(s->pixels.p);
	free(s->seq_start);
	free(s->seq_len);
	free(s->keep_rows);
	free(s->ids);
	free(s->id_rows);
	free(s->id_counts);
	free(s);
}

static int
batch_size(const cm_run_options *opt)
{
	int			b = opt ? opt->batch_size : 0;

	if (b <= 0)
		return CM_DEFAULT_BATCH;
	return b > CM_MAX_BATCH ? CM_MAX_BATCH : b;
}

static void
l2_normalize_rows(float *v, int rows, int dim)
{
	for (int r = 0; r < rows; r++)
	{
		float	   *x = v + (size_t) r * dim;
		double		ss = 0.0;

		for (int i = 0; i < dim; i++)
			ss += (double) x[i] * x[i];
		if (ss > 0.0)
		{
			float		inv = (float) (1.0 / sqrt(ss));

			for (int i = 0; i < dim; i++)
				x[i] *= inv;
		}
	}
}

/* Check the common arguments; make a temporary state when none is given. */
static cm_status
begin_call(const cm_model *model, cm_state **state, cm_state **temp, int n, const void *in,
		   const float *out, cm_error *err)
{
	*temp = NULL;
	if (model == NULL || out == NULL || (n > 0 && in == NULL) || n < 0)
		return cm_set_error(err, CM_ERR_INPUT, "invalid arguments: model, inputs and output are required and n >= 0");
	if (*state == NULL)
	{
		*temp = cm_state_new(model, err);
		if (*temp == NULL)
			return CM_ERR_NOMEM;
		*state = *temp;
	}
	return CM_OK;
}

cm_status
cm_tokenize(const cm_model *model, const char *text, size_t len, int32_t *ids, int max_ids,
			int *n_ids, cm_error *err)
{
	if (model == NULL || ids == NULL || n_ids == NULL || (text == NULL && len > 0))
		return cm_set_error(err, CM_ERR_INPUT, "invalid arguments to cm_tokenize");
	if (max_ids < 2)
		return cm_set_error(err, CM_ERR_INPUT, "max_ids must be at least 2 (BOS and EOS)");
	if (max_ids > model->config.text.max_positions)
		max_ids = model->config.text.max_positions;
	return model_tokenize(model, text == NULL ? "" : text, len, ids, max_ids, n_ids, err);
}

cm_status
cm_encode_token_ids(const cm_model *model, cm_state *state, const int32_t *const *ids,
					const int *n_ids, int n, const cm_run_options *opt, float *out,
					float *hidden, cm_error *err)
{
	cm_state   *temp;
	int			dim;
	int			chunk = batch_size(opt);
	cm_status	s;

	if ((s = begin_call(model, &state, &temp, n, ids, out, err)) != CM_OK)
		return s;
	if (n > 0 && n_ids == NULL)
		s = cm_set_error(err, CM_ERR_INPUT, "n_ids is required");
	dim = model->config.projection_dim;
	for (int i = 0; s == CM_OK && i < n; i += chunk)
	{
		int			c = n - i < chunk ? n - i : chunk;

		s = cm_text_forward(model, state, ids + i, n_ids + i, c, opt,
							out + (size_t) i * dim, hidden, err);
		if (s == CM_OK && hidden != NULL)
			for (int j = 0; j < c; j++)
				hidden += (size_t) n_ids[i + j] * model->config.text.t.hidden_size;
		if (s == CM_OK && !(opt && opt->raw_features))
			l2_normalize_rows(out + (size_t) i * dim, c, dim);
	}
	cm_state_free(temp);
	return s;
}

/* Room for n tokenized texts of up to max_pos ids (both bounded by limits). */
static cm_status
reserve_ids(cm_state *s, size_t n, size_t max_pos, cm_error *err)
{
	size_t		need = n * max_pos;

	if (need > s->ids_cap)
	{
		free(s->ids);
		s->ids_cap = 0;
		s->ids = malloc(need * sizeof(int32_t));
		if (s->ids == NULL)
			return cm_set_error(err, CM_ERR_NOMEM, "out of memory for token ids");
		s->ids_cap = need;
	}
	if (n > s->id_rows_cap)
	{
		free(s->id_rows);
		free(s->id_counts);
		s->id_rows_cap = 0;
		s->id_rows = malloc(n * sizeof(*s->id_rows));
		s->id_counts = malloc(n * sizeof(int));
		if (s->id_rows == NULL || s->id_counts == NULL)
			return cm_set_error(err, CM_ERR_NOMEM, "out of memory for token ids");
		s->id_rows_cap = n;
	}
	return CM_OK;
}

cm_status
cm_encode_texts(const cm_model *model, cm_state *state, const char *const *texts,
				const size_t *lens, int n, const cm_run_options *opt, float *out,
				cm_error *err)
{
	cm_state   *temp;
	int			chunk = batch_size(opt);
	int			max_pos;
	int			dim;
	cm_status	s;

	if ((s = begin_call(model, &state, &temp, n, texts, out, err)) != CM_OK)
		return s;
	max_pos = model->config.text.max_positions;
	dim = model->config.projection_dim;
	if (s == CM_OK)
		s = reserve_ids(state, (size_t) (n < chunk ? n : chunk), (size_t) max_pos, err);
	for (int i = 0; s == CM_OK && i < n; i += chunk)
	{
		int			c = n - i < chunk ? n - i : chunk;
		const int32_t **rows = state->id_rows;
		int		   *counts = state->id_counts;

		for (int j = 0; j < c && s == CM_OK; j++)
		{
			const char *t = texts[i + j];
			size_t		len = lens ? lens[i + j] : (t ? strlen(t) : 0);
			int32_t    *dst = state->ids + (size_t) j * max_pos;

			if (t == NULL && len > 0)
				s = cm_set_error(err, CM_ERR_INPUT, "text %d is NULL", i + j);
			else
			{
				s = model_tokenize(model, t ? t : "", len, dst, max_pos, &counts[j], err);
				if (s == CM_OK && counts[j] == max_pos && model->pad_id < 0 && opt != NULL)
					log_msg(opt->log, opt->log_ctx, CM_LOG_DEBUG,
							"text %d fills all %d token positions; any longer text was truncated",
							i + j, max_pos);
				if (s != CM_OK)
				{
					char		msg[CM_ERROR_MESSAGE_LEN];

					snprintf(msg, sizeof(msg), "%s", err ? err->message : "");
					s = cm_set_error(err, s, "text %d: %s", i + j, msg);
				}
			}
			rows[j] = dst;
		}
		if (s == CM_OK)
			s = cm_text_forward(model, state, rows, counts, c, opt, out + (size_t) i * dim, NULL, err);
		if (s == CM_OK && !(opt && opt->raw_features))
			l2_normalize_rows(out + (size_t) i * dim, c, dim);
	}
	cm_state_free(temp);
	return s;
}

static void
image_params(const cm_model *model, const cm_run_options *opt, cm_image_params *p)
{
	*p = model->image;
	p->max_pixels = (opt && opt->max_image_pixels) ? opt->max_image_pixels : CM_DEFAULT_MAX_IMAGE_PIXELS;
	if (opt)
	{
		p->ignore_orientation = opt->ignore_orientation;
		p->background = opt->image_background;
		p->exact_decode = opt->image_decode == CM_DECODE_EXACT;
		p->cancel = opt->cancel;
		p->cancel_ctx = opt->cancel_ctx;
	}
}

cm_status
cm_preprocess_image(const cm_model *model, const unsigned char *bytes, size_t len,
					const cm_run_options *opt, float *out, cm_error *err)
{
	cm_image_params p;
	size_t		max_bytes = (opt && opt->max_image_bytes) ? opt->max_image_bytes : CM_DEFAULT_MAX_IMAGE_BYTES;

	if (model == NULL || out == NULL || (bytes == NULL && len > 0))
		return cm_set_error(err, CM_ERR_INPUT, "invalid arguments to cm_preprocess_image");
	if (len > max_bytes)
	{
		cm_set_error(err, CM_ERR_LIMIT, "image of %zu bytes exceeds the %zu-byte limit", len, max_bytes);
		cm_error_set_limit(err, CM_LIMIT_IMAGE_BYTES);
		return CM_ERR_LIMIT;
	}
	if (len == 0)
		return cm_set_error(err, CM_ERR_INPUT, "image is empty (0 bytes)");
	image_params(model, opt, &p);
	return cm_image_preprocess(bytes, len, &p, out, err);
}

cm_status
cm_encode_pixels(const cm_model *model, cm_state *state, const float *pixels, int n,
				 const cm_run_options *opt, float *out, cm_error *err)
{
	cm_state   *temp;
	int			chunk = batch_size(opt);
	size_t		per_image = (size_t) 3 * model->config.vision.image_size * model->config.vision.image_size;
	int			dim = model->config.projection_dim;
	cm_status	s;

	if ((s = begin_call(model, &state, &temp, n, pixels, out, err)) != CM_OK)
		return s;
	for (int i = 0; s == CM_OK && i < n; i += chunk)
	{
		int			c = n - i < chunk ? n - i : chunk;

		s = cm_vision_forward(model, state, pixels + (size_t) i * per_image, c, opt,
							  out + (size_t) i * dim, err);
		if (s == CM_OK && !(opt && opt->raw_features))
			l2_normalize_rows(out + (size_t) i * dim, c, dim);
	}
	cm_state_free(temp);
	return s;
}

cm_status
cm_encode_images(const cm_model *model, cm_state *state, const unsigned char *const *images,
				 const size_t *lens, int n, const cm_run_options *opt, float *out,
				 cm_error *err)
{
	cm_state   *temp;
	int			chunk = batch_size(opt);
	size_t		per_image,
				need;
	int			dim;
	cm_status	s;

	if ((s = begin_call(model, &state, &temp, n, images, out, err)) != CM_OK)
		return s;
	if (n > 0 && lens == NULL)
		s = cm_set_error(err, CM_ERR_INPUT, "image lengths are required");
	per_image = (size_t) 3 * model->config.vision.image_size * model->config.vision.image_size;
	dim = model->config.projection_dim;
	if (s == CM_OK && !cm_mul_size(per_image, (size_t) (n < chunk ? n : chunk), &need))
		s = cm_set_error(err, CM_ERR_LIMIT, "image batch too large");
	if (s == CM_OK)
		s = cm_buf_reserve(&state->pixels, need, err);
	for (int i = 0; s == CM_OK && i < n; i += chunk)
	{
		int			c = n - i < chunk ? n - i : chunk;

		for (int j = 0; j < c && s == CM_OK; j++)
		{
			s = cm_preprocess_image(model, images[i + j], lens[i + j], opt,
									state->pixels.p + (size_t) j * per_image, err);
			if (s != CM_OK)
			{
				char		msg[CM_ERROR_MESSAGE_LEN];

				cm_limit_kind limit = err ? err->limit : CM_LIMIT_NONE;

				snprintf(msg, sizeof(msg), "%s", err ? err->message : "");
				s = cm_set_error(err, s, "image %d: %s", i + j, msg);
				cm_error_set_limit(err, limit);
			}
		}
		if (s == CM_OK)
			s = cm_vision_forward(model, state, state->pixels.p, c, opt, out + (size_t) i * dim, err);
		if (s == CM_OK && !(opt && opt->raw_features))
			l2_normalize_rows(out + (size_t) i * dim, c, dim);
	}
	cm_state_free(temp);
	return s;
}

void
cm_set_num_threads(int n)
{
	openblas_set_num_threads(n < 1 ? 1 : n);
}

int
cm_get_num_threads(void)
{
	return openblas_get_num_threads();
}

const char *
cm_status_name(cm_status status)
{
	switch (status)
	{
		case CM_OK:
			return "ok";
		case CM_ERR_IO:
			return "file could not be read";
		case CM_ERR_MODEL:
			return "model file invalid";
		case CM_ERR_UNSUPPORTED:
			return "unsupported model feature";
		case CM_ERR_INPUT:
			return "invalid input";
		case CM_ERR_LIMIT:
			return "input exceeds a limit";
		case CM_ERR_NOMEM:
			return "out of memory";
		case CM_ERR_CANCELLED:
			return "cancelled";
	}
	return "unknown status";
}
