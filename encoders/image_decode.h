/*
 * image_decode.h
 *	  Bounded, thread-safe decoding of PNG / JPEG / GIF / BMP bytes into 8-bit
 *	  samples (private to the image module).
 */
#ifndef CM_IMAGE_DECODE_H
#define CM_IMAGE_DECODE_H

#include "cm_common.h"

typedef enum cm_image_format
{
	CM_IMAGE_PNG,
	CM_IMAGE_JPEG,
	CM_IMAGE_GIF,
	CM_IMAGE_BMP
} cm_image_format;

/*
 * Decoded pixels as the decoder produced them, 8 bits per sample.  The
 * conversion to RGB that PIL's convert("RGB") performs is expressed by the two
 * counts rather than by a copy: the first `colours` samples of each pixel are
 * its colour (1 = grey, replicated to R = G = B; 3 = RGB), and any further
 * sample (alpha) is ignored -- dropped, not composited, as PIL does.
 */
typedef struct cm_decoded_image
{
	unsigned char *pixels;		/* [height][width][stride], owned */
	int			width;
	int			height;
	int			stride;			/* samples per pixel: 1, 2, 3 or 4 */
	int			colours;		/* 1 or 3 */
	cm_image_format format;
} cm_decoded_image;

/*
 * Identify the format, read the declared size without decoding, refuse it when
 * a side exceeds CM_IMAGE_MAX_SIDE or width * height exceeds max_pixels
 * (CM_ERR_LIMIT; 0 = no pixel limit), then decode.  Every allocation the
 * decoder makes is capped by what an image of the declared size can need, so
 * inflating data (zlib bombs, lying chunk lengths) fails instead of
 * allocating.  Invalid or truncated bytes give CM_ERR_INPUT with the
 * decoder's reason; CMYK JPEGs give CM_ERR_UNSUPPORTED.  16-bit PNG samples
 * are reduced to their high byte.  On success the caller frees out with
 * cm_decoded_image_free.
 */
cm_status	cm_image_decode(const unsigned char *bytes, size_t len,
							uint64_t max_pixels, cm_decoded_image *out,
							cm_error *err);

void		cm_decoded_image_free(cm_decoded_image *img);

#endif							/* CM_IMAGE_DECODE_H */
