/*
 * image_resample.h
 *	  Pillow-compatible antialiased bicubic resize of 8-bit images, computing
 *	  only a window of the output (private to the image module).
 */
#ifndef CM_IMAGE_RESAMPLE_H
#define CM_IMAGE_RESAMPLE_H

#include "cm_common.h"

/* Read-only 8-bit pixels; the first `channels` samples of each pixel are used. */
typedef struct cm_pixel_view
{
	const unsigned char *data;	/* [height][width][stride] */
	int			width;
	int			height;
	int			stride;			/* samples per pixel, >= channels */
	int			channels;		/* 1..4 */

	/*
	 * How much of the input, from its top-left corner and in its own pixels,
	 * the output covers: 0 for all of it.  An image decoded at 1/r scale has
	 * ceil(size / r) pixels but ends at size / r, which is what the output
	 * must map onto to keep the full-scale geometry (Pillow's resize box).
	 */
	double		extent_width;
	double		extent_height;
} cm_pixel_view;

/*
 * The window [x0, x0 + win_width) x [y0, y0 + win_height) of what Pillow's
 * Image.resize((out_width, out_height), BICUBIC) would produce from `in`,
 * bit for bit: the same filter support scaled by the downscale factor, the
 * same coefficients in 22-bit fixed point, a horizontal pass then a vertical
 * one, each rounded and clipped to 8 bits; an axis whose size does not change
 * is copied, not filtered.  Output pixels outside the window are not computed,
 * so the cost is bounded by the window, not by out_width * out_height.
 * The window must lie inside the output.  out receives win_height rows of
 * win_width pixels of in->channels samples.
 */
cm_status	cm_resample_bicubic(const cm_pixel_view *in,
								int64_t out_width, int64_t out_height,
								int64_t x0, int64_t y0,
								int win_width, int win_height,
								unsigned char *out, cm_error *err);

/*
 * The same window of what Pillow's Image.resize((out_width, out_height),
 * NEAREST) produces, as it does it for a palette image: output pixel x reads
 * input pixel (int) xo, where xo starts at in_width / out_width / 2 and
 * grows by in_width / out_width per pixel, summed in double precision in
 * that order (so the window's first position costs x0 additions).  Same
 * arguments and output layout as cm_resample_bicubic.
 */
cm_status	cm_resample_nearest(const cm_pixel_view *in,
								int64_t out_width, int64_t out_height,
								int64_t x0, int64_t y0,
								int win_width, int win_height,
								unsigned char *out, cm_error *err);

#endif							/* CM_IMAGE_RESAMPLE_H */
