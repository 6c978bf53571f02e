/*
 * image_decode.h
 *	  Bounded, thread-safe decoding of image bytes (PNG, JPEG, GIF, BMP, TGA,
 *	  WebP, TIFF) into 8-bit samples, with EXIF orientation, optional alpha
 *	  compositing and reduced-scale decoding of large photos (private to the
 *	  image module).
 */
#ifndef CM_IMAGE_DECODE_H
#define CM_IMAGE_DECODE_H

#include "cm_common.h"
#include "crossmodal_encoder.h"

typedef enum cm_image_format
{
	CM_IMAGE_PNG,
	CM_IMAGE_JPEG,
	CM_IMAGE_GIF,
	CM_IMAGE_BMP,
	CM_IMAGE_TGA,
	CM_IMAGE_WEBP,
	CM_IMAGE_TIFF
} cm_image_format;

/* What the caller asks of a decode. */
typedef struct cm_decode_options
{
	uint64_t	max_pixels;		/* width * height limit from the header; 0 = none */
	bool		ignore_orientation; /* keep the stored layout (no EXIF transpose) */
	cm_image_background background; /* CM_BACKGROUND_NONE: alpha kept, then
									 * dropped by the caller as PIL's
									 * convert("RGB") does */

	/*
	 * The size the caller will resize the decoded image to (after
	 * orientation), or 0 x 0 when unknown.  A format that can decode at a
	 * reduced scale (JPEG's DCT scaling, WebP's rescaler) then does so while
	 * the result stays comfortably above this size, unless exact is set.
	 */
	int			target_width;
	int			target_height;
	bool		exact;
	double		reduce_gap;		/* decoded pixels kept per target pixel and
								 * axis; 0 = the default (benchmarks vary it) */

	cm_cancel_fn cancel;		/* polled while a large image decodes; may be NULL */
	void	   *cancel_ctx;
} cm_decode_options;

/* What the header says, read without decoding. */
typedef struct cm_image_info
{
	cm_image_format format;
	int			width;			/* full-scale size after orientation */
	int			height;
	int			orientation;	/* EXIF orientation applied, 1..8 (1: none) */
} cm_image_info;

/*
 * What PIL's mode for the image, as Image.open gives it, means for a resize
 * that runs before convert("RGB") (open_clip's transform does): PIL resizes
 * "P" and "1" images with NEAREST whatever filter is asked for, and "LA" and
 * "RGBA" images premultiplied by their alpha.
 */
typedef enum cm_image_mode
{
	CM_MODE_DIRECT,				/* L, RGB, and alpha PIL does not read as such */
	CM_MODE_PALETTE,			/* P or 1: resized NEAREST */
	CM_MODE_ALPHA				/* LA or RGBA: resized premultiplied */
} cm_image_mode;

/*
 * Decoded pixels, 8 bits per sample.  The conversion to RGB that PIL's
 * convert("RGB") performs is expressed by the two counts rather than by a
 * copy: the first `colours` samples of each pixel are its colour (1 = grey,
 * replicated to R = G = B; 3 = RGB), and a further sample, when stride says
 * there is one, is alpha (left to the caller: PIL's convert drops it).
 */
typedef struct cm_decoded_image
{
	unsigned char *pixels;		/* [height][width][stride], owned (malloc) */
	int			width;			/* as decoded: smaller than full_width when */
	int			height;			/* decoded at a reduced scale */
	int			stride;			/* samples per pixel: 1, 2, 3 or 4 */
	int			colours;		/* 1 or 3 */
	int			full_width;		/* the image's size at full scale, after */
	int			full_height;	/* orientation: what geometry is computed from */
	int			reduce;			/* decoded at 1 / reduce scale: width is
								 * ceil(full_width / reduce) */

	/*
	 * The full image's extent in decoded pixels, which the resize maps onto:
	 * full_width / reduce after DCT scaling (the last pixel reaches past the
	 * image), the decoded width itself after a rescaler that spreads the
	 * whole image over it (WebP).  Equal to width and height at full scale.
	 */
	double		extent_width;
	double		extent_height;
	cm_image_format format;
	cm_image_mode mode;			/* CM_MODE_ALPHA only with an alpha sample */
} cm_decoded_image;

/*
 * Identify the format and read the header: size, orientation.  Refuses an
 * image with a side over CM_IMAGE_MAX_SIDE or more than max_pixels pixels
 * (CM_ERR_LIMIT), unrecognised or malformed headers (CM_ERR_INPUT).
 */
cm_status	cm_image_probe(const unsigned char *bytes, size_t len,
						   const cm_decode_options *opt, cm_image_info *info,
						   cm_error *err);

/*
 * Probe, then decode.  Every allocation a decoder makes is bounded by what an
 * image of the declared size can need, so inflating data (zlib bombs, lying
 * chunk lengths) fails instead of allocating.  Invalid or truncated bytes
 * give CM_ERR_INPUT with the decoder's reason; valid images of a kind this
 * runtime cannot convert as PIL does give CM_ERR_UNSUPPORTED.  On success
 * the caller frees out with cm_decoded_image_free.
 */
cm_status	cm_image_decode(const unsigned char *bytes, size_t len,
							const cm_decode_options *opt, cm_decoded_image *out,
							cm_error *err);

void		cm_decoded_image_free(cm_decoded_image *img);

/* "PNG", "JPEG", ... */
const char *cm_image_format_name(cm_image_format format);

#endif							/* CM_IMAGE_DECODE_H */
