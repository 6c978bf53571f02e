/*
 * model.h
 *	  The immutable, loaded model: config, preprocessing parameters,
 *	  tokenizer and views of every weight tensor: the matrices of products
 *	  as cm_mat (float32, or bfloat16 at CM_PRECISION_BF16), the rest float32.
 */
#ifndef CM_MODEL_H
#define CM_MODEL_H

#include "cm_common.h"
#include "config.h"
#include "crossmodal_encoder.h"
#include "gemm.h"
#include "image.h"
#include "safetensors.h"
#include "tokenizer.h"
#include "tokenizer_hf.h"

/*
 * One pre-LN encoder layer.  d = the tower's hidden size, ff = its
 * intermediate size.  Linear weights are [out][in] (y = x W^T + b).  The
 * same struct holds SigLIP's attention-pooling head, whose attention reads
 * the tokens as they are (ln1 unused) and whose MLP half is a layer's.
 */
typedef struct cm_layer_weights
{
	const float *ln1_w;			/* [d] */
	const float *ln1_b;			/* [d] */
	cm_mat		q_w;			/* [d][d] */
	const float *q_b;			/* [d] */
	cm_mat		k_w;			/* [d][d] */
	const float *k_b;			/* [d] */
	cm_mat		v_w;			/* [d][d] */
	const float *v_b;			/* [d] */
	cm_mat		o_w;			/* [d][d] */
	const float *o_b;			/* [d] */
	const float *ln2_w;			/* [d] */
	const float *ln2_b;			/* [d] */
	cm_mat		fc1_w;		/* [ff][d] */
	const float *fc1_b;			/* [ff] */
	cm_mat		fc2_w;		/* [d][ff] */
	const float *fc2_b;			/* [d] */
} cm_layer_weights;

typedef struct cm_text_weights
{
	cm_mat		token_embedding;	/* [vocab][d], float32 or bfloat16, read by rows */
	const float *position_embedding;	/* [max_positions][d] */
	cm_layer_weights *layers;	/* [num_layers] */
	const float *final_ln_w;	/* [d] */
	const float *final_ln_b;	/* [d] */
	cm_mat		projection;		/* [projection_dim][d] */
	const float *projection_b;	/* [projection_dim] (SigLIP's head) or NULL */
} cm_text_weights;

typedef struct cm_vision_weights
{
	const float *class_embedding;	/* [d] or NULL (no class token) */
	cm_mat		patch_embedding;	/* [d][3][p][p], i.e. [d][3*p*p] */
	const float *patch_bias;	/* [d] or NULL */
	const float *position_embedding;	/* [n_positions][d] */
	const float *pre_ln_w;		/* [d] */
	const float *pre_ln_b;		/* [d] */
	cm_layer_weights *layers;	/* [num_layers] */
	const float *post_ln_w;		/* [d] */
	const float *post_ln_b;		/* [d] */
	cm_mat		projection;		/* [projection_dim][d], p NULL with a MAP head */
	const float *probe;			/* [d]: the MAP head's query */
	cm_layer_weights head;		/* the MAP head (SigLIP) */
} cm_vision_weights;

typedef struct cm_weights
{
	cm_text_weights text;
	cm_vision_weights vision;
	const float *logit_scale;	/* [] or [1]: log of the logit scale */
	const float *logit_bias;	/* [] or [1] (SigLIP) or NULL */
} cm_weights;

struct cm_model
{
	cm_config	config;
	cm_image_params image;		/* max_pixels is set per call */
	cm_tokenizer *tokenizer;	/* CLIP vocab.json + merges.txt, or NULL */
	cm_hf_tokenizer *hf_tokenizer;	/* tokenizer.json or spiece.model, or NULL */
	const char *tokenizer_kind; /* for cm_model_info: static */
	int32_t		pad_id;			/* >= 0: texts are padded to max_positions */
	cm_safetensors *st;			/* the read-only mapping weights used in place point into */
	cm_precision precision;		/* F32 or BF16 (never DEFAULT) */
	float	   *widened;		/* weights widened to float32 (or transposed) at load */
	size_t		widened_floats;
	uint16_t   *converted;		/* matrices converted to bfloat16 at load */
	size_t		converted_halves;
	cm_weights	w;
	int64_t		n_params;
	const char *weight_dtype;	/* "F32", "F16", "BF16" or "mixed" */
};

/*
 * Bind every tensor the config's family calls for, by the names of the
 * layout the checkpoint was saved in, from an open safetensors file:
 * checks presence, dtype and exact shape, keeps F32 data in place and widens
 * F16/BF16 into model->widened.  model->config must be filled; on success
 * model->st takes ownership of st.  On failure st is left to the caller.
 */
cm_status	cm_model_bind_weights(cm_model *model, cm_safetensors *st, const char *label,
								  cm_error *err);

/* Free what cm_model_bind_weights allocated (not st). */
void		cm_model_release_weights(cm_model *model);

#endif							/* CM_MODEL_H */
