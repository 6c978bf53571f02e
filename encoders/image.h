/*
 * image.h
 *	  Decode image bytes and preprocess them into a CLIP pixel tensor, as
 *	  Hugging Face's CLIPImageProcessor (PIL backend) does.
 */
#ifndef CM_IMAGE_H
#define CM_IMAGE_H

#include "cm_common.h"

/* Filled from preprocessor_config.json (by the model loader) plus caller limits. */
typedef struct cm_image_params
{
	int			shortest_edge;	/* resize so the short side is this long */
	int			crop_height;	/* then centre-crop to this size */
	int			crop_width;
	bool		do_resize;
	bool		do_center_crop;
	float		rescale_factor; /* usually 1/255 */
	float		mean[3];
	float		std[3];
	uint64_t	max_pixels;		/* refuse larger images before decoding (0 = no limit) */
} cm_image_params;

/*
 * Decode PNG / JPEG / GIF (first frame) / BMP bytes, convert to RGB, resize
 * with PIL-compatible antialiased bicubic, centre-crop and normalise into
 * out[3][crop_height][crop_width] (channel-major, float32).
 */
cm_status	cm_image_preprocess(const unsigned char *bytes, size_t len,
								const cm_image_params *params, float *out,
								cm_error *err);

#endif							/* CM_IMAGE_H */
