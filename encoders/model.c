/*
 * model.c
 *	  Bind a checkpoint's tensors to the weight structs, by name, from one
 *	  constant table of every family's rows, checking dtype and shape against
 *	  the config.
 *
 * float32 tensors are used in place from the read-only mapping (so processes
 * that load the same file share it through the page cache); float16 and
 * bfloat16 tensors are widened once into one owned buffer.  At
 * CM_PRECISION_BF16 the matrices of products are bfloat16 instead: used in
 * place from a BF16 file, converted once into another owned buffer from the
 * others.
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
	SCOPE_HEAD,					/* cm_layer_weights of the vision MAP head */
	SCOPE_MODEL					/* cm_weights */
} spec_scope;

/* Symbolic dimensions, resolved from the config (per tower for D and FF). */
typedef enum spec_dim
{
	DIM_D,						/* the tower's hidden size */
	DIM_FF,						/* the tower's intermediate size */
	DIM_3D,						/* fused q, k, v: 3 x hidden size */
	DIM_VOCAB,
	DIM_TEXT_POS,				/* max_position_embeddings */
	DIM_VISION_POS,				/* grid^2, plus 1 with a class token */
	DIM_PROJ,					/* projection_dim */
	DIM_CHANNELS,				/* 3 */
	DIM_PATCH,					/* patch_size */
	DIM_ONE
} spec_dim;

/* Families a row applies to. */
#define F_CLIP (1 << CM_FAMILY_CLIP)
#define F_SIGLIP (1 << CM_FAMILY_SIGLIP)
#define F_OPENCLIP (1 << CM_FAMILY_OPENCLIP)
#define F_HF (F_CLIP | F_SIGLIP)	/* transformers' names */

/*
 * How a stored tensor maps to its weight: whole, one third of a fused
 * q/k/v tensor along its first axis, or transposed (stored [in][out] and
 * used as x @ W, as open_clip's projections are).
 */
typedef enum spec_form
{
	FORM_WHOLE,
	FORM_Q,
	FORM_K,
	FORM_V,
	FORM_TRANSPOSED
} spec_form;

/*
 * How a tensor is used: plain float32 (const float *); a matrix of products
 * (cm_mat: bfloat16 at CM_PRECISION_BF16); or a table read by rows (cm_mat:
 * a BF16 table is used in place and its rows widened as they are read).
 */
typedef enum spec_kind
{
	KIND_PLAIN,
	KIND_MATRIX,
	KIND_TABLE
} spec_kind;

typedef struct tensor_spec
{
	int			families;
	spec_scope	scope;
	const char *name;			/* full name, or the suffix after a layer's prefix */
	size_t		offset;			/* of the const float * (or cm_mat) in the scope's struct */
	spec_kind	kind;
	spec_form	form;
	int			ndim;			/* 0: a scalar, stored as [] or [1] */
	spec_dim	dims[4];		/* as stored */
	bool		if_logit_bias;	/* only in models whose config has a logit bias */
} tensor_spec;

/* A layer's (and the MAP head's) two-dimensional tensors are its matrices. */
#define LAYER(fam, n, f, form, nd, ...) {fam, SCOPE_LAYER, n, offsetof(cm_layer_weights, f), nd == 2 ? KIND_MATRIX : KIND_PLAIN, form, nd, {__VA_ARGS__}, false}
#define HEAD(fam, n, f, form, nd, ...) {fam, SCOPE_HEAD, n, offsetof(cm_layer_weights, f), nd == 2 ? KIND_MATRIX : KIND_PLAIN, form, nd, {__VA_ARGS__}, false}
#define TEXT(fam, n, f, form, nd, ...) {fam, SCOPE_TEXT, n, offsetof(cm_text_weights, f), KIND_PLAIN, form, nd, {__VA_ARGS__}, false}
#define TEXT_MATRIX(fam, n, f, form, nd, ...) {fam, SCOPE_TEXT, n, offsetof(cm_text_weights, f), KIND_MATRIX, form, nd, {__VA_ARGS__}, false}
#define TEXT_TABLE(fam, n, f, form, nd, ...) {fam, SCOPE_TEXT, n, offsetof(cm_text_weights, f), KIND_TABLE, form, nd, {__VA_ARGS__}, false}
#define VISION(fam, n, f, form, nd, ...) {fam, SCOPE_VISION, n, offsetof(cm_vision_weights, f), KIND_PLAIN, form, nd, {__VA_ARGS__}, false}
#define VISION_MATRIX(fam, n, f, form, nd, ...) {fam, SCOPE_VISION, n, offsetof(cm_vision_weights, f), KIND_MATRIX, form, nd, {__VA_ARGS__}, false}
#define MODEL(fam, n, f) {fam, SCOPE_MODEL, n, offsetof(cm_weights, f), KIND_PLAIN, FORM_WHOLE, 0, {DIM_ONE}, false}
#define MODEL_IF_BIAS(fam, n, f) {fam, SCOPE_MODEL, n, offsetof(cm_weights, f), KIND_PLAIN, FORM_WHOLE, 0, {DIM_ONE}, true}

/* Every tensor the runtime reads, per family, with its stored shape. */
static const tensor_spec tensor_table[] = {
	/* encoder layers, transformers' names (after "{text,vision}_model.encoder.layers.N.") */
	LAYER(F_HF, "layer_norm1.weight", ln1_w, FORM_WHOLE, 1, DIM_D),
	LAYER(F_HF, "layer_norm1.bias", ln1_b, FORM_WHOLE, 1, DIM_D),
	LAYER(F_HF, "self_attn.q_proj.weight", q_w, FORM_WHOLE, 2, DIM_D, DIM_D),
	LAYER(F_HF, "self_attn.q_proj.bias", q_b, FORM_WHOLE, 1, DIM_D),
	LAYER(F_HF, "self_attn.k_proj.weight", k_w, FORM_WHOLE, 2, DIM_D, DIM_D),
	LAYER(F_HF, "self_attn.k_proj.bias", k_b, FORM_WHOLE, 1, DIM_D),
	LAYER(F_HF, "self_attn.v_proj.weight", v_w, FORM_WHOLE, 2, DIM_D, DIM_D),
	LAYER(F_HF, "self_attn.v_proj.bias", v_b, FORM_WHOLE, 1, DIM_D),
	LAYER(F_HF, "self_attn.out_proj.weight", o_w, FORM_WHOLE, 2, DIM_D, DIM_D),
	LAYER(F_HF, "self_attn.out_proj.bias", o_b, FORM_WHOLE, 1, DIM_D),
	LAYER(F_HF, "layer_norm2.weight", ln2_w, FORM_WHOLE, 1, DIM_D),
	LAYER(F_HF, "layer_norm2.bias", ln2_b, FORM_WHOLE, 1, DIM_D),
	LAYER(F_HF, "mlp.fc1.weight", fc1_w, FORM_WHOLE, 2, DIM_FF, DIM_D),
	LAYER(F_HF, "mlp.fc1.bias", fc1_b, FORM_WHOLE, 1, DIM_FF),
	LAYER(F_HF, "mlp.fc2.weight", fc2_w, FORM_WHOLE, 2, DIM_D, DIM_FF),
	LAYER(F_HF, "mlp.fc2.bias", fc2_b, FORM_WHOLE, 1, DIM_D),

	/* encoder layers, open_clip's names (after "[visual.]transformer.resblocks.N.") */
	LAYER(F_OPENCLIP, "ln_1.weight", ln1_w, FORM_WHOLE, 1, DIM_D),
	LAYER(F_OPENCLIP, "ln_1.bias", ln1_b, FORM_WHOLE, 1, DIM_D),
	LAYER(F_OPENCLIP, "attn.in_proj_weight", q_w, FORM_Q, 2, DIM_3D, DIM_D),
	LAYER(F_OPENCLIP, "attn.in_proj_weight", k_w, FORM_K, 2, DIM_3D, DIM_D),
	LAYER(F_OPENCLIP, "attn.in_proj_weight", v_w, FORM_V, 2, DIM_3D, DIM_D),
	LAYER(F_OPENCLIP, "attn.in_proj_bias", q_b, FORM_Q, 1, DIM_3D),
	LAYER(F_OPENCLIP, "attn.in_proj_bias", k_b, FORM_K, 1, DIM_3D),
	LAYER(F_OPENCLIP, "attn.in_proj_bias", v_b, FORM_V, 1, DIM_3D),
	LAYER(F_OPENCLIP, "attn.out_proj.weight", o_w, FORM_WHOLE, 2, DIM_D, DIM_D),
	LAYER(F_OPENCLIP, "attn.out_proj.bias", o_b, FORM_WHOLE, 1, DIM_D),
	LAYER(F_OPENCLIP, "ln_2.weight", ln2_w, FORM_WHOLE, 1, DIM_D),
	LAYER(F_OPENCLIP, "ln_2.bias", ln2_b, FORM_WHOLE, 1, DIM_D),
	LAYER(F_OPENCLIP, "mlp.c_fc.weight", fc1_w, FORM_WHOLE, 2, DIM_FF, DIM_D),
	LAYER(F_OPENCLIP, "mlp.c_fc.bias", fc1_b, FORM_WHOLE, 1, DIM_FF),
	LAYER(F_OPENCLIP, "mlp.c_proj.weight", fc2_w, FORM_WHOLE, 2, DIM_D, DIM_FF),
	LAYER(F_OPENCLIP, "mlp.c_proj.bias", fc2_b, FORM_WHOLE, 1, DIM_D),

	/* text tower */
	TEXT_TABLE(F_HF, "text_model.embeddings.token_embedding.weight", token_embedding, FORM_WHOLE, 2, DIM_VOCAB, DIM_D),
	TEXT(F_HF, "text_model.embeddings.position_embedding.weight", position_embedding, FORM_WHOLE, 2, DIM_TEXT_POS, DIM_D),
	TEXT(F_HF, "text_model.final_layer_norm.weight", final_ln_w, FORM_WHOLE, 1, DIM_D),
	TEXT(F_HF, "text_model.final_layer_norm.bias", final_ln_b, FORM_WHOLE, 1, DIM_D),
	TEXT_MATRIX(F_CLIP, "text_projection.weight", projection, FORM_WHOLE, 2, DIM_PROJ, DIM_D),
	TEXT_MATRIX(F_SIGLIP, "text_model.head.weight", projection, FORM_WHOLE, 2, DIM_PROJ, DIM_D),
	TEXT(F_SIGLIP, "text_model.head.bias", projection_b, FORM_WHOLE, 1, DIM_PROJ),
	TEXT_TABLE(F_OPENCLIP, "token_embedding.weight", token_embedding, FORM_WHOLE, 2, DIM_VOCAB, DIM_D),
	TEXT(F_OPENCLIP, "positional_embedding", position_embedding, FORM_WHOLE, 2, DIM_TEXT_POS, DIM_D),
	TEXT(F_OPENCLIP, "ln_final.weight", final_ln_w, FORM_WHOLE, 1, DIM_D),
	TEXT(F_OPENCLIP, "ln_final.bias", final_ln_b, FORM_WHOLE, 1, DIM_D),
	TEXT_MATRIX(F_OPENCLIP, "text_projection", projection, FORM_TRANSPOSED, 2, DIM_D, DIM_PROJ),

	/* vision tower */
	VISION(F_CLIP, "vision_model.embeddings.class_embedding", class_embedding, FORM_WHOLE, 1, DIM_D),
	VISION_MATRIX(F_HF, "vision_model.embeddings.patch_embedding.weight", patch_embedding, FORM_WHOLE, 4,
		   DIM_D, DIM_CHANNELS, DIM_PATCH, DIM_PATCH),
	VISION(F_SIGLIP, "vision_model.embeddings.patch_embedding.bias", patch_bias, FORM_WHOLE, 1, DIM_D),
	VISION(F_HF, "vision_model.embeddings.position_embedding.weight", position_embedding, FORM_WHOLE, 2,
		   DIM_VISION_POS, DIM_D),
	VISION(F_CLIP, "vision_model.pre_layrnorm.weight", pre_ln_w, FORM_WHOLE, 1, DIM_D),	/* sic */
	VISION(F_CLIP, "vision_model.pre_layrnorm.bias", pre_ln_b, FORM_WHOLE, 1, DIM_D),
	VISION(F_HF, "vision_model.post_layernorm.weight", post_ln_w, FORM_WHOLE, 1, DIM_D),
	VISION(F_HF, "vision_model.post_layernorm.bias", post_ln_b, FORM_WHOLE, 1, DIM_D),
	VISION_MATRIX(F_CLIP, "visual_projection.weight", projection, FORM_WHOLE, 2, DIM_PROJ, DIM_D),
	VISION(F_SIGLIP, "vision_model.head.probe", probe, FORM_WHOLE, 3, DIM_ONE, DIM_ONE, DIM_D),
	VISION(F_OPENCLIP, "visual.class_embedding", class_embedding, FORM_WHOLE, 1, DIM_D),
	VISION_MATRIX(F_OPENCLIP, "visual.conv1.weight", patch_embedding, FORM_WHOLE, 4,
		   DIM_D, DIM_CHANNELS, DIM_PATCH, DIM_PATCH),
	VISION(F_OPENCLIP, "visual.positional_embedding", position_embedding, FORM_WHOLE, 2, DIM_VISION_POS, DIM_D),
	VISION(F_OPENCLIP, "visual.ln_pre.weight", pre_ln_w, FORM_WHOLE, 1, DIM_D),
	VISION(F_OPENCLIP, "visual.ln_pre.bias", pre_ln_b, FORM_WHOLE, 1, DIM_D),
	VISION(F_OPENCLIP, "visual.ln_post.weight", post_ln_w, FORM_WHOLE, 1, DIM_D),
	VISION(F_OPENCLIP, "visual.ln_post.bias", post_ln_b, FORM_WHOLE, 1, DIM_D),
	VISION_MATRIX(F_OPENCLIP, "visual.proj", projection, FORM_TRANSPOSED, 2, DIM_D, DIM_PROJ),

	/* SigLIP's multi-head attention pooling head (torch.nn.MultiheadAttention's names) */
	HEAD(F_SIGLIP, "vision_model.head.attention.in_proj_weight", q_w, FORM_Q, 2, DIM_3D, DIM_D),
	HEAD(F_SIGLIP, "vision_model.head.attention.in_proj_weight", k_w, FORM_K, 2, DIM_3D, DIM_D),
	HEAD(F_SIGLIP, "vision_model.head.attention.in_proj_weight", v_w, FORM_V, 2, DIM_3D, DIM_D),
	HEAD(F_SIGLIP, "vision_model.head.attention.in_proj_bias", q_b, FORM_Q, 1, DIM_3D),
	HEAD(F_SIGLIP, "vision_model.head.attention.in_proj_bias", k_b, FORM_K, 1, DIM_3D),
	HEAD(F_SIGLIP, "vision_model.head.attention.in_proj_bias", v_b, FORM_V, 1, DIM_3D),
	HEAD(F_SIGLIP, "vision_model.head.attention.out_proj.weight", o_w, FORM_WHOLE, 2, DIM_D, DIM_D),
	HEAD(F_SIGLIP, "vision_model.head.attention.out_proj.bias", o_b, FORM_WHOLE, 1, DIM_D),
	HEAD(F_SIGLIP, "vision_model.head.layernorm.weight", ln2_w, FORM_WHOLE, 1, DIM_D),
	HEAD(F_SIGLIP, "vision_model.head.layernorm.bias", ln2_b, FORM_WHOLE, 1, DIM_D),
	HEAD(F_SIGLIP, "vision_model.head.mlp.fc1.weight", fc1_w, FORM_WHOLE, 2, DIM_FF, DIM_D),
	HEAD(F_SIGLIP, "vision_model.head.mlp.fc1.bias", fc1_b, FORM_WHOLE, 1, DIM_FF),
	HEAD(F_SIGLIP, "vision_model.head.mlp.fc2.weight", fc2_w, FORM_WHOLE, 2, DIM_D, DIM_FF),
	HEAD(F_SIGLIP, "vision_model.head.mlp.fc2.bias", fc2_b, FORM_WHOLE, 1, DIM_D),

	MODEL(F_HF | F_OPENCLIP, "logit_scale", logit_scale),
	MODEL_IF_BIAS(F_SIGLIP | F_OPENCLIP, "logit_bias", logit_bias),	/* open_clip: init_logit_bias */
};

#define N_SPECS (sizeof(tensor_table) / sizeof(tensor_table[0]))
#define MAX_TENSOR_NAME 160

/* One tensor to bind: where it is in the file and where its pointer goes. */
typedef struct binding
{
	const cm_tensor_view *view;
	void	   *dest;			/* const float ** or, for a matrix or table, cm_mat * */
	spec_kind	kind;
	spec_form	form;
	const void *copy;			/* the widened, transposed or converted copy, once made */
	cm_elem		copy_type;
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
		case DIM_3D:
			return (int64_t) tower->hidden_size * 3;
		case DIM_ONE:
			return 1;
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
		return cm_set_error(err, CM_ERR_MODEL, "%s: tensor \"%s\" has shape %s, the config implies %s",
							label, name, have_s, spec->ndim == 0 ? "a scalar" : want_s);
	}
	*out = t;
	return CM_OK;
}

static void *
scope_base(cm_model *m, spec_scope scope, bool text, int layer)
{
	switch (scope)
	{
		case SCOPE_LAYER:
			return text ? (void *) &m->w.text.layers[layer] : (void *) &m->w.vision.layers[layer];
		case SCOPE_TEXT:
			return &m->w.text;
		case SCOPE_VISION:
			return &m->w.vision;
		case SCOPE_HEAD:
			return &m->w.vision.head;
		case SCOPE_MODEL:
			return &m->w;
	}
	return NULL;
}

#define WIDENED_ALIGN 64		/* bytes: a cache line */

/* Elements a copied tensor takes: its elements, rounded up to whole cache lines. */
static size_t
copy_slot(const cm_tensor_view *t, size_t elem_bytes)
{
	size_t		per_line = WIDENED_ALIGN / elem_bytes;

	return ((size_t) t->n_elements + per_line - 1) / per_line * per_line;
}

/* Whether a binding's tensor is used as a bfloat16 matrix copied at load. */
static bool
needs_conversion(const cm_model *m, const binding *b)
{
	return b->kind == KIND_MATRIX && m->precision == CM_PRECISION_BF16 &&
		(b->view->dtype != CM_DTYPE_BF16 || b->form == FORM_TRANSPOSED);
}

/* Whether a binding's tensor is widened (or transposed) into float32 at load. */
static bool
needs_widening(const cm_model *m, const binding *b)
{
	if (b->kind == KIND_MATRIX && m->precision == CM_PRECISION_BF16)
		return false;
	if (b->kind == KIND_TABLE && b->view->dtype == CM_DTYPE_BF16)
		return false;
	return b->view->dtype != CM_DTYPE_F32 || b->form == FORM_TRANSPOSED;
}

/* Elements per row of a matrix as the products read it ([out][in]: in). */
static size_t
matrix_ld(const cm_tensor_view *t, spec_form form)
{
	if (form == FORM_TRANSPOSED)
		return (size_t) t->shape[0];
	return (size_t) t->n_elements / (size_t) t->shape[0];
}

/* The name prefix of layer l of a tower in the family's layout. */
static void
layer_name(char *buf, size_t size, cm_family family, bool text, int l, const char *suffix)
{
	if (family == CM_FAMILY_OPENCLIP)
		snprintf(buf, size, "%stransformer.resblocks.%d.%s", text ? "" : "visual.", l, suffix);
	else
		snprintf(buf, size, "%s_model.encoder.layers.%d.%s", text ? "text" : "vision", l, suffix);
}

/* Floats in the part of t a binding uses. */
static size_t
form_elements(const cm_tensor_view *t, spec_form form)
{
	return form == FORM_Q || form == FORM_K || form == FORM_V ? (size_t) t->n_elements / 3
		: (size_t) t->n_elements;
}

/*
 * Copy t (widened to float32) into out, transposed when the form asks; or,
 * when out16 is not NULL, into out16 converted to bfloat16.
 */
static cm_status
copy_tensor(const cm_tensor_view *t, spec_form form, float *out, uint16_t *out16, cm_error *err)
{
	size_t		rows,
				cols;
	float	   *tmp;
	cm_status	s;

	if (out16 != NULL && t->dtype == CM_DTYPE_F32 && form != FORM_TRANSPOSED)
	{
		const float *in = t->data;

		for (size_t i = 0; i < (size_t) t->n_elements; i++)
			out16[i] = cm_bf16_from_f32(in[i]);
		return CM_OK;
	}
	if (out16 == NULL && form != FORM_TRANSPOSED)
		return cm_tensor_to_f32(t, out, err);
	rows = form == FORM_TRANSPOSED ? (size_t) t->shape[0] : 1;
	cols = (size_t) t->n_elements / rows;
	tmp = malloc((size_t) t->n_elements * sizeof(float));
	if (tmp == NULL)
		return cm_set_error(err, CM_ERR_NOMEM, "out of memory copying \"%s\"", t->name);
	s = cm_tensor_to_f32(t, tmp, err);
	if (s == CM_OK)
		for (size_t i = 0; i < rows; i++)
			for (size_t j = 0; j < cols; j++)
			{
				/* element [i][j] goes to [j][i] when transposed */
				size_t		o = form == FORM_TRANSPOSED ? j * rows + i : i * cols + j;

				if (out16 != NULL)
					out16[o] = cm_bf16_from_f32(tmp[i * cols + j]);
				else
					out[o] = tmp[i * cols + j];
			}
	free(tmp);
	return s;
}

/* Point a binding's destination at data (float32, or for a matrix or table of either type). */
static void
set_dest(const binding *b, const void *data, cm_elem type)
{
	if (b->kind != KIND_PLAIN)
	{
		cm_mat	   *m = b->dest;

		m->p = data;
		m->ld = matrix_ld(b->view, b->form);
		m->type = type;
	}
	else
		*(const float **) b->dest = data;
}

cm_status
cm_model_bind_weights(cm_model *m, cm_safetensors *st, const char *label, cm_error *err)
{
	const cm_config *cfg = &m->config;
	int			family_bit = 1 << cfg->family;
	int			n_text_layers = cfg->text.t.num_layers;
	int			n_vision_layers = cfg->vision.t.num_layers;
	size_t		n_bindings = 0,
				max_bindings;
	binding    *bindings = NULL;
	size_t		widened = 0,
				converted = 0;
	int			seen_dtypes = 0;
	cm_status	s = CM_OK;

	if (m->precision == CM_PRECISION_DEFAULT)
		m->precision = CM_PRECISION_F32;
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

	/*
	 * Pass 1: find and check every tensor, count what must be copied (F16 and
	 * BF16 widened, transposed ones rearranged, matrices converted to
	 * bfloat16 at CM_PRECISION_BF16; a fused q/k/v tensor once).
	 */
	for (size_t i = 0; i < N_SPECS; i++)
	{
		const tensor_spec *spec = &tensor_table[i];

		if (!(spec->families & family_bit) || (spec->if_logit_bias && !cfg->has_logit_bias))
			continue;
		for (int tw = 0; tw < 2; tw++)
		{
			bool		text = tw == 0;
			const cm_tower_config *tower = text ? &cfg->text.t : &cfg->vision.t;
			int			n_layers = spec->scope == SCOPE_LAYER ? tower->num_layers : 1;

			if ((spec->scope == SCOPE_TEXT && !text) ||
				((spec->scope == SCOPE_VISION || spec->scope == SCOPE_HEAD) && text) ||
				(spec->scope == SCOPE_MODEL && !text))
				continue;
			for (int l = 0; l < n_layers; l++)
			{
				char		name[MAX_TENSOR_NAME];
				const cm_tensor_view *t = NULL;
				binding    *b;
				void	   *base;
				bool		first_use;

				if (spec->scope == SCOPE_LAYER)
					layer_name(name, sizeof(name), cfg->family, text, l, spec->name);
				else
					snprintf(name, sizeof(name), "%s", spec->name);
				s = check_tensor(cfg, tower, st, label, name, spec, &t, err);
				if (s != CM_OK)
					goto fail;
				base = scope_base(m, spec->scope, text, l);
				b = &bindings[n_bindings++];
				b->view = t;
				b->form = spec->form;
				b->kind = spec->kind;
				b->dest = (char *) base + spec->offset;
				/* the q part comes first: k and v share its copy */
				first_use = spec->form != FORM_K && spec->form != FORM_V;
				if (first_use &&
					((needs_widening(m, b) && !cm_add_size(widened, copy_slot(t, sizeof(float)), &widened)) ||
					 (needs_conversion(m, b) && !cm_add_size(converted, copy_slot(t, sizeof(uint16_t)), &converted))))
				{
					s = cm_set_error(err, CM_ERR_MODEL, "%s: weights too large", label);
					goto fail;
				}
				seen_dtypes |= 1 << t->dtype;
				if (first_use)
					m->n_params += t->n_elements;
			}
		}
	}

	/*
	 * Pass 2: copy into the buffers (their sizes are bounded by the file's),
	 * each tensor on a cache line of its own: the GEMM kernels' summation
	 * order follows W's alignment, so copied weights must sit the same way
	 * in every process for embeddings to be the same bits everywhere.
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
	if (converted > 0)
	{
		size_t		bytes;

		if (!cm_mul_size(converted, sizeof(uint16_t), &bytes) ||
			(m->converted = aligned_alloc(WIDENED_ALIGN, bytes)) == NULL)
		{
			s = cm_set_error(err, CM_ERR_NOMEM, "%s: out of memory converting %zu weights to bfloat16",
							 label, converted);
			goto fail;
		}
		m->converted_halves = converted;
	}
	{
		float	   *next = m->widened;
		uint16_t   *next16 = m->converted;

		for (size_t i = 0; i < n_bindings; i++)
		{
			binding    *b = &bindings[i];
			const cm_tensor_view *t = b->view;

			if (b->form == FORM_K || b->form == FORM_V)
			{
				/* the FORM_Q binding of the same tensor came before (table order) */
				const binding *q = NULL;
				const void *whole = t->data;
				cm_elem		type = t->dtype == CM_DTYPE_BF16 ? CM_ELEM_BF16 : CM_ELEM_F32;
				size_t		part = form_elements(t, b->form) * (b->form == FORM_K ? 1 : 2);

				for (size_t j = i; j-- > 0 && q == NULL;)
					if (bindings[j].view == t && bindings[j].form == FORM_Q)
						q = &bindings[j];
				if (q != NULL && q->copy != NULL)
				{
					whole = q->copy;
					type = q->copy_type;
				}
				set_dest(b, (const char *) whole + part * (type == CM_ELEM_BF16 ? 2 : 4), type);
				continue;
			}
			if (needs_conversion(m, b))
			{
				s = copy_tensor(t, b->form, NULL, next16, err);
				if (s != CM_OK)
					goto fail;
				b->copy = next16;
				b->copy_type = CM_ELEM_BF16;
				next16 += copy_slot(t, sizeof(uint16_t));
			}
			else if (needs_widening(m, b))
			{
				s = copy_tensor(t, b->form, next, NULL, err);
				if (s != CM_OK)
					goto fail;
				b->copy = next;
				b->copy_type = CM_ELEM_F32;
				next += copy_slot(t, sizeof(float));
			}
			if (b->copy != NULL)
				set_dest(b, b->copy, b->copy_type);
			else
				/*
				 * in place: F32, a BF16 matrix at CM_PRECISION_BF16 or a BF16
				 * table (aligned: the reader checked)
				 */
				set_dest(b, t->data, t->dtype == CM_DTYPE_BF16 ? CM_ELEM_BF16 : CM_ELEM_F32);
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
	free(m->converted);
	memset(&m->w, 0, sizeof(m->w));
	m->widened = NULL;
	m->widened_floats = 0;
	m->converted = NULL;
	m->converted_halves = 0;
	m->n_params = 0;
}
