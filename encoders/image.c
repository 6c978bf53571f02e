/*
 * image.c
 *	  CLIP image preprocessing: decode, resize the short side, centre-crop and
 *	  normalise, as Hugging Face's CLIPImageProcessor (PIL backend) does.
 *
 * Geometry follows transformers' image_transforms: the resized long side is
 * int(shortest_edge * long / short) (a correctly rounded double quotient,
 * truncated), the crop starts at (size - crop) // 2, and an axis smaller than
 * the crop is zero-padded with ceil((crop - size) / 2) pixels before it.  Only
 * the resized pixels that survive the crop are computed.  Values then go
 * through float32 arithmetic in HF's order: rescale (in double, stored as
 * float), subtract the mean, divide by the std.
 */
#include "image.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image_decode.h"
#include "image_resample.h"

/* Where one axis of the crop window falls in the resized image. */
typedef struct crop_axis
{
	int64_t		src_start;		/* first resized pixel copied */
	int			src_len;		/* resized pixels copied */
	int			dst_start;		/* where they land in the crop (padding before) */
} crop_axis;

/*
 * transformers starts the crop at (size - crop) // 2 and pads a short axis
 * with ceil((crop - size) / 2) pixels before it; torchvision's CenterCrop
 * starts at round((size - crop) / 2), halves to even, and pads with
 * (crop - size) // 2.
 */
static void
crop_axis_plan(int64_t size, int crop, bool torchvision, crop_axis *a)
{
	if (size >= crop)
	{
		int64_t		d = size - crop;

		a->src_start = d / 2 + (torchvision && (d & 1) ? (d / 2) & 1 : 0);
		a->src_len = crop;
		a->dst_start = 0;
	}
	else
	{
		a->src_start = 0;
		a->src_len = (int) size;
		a->dst_start = (int) ((crop - size + (torchvision ? 0 : 1)) / 2);
	}
}

/* Pillow's MULDIV255: a * b / 255, rounded, in integers. */
static inline unsigned char
mul_div255(unsigned a, unsigned b)
{
	unsigned	t = a * b + 128;

	return (unsigned char) (((t >> 8) + t) >> 8);
}

/*
 * Resize the crop window of an image as open_clip's PIL resize does it for
 * the image's own mode, before any conversion to RGB: NEAREST for palette
 * images; for images with alpha, the colour premultiplied by alpha (PIL's
 * RGBA -> RGBa), resized with the alpha, then divided by the resized alpha
 * (RGBa -> RGBA), the alpha then dropped.  win gets the colour samples only.
 */
static cm_status
resize_in_own_mode(cm_decoded_image *img, const cm_pixel_view *view,
				   int64_t res_w, int64_t res_h, const crop_axis *ax, const crop_axis *ay,
				   unsigned char *win, cm_error *err)
{
	int			colours = img->colours,
				channels = colours + 1;
	size_t		n_in,
				n_win;
	unsigned char *tmp;
	cm_pixel_view pv = *view;
	cm_status	status;

	if (img->mode == CM_MODE_PALETTE)
		return cm_resample_nearest(view, res_w, res_h, ax->src_start, ay->src_start,
								   ax->src_len, ay->src_len, win, err);

	/* CM_MODE_ALPHA: the decoder guarantees an alpha sample after the colour */
	n_in = (size_t) img->width * (size_t) img->height;
	n_win = (size_t) ax->src_len * (size_t) ay->src_len;
	tmp = malloc(n_win * (size_t) channels);
	if (tmp == NULL)
		return cm_set_error(err, CM_ERR_NOMEM, "out of memory resizing an image with alpha");
	/* premultiplied in place: the decoded pixels are not used afterwards */
	for (size_t i = 0; i < n_in; i++)
	{
		unsigned char *p = img->pixels + i * (size_t) img->stride;

		for (int c = 0; c < colours; c++)
			p[c] = mul_div255(p[c], p[colours]);
	}
	pv.channels = channels;
	status = cm_resample_bicubic(&pv, res_w, res_h, ax->src_start, ay->src_start,
								 ax->src_len, ay->src_len, tmp, err);
	if (status == CM_OK)
		for (size_t i = 0; i < n_win; i++)
		{
			const unsigned char *src = tmp + i * (size_t) channels;
			unsigned	alpha = src[colours];

			for (int c = 0; c < colours; c++)
			{
				unsigned	v = alpha == 0 || alpha == 255 ? src[c] : 255u * src[c] / alpha;

				win[i * (size_t) colours + (size_t) c] = (unsigned char) (v > 255 ? 255 : v);
			}
		}
	free(tmp);
	return status;
}

static cm_status
check_params(const cm_image_params *p, cm_error *err)
{
	int			c;

	if (p->crop_height < 1 || p->crop_height > CM_IMAGE_MAX_OUTPUT_SIDE ||
		p->crop_width < 1 || p->crop_width > CM_IMAGE_MAX_OUTPUT_SIDE)
		return cm_set_error(err, CM_ERR_MODEL,
							"invalid image preprocessing: crop size %dx%d (each side must be 1..%d)",
							p->crop_width, p->crop_height, CM_IMAGE_MAX_OUTPUT_SIDE);
	if (p->do_resize && (p->shortest_edge < 1 || p->shortest_edge > CM_IMAGE_MAX_OUTPUT_SIDE))
		return cm_set_error(err, CM_ERR_MODEL,
							"invalid image preprocessing: shortest_edge %d (must be 1..%d)",
							p->shortest_edge, CM_IMAGE_MAX_OUTPUT_SIDE);
	if (!isfinite(p->rescale_factor))
		return cm_set_error(err, CM_ERR_MODEL,
							"invalid image preprocessing: rescale_factor is not finite");
	for (c = 0; c < 3; c++)
		if (!isfinite(p->mean[c]) || !isfinite(p->std[c]) || p->std[c] == 0.0f)
			return cm_set_error(err, CM_ERR_MODEL,
								"invalid image preprocessing: mean[%d] = %g, std[%d] = %g (std must be finite and non-zero)",
								c, (double) p->mean[c], c, (double) p->std[c]);
	return CM_OK;
}

cm_status
cm_image_preprocess(const unsigned char *bytes, size_t len,
					const cm_image_params *params, float *out, cm_error *err)
{
	cm_decode_options dopt;
	cm_image_info info;
	cm_decoded_image img;
	cm_pixel_view view;
	int64_t		res_w,
				res_h;
	crop_axis	ax,
				ay;
	float		lut[3][256];
	unsigned char *win = NULL;
	size_t		win_bytes,
				plane;
	cm_status	status;
	int			colours,
				c,
				v,
				y,
				x;

	if (params == NULL || out == NULL)
		return cm_set_error(err, CM_ERR_INPUT, "cm_image_preprocess: params and out are required");
	status = check_params(params, err);
	if (status != CM_OK)
		return status;

	memset(&dopt, 0, sizeof(dopt));
	dopt.max_pixels = params->max_pixels;
	dopt.ignore_orientation = params->ignore_orientation;
	dopt.background = params->background;
	dopt.exact = params->exact_decode;
	dopt.reduce_gap = params->reduce_gap;
	dopt.cancel = params->cancel;
	dopt.cancel_ctx = params->cancel_ctx;
	status = cm_image_probe(bytes, len, &dopt, &info, err);
	if (status != CM_OK)
		return status;

	/*
	 * Resized size, as transformers' get_resize_output_image_size, from the
	 * full-scale size (the header's, after orientation).
	 */
	res_w = info.width;
	res_h = info.height;
	if (params->do_resize && params->resize_mode == CM_RESIZE_EXACT)
	{
		res_w = params->crop_width;
		res_h = params->crop_height;
	}
	else if (params->do_resize)
	{
		int64_t		se = params->shortest_edge;

		if (info.width <= info.height)
		{
			res_w = se;
			res_h = (int64_t) ((double) (se * info.height) / (double) info.width);
		}
		else
		{
			res_h = se;
			res_w = (int64_t) ((double) (se * info.width) / (double) info.height);
		}
	}
	if (!params->do_center_crop &&
		(res_w != params->crop_width || res_h != params->crop_height))
	{
		return cm_set_error(err, CM_ERR_INPUT,
							"image is %lldx%lld after resizing but the model needs %dx%d, and the preprocessor does not crop",
							(long long) res_w, (long long) res_h,
							params->crop_width, params->crop_height);
	}
	crop_axis_plan(res_w, params->crop_width, params->torchvision, &ax);
	crop_axis_plan(res_h, params->crop_height, params->torchvision, &ay);

	/* Decode, at a reduced scale if the resize target allows it. */
	dopt.target_width = (int) (res_w < INT32_MAX ? res_w : INT32_MAX);
	dopt.target_height = (int) (res_h < INT32_MAX ? res_h : INT32_MAX);
	status = cm_image_decode(bytes, len, &dopt, &img, err);
	if (status != CM_OK)
		return status;

	/* Resize only the part of the image that survives the crop. */
	if (!cm_mul_size((size_t) ax.src_len, (size_t) ay.src_len, &win_bytes) ||
		!cm_mul_size(win_bytes, (size_t) img.colours, &win_bytes))
	{
		cm_decoded_image_free(&img);
		return cm_set_error(err, CM_ERR_LIMIT, "crop window too large");
	}
	win = malloc(win_bytes);
	if (win == NULL)
	{
		cm_decoded_image_free(&img);
		return cm_set_error(err, CM_ERR_NOMEM, "out of memory for the resized image");
	}
	colours = img.colours;
	view.data = img.pixels;
	view.width = img.width;
	view.height = img.height;
	view.stride = img.stride;
	view.channels = img.colours;
	view.extent_width = img.extent_width;
	view.extent_height = img.extent_height;
	if (params->torchvision && img.mode != CM_MODE_DIRECT &&
		(res_w != info.width || res_h != info.height))
		status = resize_in_own_mode(&img, &view, res_w, res_h, &ax, &ay, win, err);
	else
		status = cm_resample_bicubic(&view, res_w, res_h, ax.src_start, ay.src_start,
									 ax.src_len, ay.src_len, win, err);
	cm_decoded_image_free(&img);
	if (status != CM_OK)
	{
		free(win);
		return status;
	}

	/*
	 * Every output value is a function of one 8-bit sample: tabulate it with
	 * HF's float32 arithmetic (rescale computed in double, then stored).
	 */
	for (c = 0; c < 3; c++)
		for (v = 0; v < 256; v++)
		{
			float		scaled = (float) ((double) v * (double) params->rescale_factor);

			lut[c][v] = (scaled - params->mean[c]) / params->std[c];
		}

	/* Scatter into [3][crop_h][crop_w], padding with the value of pixel 0. */
	plane = (size_t) params->crop_height * (size_t) params->crop_width;
	for (c = 0; c < 3; c++)
	{
		float	   *dst = out + plane * c;
		int			sc = colours == 1 ? 0 : c;

		for (y = 0; y < params->crop_height; y++)
		{
			float	   *row = dst + (size_t) y * params->crop_width;
			int			wy = y - ay.dst_start;

			if (wy < 0 || wy >= ay.src_len)
			{
				for (x = 0; x < params->crop_width; x++)
					row[x] = lut[c][0];
				continue;
			}
			for (x = 0; x < params->crop_width; x++)
			{
				int			wx = x - ax.dst_start;

				row[x] = (wx < 0 || wx >= ax.src_len) ? lut[c][0]
					: lut[c][win[((size_t) wy * ax.src_len + wx) * colours + sc]];
			}
		}
	}
	free(win);
	return CM_OK;
}
