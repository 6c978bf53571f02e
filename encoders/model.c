/*
 * model.c
 *	  Bind a CLIP checkpoint's tensors to the weight structs, by name, from
 *	  one constant table, checking dtype and shape against the config.
 *
 * float32 tensors are used in place from the read-only mapping (so processes
 * that load the same file share it through the page cache); float16 and
 * bfloat16 tensors are widened once into one owned buffer.
 */
#include "model.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Which struct a table entry's destination offset refers to. */
typedef enum spec_scope
{
	SCOPE_LAYER,				/* cm_layer_weights, each layer of both towers */
	SCOPE_TEXT,					/* cm_text_weights */
	SCOPE_VISION,				/* cm_vision_weights */
	SCOPE_MODEL					/* cm_weights */
} spec_scope;

/* Symbolic dimensions, resolved from the config (per tower for D and FF). */
typedef enum spec_dim
{
	DIM_D,						/* the tower's hidden size */
	DIM_FF,						/* the tower's intermediate size */
	DIM_VOCAB,
	DIM_TEXT_POS,				/* max_position_embeddings */
	DIM_VISION_POS,				/* 1 + grid^2 */
	DIM_PROJ,					/* projection_dim */
	DIM_CHANNELS,				/* 3 */
	DIM_PATCH					/* patch_size */
} spec_dim;

typedef struct tensor_spec
{
	spec_scope	scope;
	const char *name;			/* full name, or the suffix after "...layers.N." */
	size_t		offset;			/* of the const float * in the scope's struct */
	int			ndim;			/* 0: a scalar, stored as [] or [1] */
	spec_dim	dims[4];
} tensor_spec;

#define LAYER(n, f, nd, ...) {SCOPE_LAYER, n, offsetof(cm_layer_weights, f), nd, {__VA_ARGS__}}
#define TEXT(n, f, nd, ...) {SCOPE_TEXT, n, offsetof(cm_text_weights, f), nd, {__VA_ARGS__}}
#define VISION(n, f, nd, ...) {SCOPE_VISION, n, offsetof(cm_vision_weights, f), nd, {__VA_ARGS__}}

/* Every tensor the runtime reads, with its expected shape. */
static const tensor_spec tensor_table[] = {
	LAYER("layer_norm1.weight", ln1_w, 1, DIM_D),
	LAYER("layer_norm1.bias", ln1_b, 1, DIM_D),
	LAYER("self_attn.q_proj.weight", q_w, 2, DIM_D, DIM_D),
	LAYER("self_attn.q_proj.bias", q_b, 1, DIM_D),
	LAYER("self_attn.k_proj.weight", k_w, 2, DIM_D, DIM_D),
	LAYER("self_attn.k_proj.bias", k_b, 1, DIM_D),
	LAYER("self_attn.v_proj.weight", v_w, 2, DIM_D, DIM_D),
	LAYER("self_attn.v_proj.bias", v_b, 1, DIM_D),
	LAYER("self_attn.out_proj.weight", o_w, 2, DIM_D, DIM_D),
	LAYER("self_attn.out_proj.bias", o_b, 1, DIM_D),
	LAYER("layer_norm2.weight", ln2_w, 1, DIM_D),
	LAYER("layer_norm2.bias", ln2_b, 1, DIM_D),
	LAYER("mlp.fc1.weight", fc1_w, 2, DIM_FF, DIM_D),
	LAYER("mlp.fc1.bias", fc1_b, 1, DIM_FF),
	LAYER("mlp.fc2.weight", fc2_w, 2, DIM_D, DIM_FF),
	LAYER("mlp.fc2.bias", fc2_b, 1, DIM_D),

	TEXT("text_model.embeddings.token_embedding.weight", token_embedding, 2, DIM_VOCAB, DIM_D),
	TEXT("text_model.embeddings.position_embedding.weight", position_embedding, 2, DIM_TEXT_POS, DIM_D),
	TEXT("text_model.final_layer_norm.weight", final_ln_w, 1, DIM_D),
	TEXT("text_model.final_layer_norm.bias", final_ln_b, 1, DIM_D),
	TEXT("text_projection.weight", projection, 2, DIM_PROJ, DIM_D),

	VISION("vision_model.embeddings.class_embedding", class_embedding, 1, DIM_D),
	VISION("vision_model.embeddings.patch_embedding.weight", patch_embedding, 4,
		   DIM_D, DIM_CHANNELS, DIM_PATCH, DIM_PATCH),
	VISION("vision_model.embeddings.position_embedding.weight", position_embedding, 2, DIM_VISION_POS, DIM_D),
	VISION("vision_model.pre_layrnorm.weight", pre_ln_w, 1, DIM_D),	/* sic */
	VISION("vision_model.pre_layrnorm.bias", pre_ln_b, 1, DIM_D),
	VISION("vision_model.post_layernorm.weight", post_ln_w, 1, DIM_D),
	VISION("vision_model.post_layernorm.bias", post_ln_b, 1, DIM_D),
	VISION("visual_projection.weight", projection, 2, DIM_PROJ, DIM_D),

	{SCOPE_MODEL, "logit_scale", offsetof(cm_weights, logit_scale), 0, {DIM_D}},
};

#define N_SPECS (sizeof(tensor_table) / sizeof(tensor_table[0]))
#define MAX_TENSOR_NAME 128

/* One tensor to bind: where it is in the file and where its pointer goes. */
typedef struct binding
{
	const cm_tensor_view *view;
	const float **dest;
} binding;

static int64_t
resolve_dim(const cm_config *cfg, const cm_tower_config *tower, spec_dim dim)
{
	switch (dim)
	{
		case DIM_D:
			return tower->hidden_size;
		case DIM_FF:
			return tower->intermediate_size;
		case DIM_VOCAB:
			return cfg->text.vocab_size;
		case DIM_TEXT_POS:
			return cfg->text.max_positions;
		case DIM_VISION_POS:
			return cfg->vision.n_positions;
		case DIM_PROJ:
			return cfg->projection_dim;
		case DIM_CHANNELS:
			return cfg->vision.num_channels;
		case DIM_PATCH:
			return cfg->vision.patch_size;
	}
	return -1;
}

static void
format_shape(char *buf, size_t size, int ndim, const int64_t *shape)
{
	size_t		used = 0;

	used += (size_t) snprintf(buf, size, "[");
	for (int i = 0; i < ndim && used < size; i++)
		used += (size_t) snprintf(buf + used, size - used, "%s%lld", i ? ", " : "",
								  (long long) shape[i]);
	if (used < size)
		snprintf(buf + used, size - used, "]");
}

/* Look up one tensor and check it against its spec. */
static cm_status
check_tensor(const cm_config *cfg, const cm_tower_config *tower, const cm_safetensors *st,
			 const char *label, const char *name, const tensor_spec *spec,
			 const cm_tensor_view **out, cm_error *err)
{
	const cm_tensor_view *t = cm_safetensors_find(st, name);
	int64_t		want[4];
	bool		ok;

	if (t == NULL)
		return cm_set_error(err, CM_ERR_MODEL, "%s: missing tensor \"%s\"", label, name);
	if (t->dtype == CM_DTYPE_OTHER)
		return cm_set_error(err, CM_ERR_MODEL, "%s: tensor \"%s\" has dtype %s, expected F32, F16 or BF16",
							label, name, t->dtype_name);
	for (int i = 0; i < spec->ndim; i++)
		want[i] = resolve_dim(cfg, tower, spec->dims[i]);
	if (spec->ndim == 0)
		ok = t->n_elements == 1 && (t->ndim == 0 || t->ndim == 1);
	else
	{
		ok = t->ndim == spec->ndim;
		for (int i = 0; ok && i < spec->ndim; i++)
			ok = t->shape[i] == want[i];
	}
	if (!ok)
	{
		char		have_s[128],
					want_s[128];

		format_shape(have_s, sizeof(have_s), t->ndim, t->shape);
		format_shape(want_s, sizeof(want_s), spec->ndim, want);
		return cm_set_error(err, CM_ERR_MODEL, "%s: tensor \"%s\" has shape %s, config.json implies %s",
							label, name, have_s, spec->ndim == 0 ? "a scalar" : want_s);
	}
	*out = t;
	return CM_OK;
}

static void *
scope_base(cm_model *m, spec_scope scope, const char *tower, int layer)
{
	bool		text = tower[0] == 't';

	switch (scope)
	{
		case SCOPE_LAYER:
			return text ? (void *) &m->w.text.layers[layer] : (void *) &m->w.vision.layers[layer];
		case SCOPE_TEXT:
			return &m->w.text;
		case SCOPE_VISION:
			return &m->w.vision;
		case SCOPE_MODEL:
			return &m->w;
	}
	return NULL;
}

#define WIDENED_ALIGN 64		/* bytes: a cache line */

/* Floats a widened tensor takes: its elements, rounded up to whole cache lines. */
static size_t
widened_slot(const cm_tensor_view *t)
{
	size_t		per_line = WIDENED_ALIGN / sizeof(float);

	return ((size_t) t->n_elements + per_line - 1) / per_line * per_line;
}

cm_status
cm_model_bind_weights(cm_model *m, cm_safetensors *st, const char *label, cm_error *err)
{
	const cm_config *cfg = &m->config;
	int			n_text_layers = cfg->text.t.num_layers;
	int			n_vision_layers = cfg->vision.t.num_layers;
	size_t		n_bindings = 0,
				max_bindings;
	binding    *bindings = NULL;
	size_t		widened = 0;
	int			seen_dtypes = 0;
	cm_status	s = CM_OK;
	static const char *const towers[2] = {"text", "vision"};

	m->w.text.layers = calloc((size_t) n_text_layers, sizeof(cm_layer_weights));
	m->w.vision.layers = calloc((size_t) n_vision_layers, sizeof(cm_layer_weights));
	/* layers are bounded by the config limits: this cannot overflow */
	max_bindings = N_SPECS * (size_t) (n_text_layers + n_vision_layers + 1);
	bindings = calloc(max_bindings, sizeof(binding));
	if (m->w.text.layers == NULL || m->w.vision.layers == NULL || bindings == NULL)
	{
		s = cm_set_error(err, CM_ERR_NOMEM, "%s: out of memory binding weights", label);
		goto fail;
	}

	/* Pass 1: find and check every tensor, count what must be widened. */
	for (size_t i = 0; i < N_SPECS; i++)
	{
		const tensor_spec *spec = &tensor_table[i];

		for (int tw = 0; tw < 2; tw++)
		{
			const cm_tower_config *tower = tw == 0 ? &cfg->text.t : &cfg->vision.t;
			int			n_layers = spec->scope == SCOPE_LAYER ? tower->num_layers : 1;

			if ((spec->scope == SCOPE_TEXT && tw != 0) ||
				(spec->scope == SCOPE_VISION && tw != 1) ||
				(spec->scope == SCOPE_MODEL && tw != 0))
				continue;
			for (int l = 0; l < n_layers; l++)
			{
				char		name[MAX_TENSOR_NAME];
				const cm_tensor_view *t = NULL;
				binding    *b;

				if (spec->scope == SCOPE_LAYER)
					snprintf(name, sizeof(name), "%s_model.encoder.layers.%d.%s", towers[tw], l, spec->name);
				else
					snprintf(name, sizeof(name), "%s", spec->name);
				s = check_tensor(cfg, tower, st, label, name, spec, &t, err);
				if (s != CM_OK)
					goto fail;
				b = &bindings[n_bindings++];
				b->view = t;
				b->dest = (const float **) ((char *) scope_base(m, spec->scope, towers[tw], l) + spec->offset);
				if (t->dtype != CM_DTYPE_F32 && !cm_add_size(widened, widened_slot(t), &widened))
				{
					s = cm_set_error(err, CM_ERR_MODEL, "%s: weights too large", label);
					goto fail;
				}
				seen_dtypes |= 1 << t->dtype;
				m->n_params += t->n_elements;
			}
		}
	}

	/*
	 * Pass 2: widen into one buffer (its size is bounded by the file's), each
	 * tensor on a cache line of its own: the GEMM kernels' summation order
	 * follows W's alignment, so widened weights must sit the same way in
	 * every process for embeddings to be the same bits everywhere.
	 */
	if (widened > 0)
	{
		size_t		bytes;

		if (!cm_mul_size(widened, sizeof(float), &bytes) ||
			(m->widened = aligned_alloc(WIDENED_ALIGN, bytes)) == NULL)
		{
			s = cm_set_error(err, CM_ERR_NOMEM, "%s: out of memory widening %zu weights to float32",
							 label, widened);
			goto fail;
		}
		m->widened_floats = widened;
	}
	{
		float	   *next = m->widened;

		for (size_t i = 0; i < n_bindings; i++)
		{
			const cm_tensor_view *t = bindings[i].view;

			if (t->dtype == CM_DTYPE_F32)
				*bindings[i].dest = t->data;	/* aligned: the reader checked */
			else
			{
				s = cm_tensor_to_f32(t, next, err);
				if (s != CM_OK)
					goto fail;
				*bindings[i].dest = next;
				next += widened_slot(t);
			}
		}
	}
	if (seen_dtypes == (1 << CM_DTYPE_F32))
		m->weight_dtype = "F32";
	else if (seen_dtypes == (1 << CM_DTYPE_F16))
		m->weight_dtype = "F16";
	else if (seen_dtypes == (1 << CM_DTYPE_BF16))
		m->weight_dtype = "BF16";
	else
		m->weight_dtype = "mixed";
	free(bindings);
	m->st = st;
	return CM_OK;

fail:
	free(bindings);
	cm_model_release_weights(m);
	return s;
}

void
cm_model_release_weights(cm_model *m)
{
	free(m->w.text.layers);
	free(m->w.vision.layers);
	free(m->widened);
	memset(&m->w, 0, sizeof(m->w));
	m->widened = NULL;
	m->widened_floats = 0;
	m->n_params = 0;
}
