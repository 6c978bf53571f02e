/*
 * image.h
 *	  Decode image bytes and preprocess them into a CLIP pixel tensor, as
 *	  Hugging Face's CLIPImageProcessor (PIL backend) does.
 */
#ifndef CM_IMAGE_H
#define CM_IMAGE_H

#include "cm_common.h"
#include "crossmodal_encoder.h"

/* Largest width or height of an image accepted for decoding (JPEG's own limit). */
#define CM_IMAGE_MAX_SIDE 65535

/* Largest shortest_edge / crop side accepted in cm_image_params. */
#define CM_IMAGE_MAX_OUTPUT_SIDE 8192

/* How the image becomes the vision tower's square input. */
typedef enum cm_resize_mode
{
	CM_RESIZE_SHORTEST,			/* short side to shortest_edge, aspect kept, then crop */
	CM_RESIZE_EXACT				/* straight to crop_width x crop_height (SigLIP) */
} cm_resize_mode;

/* Filled from preprocessor_config.json (by the model loader) plus caller limits. */
typedef struct cm_image_params
{
	cm_resize_mode resize_mode;
	int			shortest_edge;	/* resize so the short side is this long */
	int			crop_height;	/* then centre-crop to this size */
	int			crop_width;
	bool		do_resize;
	bool		do_center_crop;
	float		rescale_factor; /* usually 1/255 */
	float		mean[3];
	float		std[3];
	uint64_t	max_pixels;		/* refuse larger images before decoding (0 = no limit) */

	/*
	 * open_clip's transform (torchvision) rather than transformers': the
	 * resize runs on the image in its own mode before the RGB conversion
	 * (palette images resized NEAREST, alpha images premultiplied, as PIL
	 * does), and the crop offset is round((size - crop) / 2) with halves to
	 * even instead of (size - crop) // 2.
	 */
	bool		torchvision;

	/* How the bytes are decoded (caller's settings, not the model's). */
	bool		ignore_orientation; /* no EXIF transpose */
	cm_image_background background; /* composite alpha onto this first */
	bool		exact_decode;	/* never decode at a reduced scale */
	double		reduce_gap;		/* 0: the decoder's default (benchmarks vary it) */
	cm_cancel_fn cancel;		/* polled while a large image decodes */
	void	   *cancel_ctx;
} cm_image_params;

/*
 * Decode PNG / JPEG / GIF (first frame) / BMP / TGA / WebP (first frame) /
 * TIFF (first image) bytes, turn them upright by their EXIF orientation,
 * convert to RGB, resize with PIL-compatible antialiased bicubic, centre-crop
 * and normalise into out[3][crop_height][crop_width] (channel-major,
 * float32).
 *
 * Steps, as transformers' load_image and CLIPImageProcessor do them:
 * exif_transpose (unless ignore_orientation); convert("RGB") (grey
 * replicated, alpha dropped, or composited onto background first); if
 * do_resize, the short side becomes shortest_edge and the
 * long side int(shortest_edge * long / short), with Pillow's fixed-point
 * bicubic; if do_center_crop, the centre crop_height x crop_width window, zero
 * padded where the image is smaller; then (value * rescale_factor - mean) /
 * std per channel.  A large JPEG or WebP may be decoded at a reduced scale
 * before the resize (unless exact_decode), with the full-scale geometry
 * kept.  Without do_center_crop the (resized) image must already be
 * crop_height x crop_width.  To skip rescaling or normalisation, pass
 * rescale_factor = 1 or mean = 0, std = 1.
 *
 * Errors: CM_ERR_LIMIT for images over max_pixels or CM_IMAGE_MAX_SIDE
 * (refused before decoding), CM_ERR_INPUT for invalid, truncated or
 * unrecognised bytes (with the decoder's reason), CM_ERR_UNSUPPORTED for
 * valid images of a kind this runtime does not read (a TIFF compression it
 * lacks, ...), CM_ERR_MODEL for invalid params, CM_ERR_CANCELLED, CM_ERR_NOMEM.  Thread-safe; out is
 * written only on success.
 */
cm_status	cm_image_preprocess(const unsigned char *bytes, size_t len,
								const cm_image_params *params, float *out,
								cm_error *err);

#endif							/* CM_IMAGE_H */
