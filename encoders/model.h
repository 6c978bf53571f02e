/*
 * model.h
 *	  The immutable, loaded CLIP model: config, preprocessing parameters,
 *	  tokenizer and float32 views of every weight tensor.
 */
#ifndef CM_MODEL_H
#define CM_MODEL_H

#include "cm_common.h"
#include "config.h"
#include "crossmodal_encoder.h"
#include "image.h"
#include "safetensors.h"
#include "tokenizer.h"

/*
 * One pre-LN encoder layer.  d = the tower's hidden size, ff = its
 * intermediate size.  Linear weights are [out][in] (y = x W^T + b).
 */
typedef struct cm_layer_weights
{
	const float *ln1_w;			/* [d] */
	const float *ln1_b;			/* [d] */
	const float *q_w;			/* [d][d] */
	const float *q_b;			/* [d] */
	const float *k_w;			/* [d][d] */
	const float *k_b;			/* [d] */
	const float *v_w;			/* [d][d] */
	const float *v_b;			/* [d] */
	const float *o_w;			/* [d][d] */
	const float *o_b;			/* [d] */
	const float *ln2_w;			/* [d] */
	const float *ln2_b;			/* [d] */
	const float *fc1_w;			/* [ff][d] */
	const float *fc1_b;			/* [ff] */
	const float *fc2_w;			/* [d][ff] */
	const float *fc2_b;			/* [d] */
} cm_layer_weights;

typedef struct cm_text_weights
{
	const float *token_embedding;	/* [vocab][d] */
	const float *position_embedding;	/* [max_positions][d] */
	cm_layer_weights *layers;	/* [num_layers] */
	const float *final_ln_w;	/* [d] */
	const float *final_ln_b;	/* [d] */
	const float *projection;	/* [projection_dim][d] */
} cm_text_weights;

typedef struct cm_vision_weights
{
	const float *class_embedding;	/* [d] */
	const float *patch_embedding;	/* [d][3][p][p], i.e. [d][3*p*p] */
	const float *position_embedding;	/* [1 + grid*grid][d] */
	const float *pre_ln_w;		/* [d] */
	const float *pre_ln_b;		/* [d] */
	cm_layer_weights *layers;	/* [num_layers] */
	const float *post_ln_w;		/* [d] */
	const float *post_ln_b;		/* [d] */
	const float *projection;	/* [projection_dim][d] */
} cm_vision_weights;

typedef struct cm_weights
{
	cm_text_weights text;
	cm_vision_weights vision;
	const float *logit_scale;	/* [] or [1]: log of the logit scale */
} cm_weights;

struct cm_model
{
	cm_config	config;
	cm_image_params image;		/* max_pixels is set per call */
	cm_tokenizer *tokenizer;
	cm_safetensors *st;			/* the read-only mapping F32 weights point into */
	float	   *widened;		/* F16/BF16 weights converted at load */
	size_t		widened_floats;
	cm_weights	w;
	int64_t		n_params;
	const char *weight_dtype;	/* "F32", "F16", "BF16" or "mixed" */
};

/*
 * Bind every tensor the config calls for from an open safetensors file:
 * checks presence, dtype and exact shape, keeps F32 data in place and widens
 * F16/BF16 into model->widened.  model->config must be filled; on success
 * model->st takes ownership of st.  On failure st is left to the caller.
 */
cm_status	cm_model_bind_weights(cm_model *model, cm_safetensors *st, const char *label,
								  cm_error *err);

/* Free what cm_model_bind_weights allocated (not st). */
void		cm_model_release_weights(cm_model *model);

#endif							/* CM_MODEL_H */
