/*
 * config.c
 *	  Parse and range-check a CLIP model's config.json and
 *	  preprocessor_config.json (Hugging Face layout) with cJSON.
 *
 * Absent keys take the defaults of transformers' CLIPTextConfig,
 * CLIPVisionConfig, CLIPConfig and CLIPImageProcessor, which describe
 * openai/clip-vit-base-patch32.  A JSON null counts as absent.  Present keys
 * of the wrong type or out of range are errors that name the file and key.
 */
#include "config.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* transformers' CLIP defaults */
static const cm_text_config default_text = {
	.t = {.hidden_size = 512, .intermediate_size = 2048, .num_layers = 12,
	.num_heads = 8, .layer_norm_eps = 1e-5f, .act = CM_ACT_QUICK_GELU},
	.vocab_size = 49408, .max_positions = 77,
	.bos_token_id = 49406, .eos_token_id = 49407, .pad_token_id = 1,
	.causal = true, .pooling = CM_POOL_FIRST_EOS,
};
static const cm_vision_config default_vision = {
	.t = {.hidden_size = 768, .intermediate_size = 3072, .num_layers = 12,
	.num_heads = 12, .layer_norm_eps = 1e-5f, .act = CM_ACT_QUICK_GELU},
	.image_size = 224, .patch_size = 32, .num_channels = 3,
	.class_token = true, .pre_norm = true,
};

/* transformers' SigLIP defaults (google/siglip-base-patch16-224) */
static const cm_text_config default_siglip_text = {
	.t = {.hidden_size = 768, .intermediate_size = 3072, .num_layers = 12,
	.num_heads = 12, .layer_norm_eps = 1e-6f, .act = CM_ACT_GELU_TANH},
	.vocab_size = 32000, .max_positions = 64,
	.bos_token_id = 49406, .eos_token_id = 49407, .pad_token_id = 1,
	.causal = false, .pooling = CM_POOL_LAST, .head_bias = true,
};
static const cm_vision_config default_siglip_vision = {
	.t = {.hidden_size = 768, .intermediate_size = 3072, .num_layers = 12,
	.num_heads = 12, .layer_norm_eps = 1e-6f, .act = CM_ACT_GELU_TANH},
	.image_size = 224, .patch_size = 16, .num_channels = 3,
	.patch_bias = true, .map_head = true,
};
#define DEFAULT_PROJECTION_DIM 512
static const float openai_clip_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float openai_clip_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

/* Where a value is read from, for messages. */
typedef struct json_ctx
{
	const char *label;			/* file */
	const char *section;		/* "text_config." or "" */
	char	   *defaulted;		/* may be NULL */
	size_t		defaulted_size;
	cm_error   *err;
} json_ctx;

static void
note_default(json_ctx *c, const char *key)
{
	size_t		used;

	if (c->defaulted == NULL)
		return;
	used = strlen(c->defaulted);
	if (used + 1 >= c->defaulted_size)
		return;
	snprintf(c->defaulted + used, c->defaulted_size - used, "%s%s%s",
			 used > 0 ? "," : "", c->section, key);
}

/*
 * Parse exactly len bytes as one JSON value: trailing bytes other than
 * whitespace make it invalid (cJSON alone would ignore them).
 */
static cJSON *
parse_whole(const char *json, size_t len)
{
	const char *end = NULL;
	cJSON	   *root = cJSON_ParseWithLengthOpts(json, len, &end, false);

	if (root == NULL)
		return NULL;
	for (; end != NULL && end < json + len; end++)
		if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r')
		{
			cJSON_Delete(root);
			return NULL;
		}
	return root;
}

static const cJSON *
get_present(const cJSON *obj, const char *key)
{
	const cJSON *item = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;

	return (item == NULL || cJSON_IsNull(item)) ? NULL : item;
}

static cm_status
get_int(json_ctx *c, const cJSON *obj, const char *key, long long min, long long max,
		int64_t *out)
{
	const cJSON *item = get_present(obj, key);
	double		v;

	if (item == NULL)
	{
		note_default(c, key);
		return CM_OK;			/* *out keeps its default */
	}
	if (!cJSON_IsNumber(item))
		return cm_set_error(c->err, CM_ERR_MODEL, "%s: \"%s%s\" must be a number",
							c->label, c->section, key);
	v = item->valuedouble;
	if (!(v >= (double) min && v <= (double) max) || floor(v) != v)
		return cm_set_error(c->err, CM_ERR_MODEL,
							"%s: \"%s%s\" is %g, expected an integer in [%lld, %lld]",
							c->label, c->section, key, v, min, max);
	*out = (int64_t) v;
	return CM_OK;
}

static cm_status
get_int32(json_ctx *c, const cJSON *obj, const char *key, long long min, long long max,
		  int *out)
{
	int64_t		v = *out;
	cm_status	s = get_int(c, obj, key, min, max, &v);

	*out = (int) v;
	return s;
}

static cm_status
get_float(json_ctx *c, const cJSON *obj, const char *key, double min, double max,
		  bool min_exclusive, float *out)
{
	const cJSON *item = get_present(obj, key);
	double		v;

	if (item == NULL)
	{
		note_default(c, key);
		return CM_OK;
	}
	if (!cJSON_IsNumber(item))
		return cm_set_error(c->err, CM_ERR_MODEL, "%s: \"%s%s\" must be a number",
							c->label, c->section, key);
	v = item->valuedouble;
	/* checked as the float it becomes: 1e-50 is 0 for the kernels */
	if (!isfinite(v) || v < min || v > max || (min_exclusive && (float) v <= (float) min))
		return cm_set_error(c->err, CM_ERR_MODEL, "%s: \"%s%s\" is %g, expected a value in %c%g, %g]",
							c->label, c->section, key, v, min_exclusive ? '(' : '[', min, max);
	*out = (float) v;
	return CM_OK;
}

static cm_status
get_bool(json_ctx *c, const cJSON *obj, const char *key, bool *out)
{
	const cJSON *item = get_present(obj, key);

	if (item == NULL)
	{
		note_default(c, key);
		return CM_OK;
	}
	if (!cJSON_IsBool(item))
		return cm_set_error(c->err, CM_ERR_MODEL, "%s: \"%s%s\" must be true or false",
							c->label, c->section, key);
	*out = cJSON_IsTrue(item);
	return CM_OK;
}

const char *
cm_activation_name(cm_activation act)
{
	switch (act)
	{
		case CM_ACT_QUICK_GELU:
			return "quick_gelu";
		case CM_ACT_GELU:
			return "gelu";
		case CM_ACT_GELU_TANH:
			return "gelu_pytorch_tanh";
	}
	return "?";
}

static cm_status
get_activation(json_ctx *c, const cJSON *obj, cm_activation *out)
{
	const cJSON *item = get_present(obj, "hidden_act");
	const char *s;

	if (item == NULL)
	{
		note_default(c, "hidden_act");
		return CM_OK;
	}
	if (!cJSON_IsString(item))
		return cm_set_error(c->err, CM_ERR_MODEL, "%s: \"%shidden_act\" must be a string",
							c->label, c->section);
	s = item->valuestring;
	if (strcmp(s, "quick_gelu") == 0)
		*out = CM_ACT_QUICK_GELU;
	else if (strcmp(s, "gelu") == 0)
		*out = CM_ACT_GELU;
	else if (strcmp(s, "gelu_new") == 0 || strcmp(s, "gelu_pytorch_tanh") == 0)
		*out = CM_ACT_GELU_TANH;
	else
		return cm_set_error(c->err, CM_ERR_UNSUPPORTED,
							"%s: \"%shidden_act\" \"%.40s\" is not supported (quick_gelu, gelu, gelu_new, gelu_pytorch_tanh)",
							c->label, c->section, s);
	return CM_OK;
}

/* Keys common to both towers, then their shared consistency checks. */
static cm_status
parse_tower(json_ctx *c, const cJSON *obj, cm_tower_config *t)
{
	cm_status	s;

	if ((s = get_int32(c, obj, "hidden_size", 1, CM_CONFIG_MAX_HIDDEN, &t->hidden_size)) != CM_OK ||
		(s = get_int32(c, obj, "intermediate_size", 1, CM_CONFIG_MAX_INTERMEDIATE, &t->intermediate_size)) != CM_OK ||
		(s = get_int32(c, obj, "num_hidden_layers", 1, CM_CONFIG_MAX_LAYERS, &t->num_layers)) != CM_OK ||
		(s = get_int32(c, obj, "num_attention_heads", 1, CM_CONFIG_MAX_HIDDEN, &t->num_heads)) != CM_OK ||
		(s = get_float(c, obj, "layer_norm_eps", 0.0, 1.0, true, &t->layer_norm_eps)) != CM_OK ||
		(s = get_activation(c, obj, &t->act)) != CM_OK)
		return s;
	if (t->hidden_size % t->num_heads != 0)
		return cm_set_error(c->err, CM_ERR_MODEL,
							"%s: \"%shidden_size\" %d is not divisible by \"%snum_attention_heads\" %d",
							c->label, c->section, t->hidden_size, c->section, t->num_heads);
	return CM_OK;
}

/*
 * A tower's section: "text_config" overlaid with the legacy
 * "text_config_dict" when present (transformers lets the latter win).
 */
static cm_status
get_section(json_ctx *c, const cJSON *root, const char *key, const char *legacy_key,
			const cJSON **main_out, const cJSON **legacy_out)
{
	const cJSON *m = get_present(root, key);
	const cJSON *l = get_present(root, legacy_key);

	if (m != NULL && !cJSON_IsObject(m))
		return cm_set_error(c->err, CM_ERR_MODEL, "%s: \"%s\" must be an object", c->label, key);
	if (l != NULL && !cJSON_IsObject(l))
		return cm_set_error(c->err, CM_ERR_MODEL, "%s: \"%s\" must be an object", c->label, legacy_key);
	*main_out = m;
	*legacy_out = l;
	return CM_OK;
}

/* projection_size: SigLIP's text head width (absent: hidden_size). */
static cm_status
parse_text(json_ctx *c, const cJSON *obj, cm_text_config *t, int *projection_size)
{
	cm_status	s;
	int64_t		bos = t->bos_token_id,
				eos = t->eos_token_id,
				pad = t->pad_token_id;

	if ((s = parse_tower(c, obj, &t->t)) != CM_OK ||
		(s = get_int32(c, obj, "vocab_size", 1, CM_CONFIG_MAX_VOCAB, &t->vocab_size)) != CM_OK ||
		(s = get_int32(c, obj, "max_position_embeddings", 2, CM_CONFIG_MAX_POSITIONS, &t->max_positions)) != CM_OK ||
		(s = get_int(c, obj, "bos_token_id", 0, CM_CONFIG_MAX_VOCAB, &bos)) != CM_OK ||
		(s = get_int(c, obj, "eos_token_id", 0, CM_CONFIG_MAX_VOCAB, &eos)) != CM_OK ||
		(s = get_int(c, obj, "pad_token_id", 0, CM_CONFIG_MAX_VOCAB, &pad)) != CM_OK)
		return s;
	t->bos_token_id = (int32_t) bos;
	t->eos_token_id = (int32_t) eos;
	t->pad_token_id = (int32_t) pad;
	if (projection_size != NULL)
	{
		*projection_size = t->t.hidden_size;
		if ((s = get_int32(c, obj, "projection_size", 1, CM_CONFIG_MAX_PROJECTION, projection_size)) != CM_OK)
			return s;
	}
	return CM_OK;
}

static cm_status
parse_vision(json_ctx *c, const cJSON *obj, cm_vision_config *v)
{
	cm_status	s;
	bool		use_head = v->map_head;

	if ((s = parse_tower(c, obj, &v->t)) != CM_OK ||
		(s = get_int32(c, obj, "image_size", 1, CM_CONFIG_MAX_IMAGE_SIZE, &v->image_size)) != CM_OK ||
		(s = get_int32(c, obj, "patch_size", 1, CM_CONFIG_MAX_IMAGE_SIZE, &v->patch_size)) != CM_OK ||
		(s = get_int32(c, obj, "num_channels", 1, 64, &v->num_channels)) != CM_OK)
		return s;
	if (v->map_head)
	{
		/* SigLIP: without the head there is no image embedding to give */
		if (get_present(obj, "vision_use_head") != NULL &&
			(s = get_bool(c, obj, "vision_use_head", &use_head)) != CM_OK)
			return s;
		if (!use_head)
			return cm_set_error(c->err, CM_ERR_UNSUPPORTED,
								"%s: \"%svision_use_head\" is false: the model has no image embedding head",
								c->label, c->section);
	}
	return CM_OK;
}

/* Checks of a vision tower's geometry; fills grid and n_positions. */
static cm_status
finish_vision(const char *label, cm_vision_config *v, cm_error *err)
{
	if (v->num_channels != 3)
		return cm_set_error(err, CM_ERR_UNSUPPORTED, "%s: vision num_channels is %d, only 3 (RGB) is supported",
							label, v->num_channels);
	if (v->patch_size > v->image_size)
		return cm_set_error(err, CM_ERR_MODEL, "%s: vision patch_size %d exceeds image_size %d",
							label, v->patch_size, v->image_size);
	/* The patch convolution has stride = patch size: a remainder is dropped. */
	v->grid = v->image_size / v->patch_size;
	v->n_positions = v->grid * v->grid + (v->class_token ? 1 : 0);
	return CM_OK;
}

cm_status
cm_config_parse(const char *json, size_t len, const char *label,
				cm_config *out, cm_error *err)
{
	json_ctx	c = {.label = label, .section = "", .err = err};
	cJSON	   *root;
	const cJSON *tm,
			   *tl,
			   *vm,
			   *vl,
			   *mt;
	int			text_projection = 0;
	bool		siglip;
	cm_status	s;

	memset(out, 0, sizeof(*out));
	c.defaulted = out->defaulted;
	c.defaulted_size = sizeof(out->defaulted);

	root = parse_whole(json, len);
	if (root == NULL)
		return cm_set_error(err, CM_ERR_MODEL, "%s: not valid JSON", label);
	if (!cJSON_IsObject(root))
	{
		cJSON_Delete(root);
		return cm_set_error(err, CM_ERR_MODEL, "%s: top level is not a JSON object", label);
	}

	mt = get_present(root, "model_type");
	if (mt != NULL && (!cJSON_IsString(mt) || (strcmp(mt->valuestring, "clip") != 0 &&
											   strcmp(mt->valuestring, "siglip") != 0)))
	{
		s = cm_set_error(err, CM_ERR_UNSUPPORTED, "%s: \"model_type\" is %s%.40s%s; supported: \"clip\", \"siglip\"",
						 label, cJSON_IsString(mt) ? "\"" : "",
						 cJSON_IsString(mt) ? mt->valuestring : "not a string",
						 cJSON_IsString(mt) ? "\"" : "");
		goto done;
	}
	siglip = mt != NULL && strcmp(mt->valuestring, "siglip") == 0;
	out->family = siglip ? CM_FAMILY_SIGLIP : CM_FAMILY_CLIP;
	out->text = siglip ? default_siglip_text : default_text;
	out->vision = siglip ? default_siglip_vision : default_vision;
	out->projection_dim = DEFAULT_PROJECTION_DIM;
	out->has_logit_bias = siglip;
	if (!siglip &&
		(s = get_int32(&c, root, "projection_dim", 1, CM_CONFIG_MAX_PROJECTION, &out->projection_dim)) != CM_OK)
		goto done;

	if ((s = get_section(&c, root, "text_config", "text_config_dict", &tm, &tl)) != CM_OK)
		goto done;
	c.section = "text_config.";
	if (tm == NULL && tl == NULL)
		note_default(&c, "*");
	if ((s = parse_text(&c, tm, &out->text, siglip ? &text_projection : NULL)) != CM_OK)
		goto done;
	if (tl != NULL)
	{
		c.section = "text_config_dict.";
		c.defaulted = NULL;
		if ((s = parse_text(&c, tl, &out->text, siglip ? &text_projection : NULL)) != CM_OK)
			goto done;
		c.defaulted = out->defaulted;
	}

	c.section = "vision_config.";
	if ((s = get_section(&c, root, "vision_config", "vision_config_dict", &vm, &vl)) != CM_OK)
		goto done;
	if (vm == NULL && vl == NULL)
		note_default(&c, "*");
	if ((s = parse_vision(&c, vm, &out->vision)) != CM_OK)
		goto done;
	if (vl != NULL)
	{
		c.section = "vision_config_dict.";
		c.defaulted = NULL;
		if ((s = parse_vision(&c, vl, &out->vision)) != CM_OK)
			goto done;
	}

	/* Cross-key checks */
	if ((s = finish_vision(label, &out->vision, err)) != CM_OK)
		goto done;
	if (siglip)
	{
		/* Both towers end in the vision width: the text head maps to it. */
		out->projection_dim = out->vision.t.hidden_size;
		if (text_projection != out->projection_dim)
		{
			s = cm_set_error(err, CM_ERR_MODEL,
							 "%s: text_config.projection_size %d differs from vision_config.hidden_size %d",
							 label, text_projection, out->projection_dim);
			goto done;
		}
	}
	else if (out->text.eos_token_id == 2)
	{
		/*
		 * Configs written before transformers' fix of the EOS id pool at the
		 * argmax of the ids, which is where EOS sits in CLIP's vocabulary.
		 */
		out->text.pooling = CM_POOL_ARGMAX;
	}
	if (out->text.eos_token_id >= out->text.vocab_size || out->text.bos_token_id >= out->text.vocab_size)
	{
		if (siglip)
			out->text.eos_token_id = out->text.bos_token_id = -1;	/* unused by SigLIP's pooling */
		else
		{
			s = cm_set_error(err, CM_ERR_MODEL, "%s: text_config bos/eos token id (%d/%d) outside the vocabulary of %d",
							 label, (int) out->text.bos_token_id, (int) out->text.eos_token_id,
							 out->text.vocab_size);
			goto done;
		}
	}
	if (out->text.pad_token_id >= out->text.vocab_size)
		out->text.pad_token_id = -1;
	s = CM_OK;

done:
	cJSON_Delete(root);
	return s;
}

/* "size": 224 (legacy) or {"shortest_edge": 224}; "crop_size": 224 or {"height", "width"}. */
static cm_status
get_size_field(json_ctx *c, const cJSON *root, const char *key, const char *sub1,
			   const char *sub2, int *v1, int *v2)
{
	const cJSON *item = get_present(root, key);
	cm_status	s;

	if (item == NULL)
	{
		note_default(c, key);
		return CM_OK;
	}
	if (cJSON_IsNumber(item))
	{
		s = get_int32(c, root, key, 1, CM_CONFIG_MAX_IMAGE_SIZE, v1);
		if (v2 != NULL)
			*v2 = *v1;
		return s;
	}
	if (!cJSON_IsObject(item))
		return cm_set_error(c->err, CM_ERR_MODEL, "%s: \"%s\" must be a number or an object",
							c->label, key);
	if (get_present(item, sub1) == NULL || (sub2 != NULL && get_present(item, sub2) == NULL))
		return cm_set_error(c->err, CM_ERR_UNSUPPORTED, "%s: \"%s\" lacks \"%s\"%s%s%s",
							c->label, key, sub1, sub2 ? " or \"" : "", sub2 ? sub2 : "",
							sub2 ? "\"" : "");
	{
		json_ctx	sub = *c;
		char		section[64];

		snprintf(section, sizeof(section), "%s.", key);
		sub.section = section;
		if ((s = get_int32(&sub, item, sub1, 1, CM_CONFIG_MAX_IMAGE_SIZE, v1)) != CM_OK)
			return s;
		if (sub2 != NULL && (s = get_int32(&sub, item, sub2, 1, CM_CONFIG_MAX_IMAGE_SIZE, v2)) != CM_OK)
			return s;
	}
	return CM_OK;
}

/*
 * The least standard deviation a preprocessor may divide by: real ones are
 * 0.2-0.5, and a smaller one (or one that is 0 once a float, such as
 * 3e-308) would turn pixels into infinities.
 */
#define CM_MIN_STD 1e-6

static cm_status
get_triple(json_ctx *c, const cJSON *root, const char *key, bool positive, float out[3])
{
	const cJSON *item = get_present(root, key);

	if (item == NULL)
	{
		note_default(c, key);
		return CM_OK;
	}
	if (cJSON_IsNumber(item))
	{
		/* A scalar applies to all three channels. */
		float		v = 0;
		cm_status	s = get_float(c, root, key, positive ? CM_MIN_STD : -1e6, 1e6, false, &v);

		out[0] = out[1] = out[2] = v;
		return s;
	}
	if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) != 3)
		return cm_set_error(c->err, CM_ERR_MODEL, "%s: \"%s\" must be an array of 3 numbers",
							c->label, key);
	for (int i = 0; i < 3; i++)
	{
		const cJSON *e = cJSON_GetArrayItem(item, i);
		double		v;

		if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble))
			return cm_set_error(c->err, CM_ERR_MODEL, "%s: \"%s\"[%d] is not a finite number",
								c->label, key, i);
		v = e->valuedouble;
		if ((positive && !(v >= CM_MIN_STD)) || fabs(v) > 1e6)
			return cm_set_error(c->err, CM_ERR_MODEL, "%s: \"%s\"[%d] is %g, out of range",
								c->label, key, i, v);
		out[i] = (float) v;
	}
	return CM_OK;
}

cm_status
cm_preprocessor_parse(const char *json, size_t len, const char *label,
					  const cm_vision_config *vision,
					  cm_image_params *out, cm_error *err)
{
	json_ctx	c = {.label = label, .section = "", .err = err};
	cJSON	   *root;
	cm_status	s;
	bool		do_rescale = true,
				do_normalize = true;
	int			resample = 3;
	const cJSON *size_item;

	memset(out, 0, sizeof(*out));
	out->shortest_edge = 224;
	out->crop_height = out->crop_width = 224;
	out->do_resize = true;
	out->do_center_crop = true;
	out->rescale_factor = 1.0f / 255.0f;
	memcpy(out->mean, openai_clip_mean, sizeof(out->mean));
	memcpy(out->std, openai_clip_std, sizeof(out->std));

	root = parse_whole(json, len);
	if (root == NULL)
		return cm_set_error(err, CM_ERR_MODEL, "%s: not valid JSON", label);
	if (!cJSON_IsObject(root))
	{
		s = cm_set_error(err, CM_ERR_MODEL, "%s: top level is not a JSON object", label);
		goto done;
	}

	size_item = get_present(root, "size");
	if (size_item != NULL && cJSON_IsObject(size_item) &&
		get_present(size_item, "shortest_edge") == NULL)
	{
		/* {"height", "width"}: a resize straight to that size, no crop (SigLIP) */
		out->resize_mode = CM_RESIZE_EXACT;
		out->do_center_crop = false;
		if ((s = get_size_field(&c, root, "size", "height", "width", &out->crop_height, &out->crop_width)) != CM_OK)
			goto done;
		out->shortest_edge = out->crop_height < out->crop_width ? out->crop_height : out->crop_width;
	}
	else if ((s = get_size_field(&c, root, "size", "shortest_edge", NULL, &out->shortest_edge, NULL)) != CM_OK)
		goto done;
	if ((s = get_size_field(&c, root, "crop_size", "height", "width", &out->crop_height, &out->crop_width)) != CM_OK ||
		(s = get_bool(&c, root, "do_resize", &out->do_resize)) != CM_OK ||
		(s = get_bool(&c, root, "do_center_crop", &out->do_center_crop)) != CM_OK ||
		(s = get_bool(&c, root, "do_rescale", &do_rescale)) != CM_OK ||
		(s = get_float(&c, root, "rescale_factor", 0.0, 1e6, true, &out->rescale_factor)) != CM_OK ||
		(s = get_bool(&c, root, "do_normalize", &do_normalize)) != CM_OK ||
		(s = get_triple(&c, root, "image_mean", false, out->mean)) != CM_OK ||
		(s = get_triple(&c, root, "image_std", true, out->std)) != CM_OK ||
		(s = get_int32(&c, root, "resample", 0, 5, &resample)) != CM_OK)
		goto done;
	if (out->resize_mode == CM_RESIZE_EXACT && get_present(root, "crop_size") != NULL && out->do_center_crop)
	{
		s = cm_set_error(err, CM_ERR_UNSUPPORTED,
						 "%s: a resize to \"size\" {height, width} followed by a centre crop is not supported",
						 label);
		goto done;
	}
	if (out->resize_mode == CM_RESIZE_EXACT && !out->do_resize)
	{
		s = cm_set_error(err, CM_ERR_UNSUPPORTED,
						 "%s: \"do_resize\": false is not supported (the vision tower needs a %dx%d input)",
						 label, vision->image_size, vision->image_size);
		goto done;
	}

	if (resample != 3)
	{
		s = cm_set_error(err, CM_ERR_UNSUPPORTED, "%s: \"resample\" %d is not supported, only 3 (bicubic)",
						 label, resample);
		goto done;
	}
	if (!out->do_center_crop && out->resize_mode == CM_RESIZE_SHORTEST)
	{
		s = cm_set_error(err, CM_ERR_UNSUPPORTED,
						 "%s: \"do_center_crop\": false is not supported (the vision tower needs a square input)",
						 label);
		goto done;
	}
	if (out->crop_height != vision->image_size || out->crop_width != vision->image_size)
	{
		s = cm_set_error(err, CM_ERR_MODEL,
						 "%s: %s %dx%d does not match the vision tower's image_size %d",
						 label, out->resize_mode == CM_RESIZE_EXACT ? "size" : "crop_size",
						 out->crop_height, out->crop_width, vision->image_size);
		goto done;
	}
	if (!do_rescale)
		out->rescale_factor = 1.0f;
	if (!do_normalize)
	{
		for (int i = 0; i < 3; i++)
		{
			out->mean[i] = 0.0f;
			out->std[i] = 1.0f;
		}
	}
	s = CM_OK;

done:
	cJSON_Delete(root);
	return s;
}

cm_status
cm_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len, cm_error *err)
{
	int			fd;
	struct stat sb;
	char	   *buf;
	size_t		got = 0;

	*out = NULL;
	*out_len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
	{
		int			e = errno;
		cm_status	s = cm_set_error(err, CM_ERR_IO, "%s: cannot open: %s", path, strerror(e));

		if (e == ENOENT)
			cm_error_set_missing(err, path);
		return s;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
	{
		close(fd);
		return cm_set_error(err, CM_ERR_IO, "%s: not a readable regular file", path);
	}
	if ((uint64_t) sb.st_size > max_bytes)
	{
		close(fd);
		return cm_set_error(err, CM_ERR_MODEL, "%s: %lld bytes, more than the %zu-byte limit",
							path, (long long) sb.st_size, max_bytes);
	}
	buf = malloc((size_t) sb.st_size + 1);
	if (buf == NULL)
	{
		close(fd);
		return cm_set_error(err, CM_ERR_NOMEM, "%s: out of memory", path);
	}
	while (got < (size_t) sb.st_size)
	{
		ssize_t		r = read(fd, buf + got, (size_t) sb.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
		{
			int			e = errno;

			free(buf);
			close(fd);
			return cm_set_error(err, CM_ERR_IO, "%s: read failed: %s", path,
								r < 0 ? strerror(e) : "file shrank while reading");
		}
		got += (size_t) r;
	}
	close(fd);
	buf[got] = '\0';
	*out = buf;
	*out_len = got;
	return CM_OK;
}

cm_status
cm_read_gzip_file(const char *path, size_t max_in, size_t max_out, char **out, size_t *out_len,
				  cm_error *err)
{
	char	   *in = NULL,
			   *buf = NULL;
	size_t		in_len,
				cap = 0,
				got = 0;
	z_stream	z;
	cm_status	s;
	int			r = Z_OK;

	*out = NULL;
	*out_len = 0;
	if ((s = cm_read_file(path, max_in, &in, &in_len, err)) != CM_OK)
		return s;
	memset(&z, 0, sizeof(z));
	/* 16 + MAX_WBITS: a gzip wrapper, not raw zlib */
	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
	{
		free(in);
		return cm_set_error(err, CM_ERR_NOMEM, "%s: cannot start decompression", path);
	}
	z.next_in = (Bytef *) in;
	z.avail_in = (uInt) (in_len > UINT32_MAX ? UINT32_MAX : in_len);
	for (;;)
	{
		if (got == cap)
		{
			size_t		new_cap = cap == 0 ? (size_t) 1 << 16 : cap * 2;
			char	   *p;

			if (cap >= max_out)
			{
				s = cm_set_error(err, CM_ERR_MODEL, "%s: decompresses to more than the %zu-byte limit",
								 path, max_out);
				goto done;
			}
			if (new_cap > max_out)
				new_cap = max_out;
			if ((p = realloc(buf, new_cap + 1)) == NULL)
			{
				s = cm_set_error(err, CM_ERR_NOMEM, "%s: out of memory decompressing", path);
				goto done;
			}
			buf = p;
			cap = new_cap;
		}
		z.next_out = (Bytef *) buf + got;
		z.avail_out = (uInt) (cap - got);
		r = inflate(&z, Z_NO_FLUSH);
		got = cap - z.avail_out;
		if (r == Z_STREAM_END)
		{
			/* Python's gzip reads concatenated members; trailing zeros are padding */
			size_t		left = z.avail_in;
			const unsigned char *rest = z.next_in;

			while (left > 0 && *rest == 0)
			{
				rest++;
				left--;
			}
			if (left == 0)
				break;
			if (inflateReset(&z) != Z_OK)
			{
				r = Z_DATA_ERROR;
				break;
			}
			continue;
		}
		if (r == Z_BUF_ERROR && z.avail_in == 0)
		{
			r = Z_DATA_ERROR;	/* the data ended inside a member */
			break;
		}
		if (r != Z_OK && r != Z_BUF_ERROR)
			break;
	}
	if (r != Z_STREAM_END)
		s = cm_set_error(err, CM_ERR_MODEL, "%s: not a valid gzip file (%s)", path,
						 z.msg ? z.msg : "truncated");
	else
		s = CM_OK;

done:
	inflateEnd(&z);
	free(in);
	if (s != CM_OK)
	{
		free(buf);
		return s;
	}
	if (buf == NULL && (buf = malloc(1)) == NULL)
		return cm_set_error(err, CM_ERR_NOMEM, "%s: out of memory", path);
	buf[got] = '\0';
	*out = buf;
	*out_len = got;
	return CM_OK;
}

/* ---------------------------------------------------------------- open_clip */

/* open_clip's defaults (model.py: CLIPVisionCfg, CLIPTextCfg) */
static const cm_text_config default_openclip_text = {
	.t = {.hidden_size = 512, .intermediate_size = 2048, .num_layers = 12,
	.num_heads = 8, .layer_norm_eps = 1e-5f, .act = CM_ACT_GELU},
	.vocab_size = 49408, .max_positions = 77,
	.bos_token_id = -1, .eos_token_id = -1, .pad_token_id = 0,
	.causal = true, .pooling = CM_POOL_ARGMAX,
};
static const cm_vision_config default_openclip_vision = {
	.t = {.hidden_size = 768, .intermediate_size = 3072, .num_layers = 12,
	.num_heads = 12, .layer_norm_eps = 1e-5f, .act = CM_ACT_GELU},
	.image_size = 224, .patch_size = 16, .num_channels = 3,
	.class_token = true, .pre_norm = true,
};

/* Every key of obj is one of names (NULL-terminated): open_clip refuses others. */
static cm_status
only_known_keys(json_ctx *c, const cJSON *obj, const char *const *names)
{
	const cJSON *item;

	cJSON_ArrayForEach(item, obj)
	{
		const char *const *n;

		for (n = names; *n != NULL && strcmp(*n, item->string) != 0; n++)
			;
		if (*n == NULL)
			return cm_set_error(c->err, CM_ERR_UNSUPPORTED, "%s: \"%s%.64s\" is not supported",
								c->label, c->section, item->string);
	}
	return CM_OK;
}

/*
 * A key that selects an architecture variant this runtime does not run: it
 * must be absent, null, false, or one of the strings in allowed (which may
 * be NULL).  allow_true also accepts true (a default that is on).
 */
static cm_status
keep_default(json_ctx *c, const cJSON *obj, const char *key, const char *const *allowed,
			 bool allow_true)
{
	const cJSON *item = get_present(obj, key);

	if (item == NULL || cJSON_IsFalse(item) || (allow_true && cJSON_IsTrue(item)))
		return CM_OK;
	if (cJSON_IsString(item) && allowed != NULL)
		for (const char *const *a = allowed; *a != NULL; a++)
			if (strcmp(*a, item->valuestring) == 0)
				return CM_OK;
	if (cJSON_IsString(item))
		return cm_set_error(c->err, CM_ERR_UNSUPPORTED, "%s: \"%s%s\" \"%.40s\" is not supported",
							c->label, c->section, key, item->valuestring);
	return cm_set_error(c->err, CM_ERR_UNSUPPORTED, "%s: \"%s%s\" other than its default is not supported",
						c->label, c->section, key);
}

/* A side given as a number or as a square [n, n] (open_clip's to_2tuple). */
static cm_status
get_side(json_ctx *c, const cJSON *obj, const char *key, int *out)
{
	const cJSON *item = get_present(obj, key);

	if (item != NULL && cJSON_IsArray(item))
	{
		const cJSON *a = cJSON_GetArrayItem(item, 0),
				   *b = cJSON_GetArrayItem(item, 1);

		if (cJSON_GetArraySize(item) != 2 || !cJSON_IsNumber(a) || !cJSON_IsNumber(b))
			return cm_set_error(c->err, CM_ERR_MODEL, "%s: \"%s%s\" must be a number or [height, width]",
								c->label, c->section, key);
		if (a->valuedouble != b->valuedouble)
			return cm_set_error(c->err, CM_ERR_UNSUPPORTED, "%s: \"%s%s\" is not square",
								c->label, c->section, key);
		{
			cJSON	   *tmp = cJSON_CreateObject();
			cm_status	s;

			if (tmp == NULL || cJSON_AddNumberToObject(tmp, key, a->valuedouble) == NULL)
			{
				cJSON_Delete(tmp);
				return cm_set_error(c->err, CM_ERR_NOMEM, "%s: out of memory", c->label);
			}
			s = get_int32(c, tmp, key, 1, CM_CONFIG_MAX_IMAGE_SIZE, out);
			cJSON_Delete(tmp);
			return s;
		}
	}
	return get_int32(c, obj, key, 1, CM_CONFIG_MAX_IMAGE_SIZE, out);
}

/* int(width * mlp_ratio), as open_clip sizes the MLP */
static cm_status
get_mlp_width(json_ctx *c, const cJSON *obj, int width, int *out)
{
	float		ratio = 4.0f;
	double		w;
	cm_status	s;
	const cJSON *item = get_present(obj, "mlp_ratio");

	if ((s = get_float(c, obj, "mlp_ratio", 0.0, 64.0, true, &ratio)) != CM_OK)
		return s;
	w = (double) width * (item != NULL ? item->valuedouble : 4.0);
	if (!(w >= 1 && w <= CM_CONFIG_MAX_INTERMEDIATE))
		return cm_set_error(c->err, CM_ERR_MODEL, "%s: \"%smlp_ratio\" gives an MLP width of %g",
							c->label, c->section, w);
	*out = (int) w;
	return CM_OK;
}

/* norm_kwargs: {"eps": x} only; act_kwargs: GELU's {"approximate": "none" | "tanh"} */
static cm_status
get_norm_act(json_ctx *c, const cJSON *obj, bool quick_gelu, cm_tower_config *t)
{
	static const char *const norm_keys[] = {"eps", NULL};
	static const char *const act_keys[] = {"approximate", NULL};
	const cJSON *norm = get_present(obj, "norm_kwargs");
	const cJSON *act = get_present(obj, "act_kwargs");
	char		section[64];
	json_ctx	sub = *c;
	cm_status	s;

	sub.defaulted = NULL;
	if (norm != NULL)
	{
		snprintf(section, sizeof(section), "%snorm_kwargs.", c->section);
		sub.section = section;
		if (!cJSON_IsObject(norm))
			return cm_set_error(c->err, CM_ERR_MODEL, "%s: \"%snorm_kwargs\" must be an object",
								c->label, c->section);
		if ((s = only_known_keys(&sub, norm, norm_keys)) != CM_OK ||
			(s = get_float(&sub, norm, "eps", 0.0, 1.0, true, &t->layer_norm_eps)) != CM_OK)
			return s;
	}
	if (act != NULL)
	{
		const cJSON *a;

		snprintf(section, sizeof(section), "%sact_kwargs.", c->section);
		sub.section = section;
		if (!cJSON_IsObject(act))
			return cm_set_error(c->err, CM_ERR_MODEL, "%s: \"%sact_kwargs\" must be an object",
								c->label, c->section);
		if ((s = only_known_keys(&sub, act, act_keys)) != CM_OK)
			return s;
		a = get_present(act, "approximate");
		if (a != NULL && quick_gelu)
			return cm_set_error(c->err, CM_ERR_UNSUPPORTED,
								"%s: \"%sact_kwargs\" with \"quick_gelu\" is not supported",
								c->label, c->section);
		if (a != NULL && (!cJSON_IsString(a) || (strcmp(a->valuestring, "none") != 0 &&
												  strcmp(a->valuestring, "tanh") != 0)))
			return cm_set_error(c->err, CM_ERR_UNSUPPORTED,
								"%s: \"%sact_kwargs.approximate\" must be \"none\" or \"tanh\"",
								c->label, c->section);
		if (a != NULL && strcmp(a->valuestring, "tanh") == 0)
			t->act = CM_ACT_GELU_TANH;
	}
	return CM_OK;
}

/* The custom attention block's switches: all off (the default block). */
static cm_status
keep_default_block(json_ctx *c, const cJSON *obj)
{
	static const char *const block[] = {"default", NULL};
	static const char *const flags[] = {"qk_norm", "scaled_cosine_attn", "scale_heads",
	"scale_attn_inner", "scale_attn", "scale_fc", NULL};
	cm_status	s = keep_default(c, obj, "block_type", block, false);

	for (const char *const *f = flags; s == CM_OK && *f != NULL; f++)
		s = keep_default(c, obj, *f, NULL, false);
	return s;
}

static cm_status
parse_openclip_vision(json_ctx *c, const cJSON *v, bool quick_gelu, cm_vision_config *out)
{
	static const char *const known[] = {
		"layers", "width", "head_width", "mlp_ratio", "patch_size", "image_size", "image_seq_len",
		"ls_init_value", "patch_dropout", "attentional_pool", "attn_pooler_queries",
		"attn_pooler_heads", "no_ln_pre", "pos_embed_type", "final_ln_after_pool", "pool_type",
		"output_tokens", "act_kwargs", "norm_kwargs", "block_type", "qk_norm",
		"scaled_cosine_attn", "scale_heads", "scale_attn_inner", "scale_attn", "scale_fc",
		"timm_model_name", "timm_model_pretrained", "timm_pool", "timm_proj", "timm_proj_bias",
		"timm_drop", "timm_drop_path", "timm_model_kwargs", NULL};
	static const char *const learnable[] = {"learnable", NULL};
	static const char *const tok[] = {"tok", NULL};
	const cJSON *layers = get_present(v, "layers");
	int			head_width = 64;
	cm_status	s;

	if ((s = only_known_keys(c, v, known)) != CM_OK)
		return s;
	if (get_present(v, "timm_model_name") != NULL)
		return cm_set_error(c->err, CM_ERR_UNSUPPORTED,
							"%s: \"%stimm_model_name\": image towers from timm are not supported",
							c->label, c->section);
	if (layers != NULL && cJSON_IsArray(layers))
		return cm_set_error(c->err, CM_ERR_UNSUPPORTED,
							"%s: \"%slayers\" is a list: ResNet image towers are not supported",
							c->label, c->section);
	if ((s = keep_default(c, v, "ls_init_value", NULL, false)) != CM_OK ||
		(s = keep_default(c, v, "attentional_pool", NULL, false)) != CM_OK ||
		(s = keep_default(c, v, "no_ln_pre", NULL, false)) != CM_OK ||
		(s = keep_default(c, v, "pos_embed_type", learnable, false)) != CM_OK ||
		(s = keep_default(c, v, "pool_type", tok, false)) != CM_OK ||
		(s = keep_default(c, v, "image_seq_len", NULL, false)) != CM_OK ||
		(s = keep_default_block(c, v)) != CM_OK)
		return s;
	if ((s = get_int32(c, v, "layers", 1, CM_CONFIG_MAX_LAYERS, &out->t.num_layers)) != CM_OK ||
		(s = get_int32(c, v, "width", 1, CM_CONFIG_MAX_HIDDEN, &out->t.hidden_size)) != CM_OK ||
		(s = get_int32(c, v, "head_width", 1, CM_CONFIG_MAX_HIDDEN, &head_width)) != CM_OK ||
		(s = get_side(c, v, "patch_size", &out->patch_size)) != CM_OK ||
		(s = get_side(c, v, "image_size", &out->image_size)) != CM_OK ||
		(s = get_mlp_width(c, v, out->t.hidden_size, &out->t.intermediate_size)) != CM_OK)
		return s;
	out->t.act = quick_gelu ? CM_ACT_QUICK_GELU : CM_ACT_GELU;
	if ((s = get_norm_act(c, v, quick_gelu, &out->t)) != CM_OK)
		return s;
	/* final_ln_after_pool: with the class token pooled, the same either way */
	out->t.num_heads = out->t.hidden_size / head_width;
	if (out->t.num_heads < 1 || out->t.hidden_size % out->t.num_heads != 0)
		return cm_set_error(c->err, CM_ERR_MODEL, "%s: \"%swidth\" %d and \"%shead_width\" %d give no whole number of heads",
							c->label, c->section, out->t.hidden_size, c->section, head_width);
	return CM_OK;
}

static cm_status
parse_openclip_tokenizer(json_ctx *c, const cJSON *kw, cm_config *out)
{
	static const char *const known[] = {"bpe_path", "clean", "additional_special_tokens",
	"reduction_mask", NULL};
	static const char *const lower[] = {"lower", NULL};
	const cJSON *bpe = get_present(kw, "bpe_path");
	const cJSON *extra = get_present(kw, "additional_special_tokens");
	const cJSON *mask = get_present(kw, "reduction_mask");
	cm_status	s;

	if (!cJSON_IsObject(kw))
		return cm_set_error(c->err, CM_ERR_MODEL, "%s: \"text_cfg.tokenizer_kwargs\" must be an object",
							c->label);
	c->section = "text_cfg.tokenizer_kwargs.";
	if ((s = only_known_keys(c, kw, known)) != CM_OK ||
		(s = keep_default(c, kw, "clean", lower, false)) != CM_OK)
		return s;
	if ((extra != NULL && !(cJSON_IsArray(extra) && cJSON_GetArraySize(extra) == 0)) ||
		(mask != NULL && !(cJSON_IsString(mask) && mask->valuestring[0] == '\0')))
		return cm_set_error(c->err, CM_ERR_UNSUPPORTED,
							"%s: \"text_cfg.tokenizer_kwargs.%s\" is not supported",
							c->label, extra != NULL ? "additional_special_tokens" : "reduction_mask");
	if (bpe != NULL)
	{
		const char *p;
		size_t		n;

		if (!cJSON_IsString(bpe))
			return cm_set_error(c->err, CM_ERR_MODEL, "%s: \"text_cfg.tokenizer_kwargs.bpe_path\" must be a string",
								c->label);
		p = bpe->valuestring;
		n = strlen(p);
		/* a path inside the model directory: relative, no "." or ".." part */
		if (n == 0 || n >= sizeof(out->bpe_path) || p[0] == '/')
			goto outside;
		for (const char *part = p; part != NULL;)
		{
			const char *slash = strchr(part, '/');
			size_t		k = slash ? (size_t) (slash - part) : strlen(part);

			if (k == 0 || (k == 1 && part[0] == '.') || (k == 2 && part[0] == '.' && part[1] == '.'))
				goto outside;
			part = slash ? slash + 1 : NULL;
		}
		memcpy(out->bpe_path, p, n + 1);
	}
	return CM_OK;

outside:
	return cm_set_error(c->err, CM_ERR_MODEL,
						"%s: \"text_cfg.tokenizer_kwargs.bpe_path\" \"%.100s\" must name a file inside the model directory (a relative path without \".\" or \"..\")",
						c->label, bpe->valuestring);
}

static cm_status
parse_openclip_text(json_ctx *c, const cJSON *t, bool quick_gelu, cm_config *out)
{
	static const char *const known[] = {
		"text_arch", "context_length", "variable_text", "vocab_size", "hf_tokenizer_name",
		"tokenizer_mode", "tokenizer_kwargs", "width", "heads", "layers", "mlp_ratio",
		"ls_init_value", "embed_cls", "pad_id", "bos_id", "eos_id", "tokenizer_type",
		"tiktoken_name", "no_causal_mask", "final_ln_after_pool", "pool_type", "proj_bias",
		"proj_type", "output_tokens", "act_kwargs", "norm_kwargs", "block_type", "qk_norm",
		"scaled_cosine_attn", "scale_heads", "scale_attn_inner", "scale_attn", "scale_fc",
		"attention_mode", "pos_embed", "rope_temperature", "mlp_type", "norm_type", "norm_eps",
		"attn_gated", "pre_norm", "norm_placement", "zero_init_residual", "reg_tokens",
		"value_residual", "attention_bias", "mlp_bias", "gate_bias", "hf_model_name",
		"hf_model_pretrained", "hf_proj_type", "hf_pooler_type", "hf_model_config", NULL};
	static const char *const clip[] = {"clip", NULL};
	static const char *const linear[] = {"linear", NULL};
	static const char *const layernorm[] = {"layernorm", NULL};
	static const char *const none[] = {"", NULL};
	cm_text_config *tc = &out->text;
	const cJSON *pool = get_present(t, "pool_type");
	const cJSON *kw = get_present(t, "tokenizer_kwargs");
	bool		no_causal = false;
	int64_t		eos = -1;
	cm_status	s;

	if ((s = only_known_keys(c, t, known)) != CM_OK)
		return s;
	if (get_present(t, "hf_model_name") != NULL || get_present(t, "hf_tokenizer_name") != NULL)
		return cm_set_error(c->err, CM_ERR_UNSUPPORTED,
							"%s: \"%s%s\": Hugging Face text towers and tokenizers in open_clip configs are not supported",
							c->label, c->section,
							get_present(t, "hf_model_name") != NULL ? "hf_model_name" : "hf_tokenizer_name");
	if ((s = keep_default(c, t, "text_arch", clip, false)) != CM_OK ||
		(s = keep_default(c, t, "variable_text", NULL, false)) != CM_OK ||
		(s = keep_default(c, t, "tokenizer_mode", NULL, false)) != CM_OK ||
		(s = keep_default(c, t, "tokenizer_type", none, false)) != CM_OK ||
		(s = keep_default(c, t, "ls_init_value", NULL, false)) != CM_OK ||
		(s = keep_default(c, t, "embed_cls", NULL, false)) != CM_OK ||
		(s = keep_default(c, t, "proj_bias", NULL, false)) != CM_OK ||
		(s = keep_default(c, t, "proj_type", linear, false)) != CM_OK ||
		(s = keep_default(c, t, "norm_type", layernorm, false)) != CM_OK ||
		(s = keep_default(c, t, "attention_bias", NULL, true)) != CM_OK ||
		(s = keep_default(c, t, "mlp_bias", NULL, true)) != CM_OK ||
		(s = keep_default_block(c, t)) != CM_OK)
		return s;
	if ((s = get_int32(c, t, "context_length", 2, CM_CONFIG_MAX_POSITIONS, &tc->max_positions)) != CM_OK ||
		(s = get_int32(c, t, "vocab_size", 1, CM_CONFIG_MAX_VOCAB, &tc->vocab_size)) != CM_OK ||
		(s = get_int32(c, t, "width", 1, CM_CONFIG_MAX_HIDDEN, &tc->t.hidden_size)) != CM_OK ||
		(s = get_int32(c, t, "heads", 1, CM_CONFIG_MAX_HIDDEN, &tc->t.num_heads)) != CM_OK ||
		(s = get_int32(c, t, "layers", 1, CM_CONFIG_MAX_LAYERS, &tc->t.num_layers)) != CM_OK ||
		(s = get_mlp_width(c, t, tc->t.hidden_size, &tc->t.intermediate_size)) != CM_OK ||
		(s = get_bool(c, t, "no_causal_mask", &no_causal)) != CM_OK ||
		(s = get_int(c, t, "eos_id", 0, CM_CONFIG_MAX_VOCAB, &eos)) != CM_OK)
		return s;
	tc->t.act = quick_gelu ? CM_ACT_QUICK_GELU : CM_ACT_GELU;
	if ((s = get_norm_act(c, t, quick_gelu, &tc->t)) != CM_OK)
		return s;
	if (tc->t.hidden_size % tc->t.num_heads != 0)
		return cm_set_error(c->err, CM_ERR_MODEL, "%s: \"%swidth\" %d is not divisible by \"%sheads\" %d",
							c->label, c->section, tc->t.hidden_size, c->section, tc->t.num_heads);
	tc->causal = !no_causal;
	if (pool != NULL)
	{
		if (!cJSON_IsString(pool))
			return cm_set_error(c->err, CM_ERR_MODEL, "%s: \"%spool_type\" must be a string", c->label, c->section);
		if (strcmp(pool->valuestring, "argmax") == 0)
			tc->pooling = CM_POOL_ARGMAX;
		else if (strcmp(pool->valuestring, "last") == 0)
			tc->pooling = CM_POOL_LAST;
		else if (strcmp(pool->valuestring, "eos") == 0)
		{
			if (eos < 0)
				return cm_set_error(c->err, CM_ERR_MODEL, "%s: \"%spool_type\" \"eos\" needs \"%seos_id\"",
									c->label, c->section, c->section);
			tc->pooling = CM_POOL_FIRST_EOS;
			tc->eos_token_id = (int32_t) eos;
		}
		else
			return cm_set_error(c->err, CM_ERR_UNSUPPORTED, "%s: \"%spool_type\" \"%.40s\" is not supported (argmax, last, eos)",
								c->label, c->section, pool->valuestring);
	}
	/* final_ln_after_pool: the layer norm is per position, so the same either way */
	out->clean_lower = true;
	if (kw != NULL)
	{
		const char *section = c->section;

		s = parse_openclip_tokenizer(c, kw, out);
		c->section = section;
	}
	return s;
}

static cm_status
parse_openclip_preprocess(json_ctx *c, const cJSON *pp, const cm_vision_config *vision,
						  cm_image_params *img)
{
	static const char *const interpolation[] = {"bicubic", "random", NULL};
	static const char *const rgb[] = {"RGB", NULL};
	const cJSON *mode = get_present(pp, "resize_mode");
	const cJSON *size = get_present(pp, "size");
	cm_status	s;

	memset(img, 0, sizeof(*img));
	img->shortest_edge = img->crop_height = img->crop_width = vision->image_size;
	img->do_resize = true;
	img->do_center_crop = true;
	img->rescale_factor = 1.0f / 255.0f;
	img->torchvision = true;
	memcpy(img->mean, openai_clip_mean, sizeof(img->mean));
	memcpy(img->std, openai_clip_std, sizeof(img->std));
	if (pp == NULL)
		return CM_OK;
	if (!cJSON_IsObject(pp))
		return cm_set_error(c->err, CM_ERR_MODEL, "%s: \"preprocess_cfg\" must be an object", c->label);
	c->section = "preprocess_cfg.";
	/* open_clip reads only its PreprocessCfg keys here and ignores the rest */
	if ((s = get_triple(c, pp, "mean", false, img->mean)) != CM_OK ||
		(s = get_triple(c, pp, "std", true, img->std)) != CM_OK ||
		(s = keep_default(c, pp, "interpolation", interpolation, false)) != CM_OK ||
		(s = keep_default(c, pp, "mode", rgb, false)) != CM_OK)
		return s;
	if (size != NULL)
	{
		int			side = 0;

		if ((s = get_side(c, pp, "size", &side)) != CM_OK)
			return s;
		if (side != vision->image_size)
			return cm_set_error(c->err, CM_ERR_MODEL, "%s: \"preprocess_cfg.size\" %d differs from the vision tower's image_size %d",
								c->label, side, vision->image_size);
	}
	if (mode != NULL)
	{
		if (!cJSON_IsString(mode))
			return cm_set_error(c->err, CM_ERR_MODEL, "%s: \"preprocess_cfg.resize_mode\" must be a string", c->label);
		if (strcmp(mode->valuestring, "squash") == 0)
		{
			img->resize_mode = CM_RESIZE_EXACT;
			img->do_center_crop = false;
		}
		else if (strcmp(mode->valuestring, "shortest") != 0)
			return cm_set_error(c->err, CM_ERR_UNSUPPORTED,
								"%s: \"preprocess_cfg.resize_mode\" \"%.40s\" is not supported (shortest, squash)",
								c->label, mode->valuestring);
	}
	return CM_OK;
}

cm_status
cm_openclip_config_parse(const char *json, size_t len, const char *label, cm_config *out,
						 cm_image_params *image, cm_error *err)
{
	static const char *const known[] = {
		"embed_dim", "vision_cfg", "text_cfg", "quick_gelu", "cast_dtype", "output_dict",
		"init_logit_scale", "init_logit_bias", "nonscalar_logit_scale", "custom_text", NULL};
	json_ctx	c = {.label = label, .section = "", .err = err};
	cJSON	   *root;
	const cJSON *mc,
			   *vc,
			   *tc;
	bool		quick_gelu = false;
	cm_status	s;

	memset(out, 0, sizeof(*out));
	memset(image, 0, sizeof(*image));
	c.defaulted = out->defaulted;
	c.defaulted_size = sizeof(out->defaulted);
	root = parse_whole(json, len);
	if (root == NULL)
		return cm_set_error(err, CM_ERR_MODEL, "%s: not valid JSON", label);
	mc = get_present(root, "model_cfg");
	if (!cJSON_IsObject(root) || mc == NULL || !cJSON_IsObject(mc))
	{
		s = cm_set_error(err, CM_ERR_MODEL, "%s: expected an object with a \"model_cfg\" object", label);
		goto done;
	}
	out->family = CM_FAMILY_OPENCLIP;
	out->text = default_openclip_text;
	out->vision = default_openclip_vision;
	c.section = "model_cfg.";
	if ((s = only_known_keys(&c, mc, known)) != CM_OK ||
		(s = keep_default(&c, mc, "custom_text", NULL, false)) != CM_OK ||
		(s = keep_default(&c, mc, "nonscalar_logit_scale", NULL, false)) != CM_OK ||
		(s = get_bool(&c, mc, "quick_gelu", &quick_gelu)) != CM_OK)
		goto done;
	if (get_present(mc, "embed_dim") == NULL)
	{
		s = cm_set_error(err, CM_ERR_MODEL, "%s: \"model_cfg.embed_dim\" is missing", label);
		goto done;
	}
	if ((s = get_int32(&c, mc, "embed_dim", 1, CM_CONFIG_MAX_PROJECTION, &out->projection_dim)) != CM_OK)
		goto done;
	/* a model made with init_logit_bias has a learned bias: SigLIP-style zero-shot */
	out->has_logit_bias = get_present(mc, "init_logit_bias") != NULL;
	vc = get_present(mc, "vision_cfg");
	tc = get_present(mc, "text_cfg");
	if ((vc != NULL && !cJSON_IsObject(vc)) || (tc != NULL && !cJSON_IsObject(tc)))
	{
		s = cm_set_error(err, CM_ERR_MODEL, "%s: \"model_cfg.%s\" must be an object", label,
						 vc != NULL && !cJSON_IsObject(vc) ? "vision_cfg" : "text_cfg");
		goto done;
	}
	c.section = "model_cfg.vision_cfg.";
	if ((s = parse_openclip_vision(&c, vc, quick_gelu, &out->vision)) != CM_OK)
		goto done;
	c.section = "model_cfg.text_cfg.";
	if ((s = parse_openclip_text(&c, tc, quick_gelu, out)) != CM_OK)
		goto done;
	if ((s = finish_vision(label, &out->vision, err)) != CM_OK)
		goto done;
	c.defaulted = NULL;
	s = parse_openclip_preprocess(&c, get_present(root, "preprocess_cfg"), &out->vision, image);

done:
	cJSON_Delete(root);
	return s;
}
