/*
 * config.h
 *	  A model's configuration (config.json or open_clip_config.json, and the
 *	  image preprocessing), parsed and range-checked into plain structs.
 */
#ifndef CM_CONFIG_H
#define CM_CONFIG_H

#include "cm_common.h"
#include "image.h"

typedef enum cm_activation
{
	CM_ACT_QUICK_GELU,			/* x * sigmoid(1.702 x) */
	CM_ACT_GELU,				/* exact: 0.5 x (1 + erf(x / sqrt 2)) */
	CM_ACT_GELU_TANH			/* "gelu_new" / "gelu_pytorch_tanh" */
} cm_activation;

/*
 * The model families the runtime runs.  A family fixes the few variations of
 * the shared transformer below (attention mask, pooling, heads); the tensor
 * names follow the layout it was saved in (model.c).
 */
typedef enum cm_family
{
	CM_FAMILY_CLIP,				/* CLIPModel, Hugging Face layout */
	CM_FAMILY_SIGLIP,			/* SiglipModel (SigLIP and SigLIP 2 FixRes) */
	CM_FAMILY_OPENCLIP			/* open_clip_config.json + open_clip_model.safetensors */
} cm_family;

/* Which position of a text's last hidden states becomes its feature. */
typedef enum cm_text_pooling
{
	CM_POOL_FIRST_EOS,			/* first position holding eos_token_id (else 0) */
	CM_POOL_ARGMAX,				/* position of the highest id (legacy CLIP, OpenCLIP) */
	CM_POOL_LAST				/* the last position (SigLIP, after padding) */
} cm_text_pooling;

/* What the text and vision transformers share. */
typedef struct cm_tower_config
{
	int			hidden_size;
	int			intermediate_size;
	int			num_layers;
	int			num_heads;		/* divides hidden_size */
	float		layer_norm_eps;
	cm_activation act;
} cm_tower_config;

typedef struct cm_text_config
{
	cm_tower_config t;
	int			vocab_size;
	int			max_positions;	/* max_position_embeddings */
	int32_t		bos_token_id;
	int32_t		eos_token_id;
	int32_t		pad_token_id;	/* -1: none */
	bool		causal;			/* each position attends only to earlier ones */
	cm_text_pooling pooling;
	bool		head_bias;		/* the projection to projection_dim has a bias */
} cm_text_config;

typedef struct cm_vision_config
{
	cm_tower_config t;
	int			image_size;
	int			patch_size;
	int			num_channels;	/* always 3 */
	int			grid;			/* image_size / patch_size */
	int			n_positions;	/* grid * grid, plus 1 with a class token */
	bool		class_token;	/* CLIP: a class token first, pooled */
	bool		pre_norm;		/* a layer norm before the first layer */
	bool		patch_bias;		/* the patch convolution has a bias */
	bool		map_head;		/* SigLIP: attention pooling over every token */
} cm_vision_config;

typedef struct cm_config
{
	cm_family	family;
	cm_text_config text;
	cm_vision_config vision;
	int			projection_dim; /* length of every embedding */
	bool		has_logit_bias; /* SigLIP: zero-shot is sigmoid(scale cos + bias) */

	/*
	 * open_clip: the SimpleTokenizer merges file named by
	 * text_cfg.tokenizer_kwargs.bpe_path, relative to the model directory
	 * ("" when the config names none), and its clean mode.
	 */
	char		bpe_path[256];
	bool		clean_lower;
	/* Comma-separated keys that were absent and took transformers' defaults. */
	char		defaulted[256];
} cm_config;

/* Hard limits that keep a hostile config from sizing huge buffers. */
#define CM_CONFIG_MAX_HIDDEN 16384
#define CM_CONFIG_MAX_INTERMEDIATE 131072
#define CM_CONFIG_MAX_LAYERS 256
#define CM_CONFIG_MAX_VOCAB (1 << 21)
#define CM_CONFIG_MAX_POSITIONS 16384
#define CM_CONFIG_MAX_IMAGE_SIZE 4096
#define CM_CONFIG_MAX_PROJECTION 16384
#define CM_CONFIG_MAX_FILE_BYTES (16u << 20)

/*
 * Parse config.json text (len bytes, no NUL needed).  label names the file in
 * messages.  Absent keys take the defaults of transformers' CLIPConfig
 * (openai/clip-vit-base-patch32) and are listed in out->defaulted.
 */
cm_status	cm_config_parse(const char *json, size_t len, const char *label,
							cm_config *out, cm_error *err);

/*
 * Parse an open_clip_config.json (open_clip's push_to_hf_hub layout:
 * "model_cfg" with vision_cfg and text_cfg as open_clip's CLIPVisionCfg and
 * CLIPTextCfg, "preprocess_cfg" with mean, std, interpolation and
 * resize_mode) into *out and the image preprocessing into *image.  Absent
 * keys take open_clip's defaults.  Keys open_clip would refuse, and
 * variants of the architecture this runtime does not run (timm or Hugging
 * Face towers, attention pooling, layer scale, ...), are CM_ERR_UNSUPPORTED
 * naming the key.
 */
cm_status	cm_openclip_config_parse(const char *json, size_t len, const char *label,
									 cm_config *out, cm_image_params *image,
									 cm_error *err);

/*
 * Parse preprocessor_config.json into *out (max_pixels left 0).  The crop
 * must match the vision tower's image size.
 */
cm_status	cm_preprocessor_parse(const char *json, size_t len, const char *label,
								  const cm_vision_config *vision,
								  cm_image_params *out, cm_error *err);

/* Read a whole small file (at most max_bytes) into a malloc'd buffer. */
cm_status	cm_read_file(const char *path, size_t max_bytes, char **out,
						 size_t *out_len, cm_error *err);

/*
 * Read a gzip file (at most max_in bytes; concatenated members as Python's
 * gzip module reads them) and decompress it into a malloc'd buffer of at
 * most max_out bytes (NUL-terminated, the length without it).  A larger
 * result, invalid or truncated data: CM_ERR_MODEL.
 */
cm_status	cm_read_gzip_file(const char *path, size_t max_in, size_t max_out, char **out,
							  size_t *out_len, cm_error *err);

const char *cm_activation_name(cm_activation act);

#endif							/* CM_CONFIG_H */
