/*
 * crossmodal_encoder.h
 *	  Public API of the encoder runtime: load a model directory (CLIP, SigLIP
 *	  and SigLIP 2 as transformers saves them, OpenCLIP as open_clip saves
 *	  it), encode texts and images into L2-normalised embeddings.
 *
 * Plain C (C99 and later), no PostgreSQL headers.  A loaded cm_model is
 * immutable and may be shared by any number of threads; each thread (or
 * call) uses its own cm_state for activations.  Every function reports
 * failure as a cm_status plus a message in a caller-owned cm_error; nothing
 * prints, exits or aborts.
 *
 * A model directory holds what CLIPModel / SiglipModel.save_pretrained
 * writes plus the tokenizer files: config.json, model.safetensors,
 * preprocessor_config.json, and vocab.json + merges.txt (CLIP's BPE), or a
 * tokenizer.json, or (SigLIP) spiece.model.  A checkpoint saved in shards
 * has model.safetensors.index.json and the shard files it names instead of
 * model.safetensors.  Or it is an OpenCLIP checkpoint as open_clip writes it
 * (open_clip_config.json, open_clip_model.safetensors, and its BPE merges:
 * the file tokenizer_kwargs.bpe_path names, bpe_simple_vocab_16e6.txt.gz or
 * merges.txt); with a config.json too, it loads in transformers' layout.
 * A required file that is absent is reported as CM_ERR_IO with its path in
 * cm_error.missing_file.
 */
#ifndef CROSSMODAL_ENCODER_H
#define CROSSMODAL_ENCODER_H

#include "cm_common.h"

#ifdef __cplusplus
extern "C"
{
#endif

typedef struct cm_model cm_model;
typedef struct cm_state cm_state;

/* Log levels passed to a cm_log_fn. */
#define CM_LOG_DEBUG 0
#define CM_LOG_INFO 1
#define CM_LOG_WARNING 2

/* Receives diagnostics the runtime would otherwise drop. */
typedef void (*cm_log_fn) (void *ctx, int level, const char *message);

/* Return true to stop the running call with CM_ERR_CANCELLED. */
typedef bool (*cm_cancel_fn) (void *ctx);

/*
 * The arithmetic of a model's matrix products (every linear layer, the patch
 * embedding and the projections; attention, layer norms and activations are
 * float32 in both).
 *
 * CM_PRECISION_F32: float32 throughout.  F32 weights are used in place from
 * the read-only mapping, so every process that loads the same file shares
 * them through the page cache; F16 and BF16 weights are widened once per
 * process (a private copy).
 *
 * CM_PRECISION_BF16: bfloat16 weights times activations rounded to bfloat16
 * (to nearest even), the products summed in float32: AVX512_BF16's dot
 * products where the CPU has them, the same products in float32 arithmetic
 * elsewhere.  BF16 weights are used in place (shared); F32 and F16 weights
 * are converted once per process at load (a private copy, half the size of
 * the F32 file's matrices).  Embeddings are within a cosine of about
 * 0.99997 of float32's, not equal to them, and near-tied neighbours can swap
 * places (bench/encoders/README.md has the measurements).
 */
typedef enum cm_precision
{
	CM_PRECISION_DEFAULT = 0,	/* CM_PRECISION_F32 */
	CM_PRECISION_F32,
	CM_PRECISION_BF16
} cm_precision;

typedef struct cm_load_options
{
	cm_log_fn	log;			/* NULL: no logging */
	void	   *log_ctx;
	cm_precision precision;
} cm_load_options;

/* Defaults, used where a field is 0. */
#define CM_DEFAULT_MAX_IMAGE_BYTES ((size_t) 64 << 20)
#define CM_DEFAULT_MAX_IMAGE_PIXELS ((uint64_t) 89478485)	/* PIL's bomb limit */
#define CM_DEFAULT_BATCH 32
#define CM_MAX_BATCH 1024

/*
 * What becomes of transparent pixels.  CM_BACKGROUND_NONE drops alpha as
 * PIL's convert("RGB") does (the colour stored under a transparent pixel
 * shows, often black); the others composite the image onto an opaque
 * background first.
 */
typedef enum cm_image_background
{
	CM_BACKGROUND_NONE = 0,
	CM_BACKGROUND_WHITE,
	CM_BACKGROUND_BLACK
} cm_image_background;

/*
 * How large photos are decoded.  CM_DECODE_REDUCED lets a format that can
 * decode at a reduced scale (JPEG's DCT scaling, WebP's rescaler) do so when
 * the image is much larger than the model's input, before the antialiased
 * resize; CM_DECODE_EXACT always decodes every pixel, as PIL does.
 */
typedef enum cm_image_decode_mode
{
	CM_DECODE_DEFAULT = 0,		/* CM_DECODE_REDUCED */
	CM_DECODE_EXACT,
	CM_DECODE_REDUCED
} cm_image_decode_mode;

/*
 * Per-call options.  A zero-initialised struct (or a NULL pointer) gives the
 * defaults: no cancel callback, no logging, the default image limits, a batch
 * of CM_DEFAULT_BATCH, L2-normalised output, images turned upright by their
 * EXIF orientation, alpha dropped, large photos decoded at a reduced scale.
 */
typedef struct cm_run_options
{
	cm_cancel_fn cancel;		/* polled at least once per transformer layer */
	void	   *cancel_ctx;
	cm_log_fn	log;			/* per-call diagnostics (e.g. truncated texts) */
	void	   *log_ctx;
	size_t		max_image_bytes;	/* encoded size limit; 0 = default */
	uint64_t	max_image_pixels;	/* width * height limit, checked before
									 * decoding; 0 = default */
	int			batch_size;		/* inputs per forward pass; 0 = default */
	bool		raw_features;	/* skip the L2 normalisation (tests, debugging) */
	bool		ignore_orientation; /* images as stored: no EXIF orientation */
	cm_image_background image_background;
	cm_image_decode_mode image_decode;
} cm_run_options;

typedef struct cm_model_info
{
	int			embed_dim;		/* projection_dim: length of every embedding */
	int			image_size;		/* square input side of the vision tower */
	int			max_tokens;		/* text positions, BOS and EOS included */
	int			vocab_size;
	int			text_hidden;
	int			text_layers;
	int			vision_hidden;
	int			vision_layers;
	int			patch_size;
	int64_t		n_params;		/* parameters the runtime uses */
	const char *weight_dtype;	/* of model.safetensors: "F32", "F16", "BF16"
								 * or "mixed"; owned by the model */
	cm_precision precision;		/* of the products: F32 or BF16 */
	const char *kernels;		/* the instruction set the products run on
								 * on this CPU, e.g. "AVX-512 with
								 * AVX512_BF16": static */
	int64_t		private_weight_bytes;	/* weights copied (widened or
										 * converted) into this process's
										 * memory, not shared */
	float		logit_scale;	/* exp(logit_scale), the similarity scale */
	const char *family;			/* "clip", "siglip" or "openclip": static */
	const char *tokenizer_kind; /* "CLIP BPE", "OpenCLIP BPE", "BPE",
								 * "WordPiece", "Unigram", "SentencePiece
								 * Unigram": static */
	/*
	 * SigLIP (and OpenCLIP models trained with a bias): zero-shot scores are
	 * per-label probabilities sigmoid(logit_scale * cos + logit_bias);
	 * otherwise (CLIP) a softmax over the labels of logit_scale * cos.
	 */
	bool		has_logit_bias;
	float		logit_bias;
} cm_model_info;

/*
 * Whether dir holds a model: a config.json (transformers' layout) or an
 * open_clip_config.json (open_clip's), as a regular file.  Nothing is read
 * or parsed; cm_model_load says whether the model is valid.
 */
bool		cm_model_dir_has_config(const char *dir);

/* Load a model directory.  NULL and err filled on failure. */
cm_model   *cm_model_load(const char *dir, const cm_load_options *options, cm_error *err);
void		cm_model_free(cm_model *model);
void		cm_model_get_info(const cm_model *model, cm_model_info *info);

/*
 * CM_OK unless a weights file the model maps was written in place since it
 * was loaded (size or modification time changed).  A model for which this
 * fails must not be used again: a truncated file raises SIGBUS when read,
 * a rewritten one holds other weights.  Costs an fstat per mapped file.
 */
cm_status	cm_model_check_files(const cm_model *model, cm_error *err);

/*
 * Activation buffers for one thread at a time; grown as needed and reused.
 * NULL may be passed as state to any encode function: a temporary one is
 * then made for the call.
 */
cm_state   *cm_state_new(const cm_model *model, cm_error *err);
void		cm_state_free(cm_state *state);

/*
 * Encode n UTF-8 texts (lens[i] bytes each; lens NULL: NUL-terminated) into
 * out[n * embed_dim].  Texts longer than the model's positions are truncated
 * keeping EOS, as CLIPTokenizer does with truncation.
 */
cm_status	cm_encode_texts(const cm_model *model, cm_state *state,
							const char *const *texts, const size_t *lens, int n,
							const cm_run_options *options, float *out, cm_error *err);

/*
 * Encode n encoded images (PNG, JPEG, GIF, BMP, TGA, WebP, TIFF) into
 * out[n * embed_dim].
 */
cm_status	cm_encode_images(const cm_model *model, cm_state *state,
							 const unsigned char *const *images, const size_t *lens, int n,
							 const cm_run_options *options, float *out, cm_error *err);

/* Lower-level entry points (tests, offline tools). */

/* Tokenize one text into ids[max_ids] (BOS ... EOS); *n_ids gets the count. */
cm_status	cm_tokenize(const cm_model *model, const char *text, size_t len,
						int32_t *ids, int max_ids, int *n_ids, cm_error *err);

/*
 * Encode n token-id sequences (ids[i] has n_ids[i] entries, 1..max_tokens,
 * each in [0, vocab_size)).  hidden, when not NULL, receives the final
 * layer-normed hidden states of every position, sequences one after the
 * other: sum(n_ids) * text_hidden floats.
 */
cm_status	cm_encode_token_ids(const cm_model *model, cm_state *state,
								const int32_t *const *ids, const int *n_ids, int n,
								const cm_run_options *options, float *out,
								float *hidden, cm_error *err);

/* Decode and preprocess one image into out[3 * image_size * image_size]. */
cm_status	cm_preprocess_image(const cm_model *model, const unsigned char *bytes, size_t len,
								const cm_run_options *options, float *out, cm_error *err);

/* Encode n preprocessed pixel tensors pixels[n][3][image_size][image_size]. */
cm_status	cm_encode_pixels(const cm_model *model, cm_state *state,
							 const float *pixels, int n,
							 const cm_run_options *options, float *out, cm_error *err);

/*
 * OpenBLAS's thread count is process-wide; the runtime never changes it by
 * itself.  These wrap openblas_set_num_threads / openblas_get_num_threads.
 */
void		cm_set_num_threads(int n);
int			cm_get_num_threads(void);

/* A short, static description of a status ("model file invalid", ...). */
const char *cm_status_name(cm_status status);

#ifdef __cplusplus
}
#endif

#endif							/* CROSSMODAL_ENCODER_H */
