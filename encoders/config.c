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
		cm_status	s = get_float(c, root, key, positive ? 0.0 : -1e6, 1e6, positive, &v);

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
		if ((positive && !(v > 0)) || fabs(v) > 1e6)
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
