/*
 * image_resample.c
 *	  Antialiased bicubic resize that reproduces Pillow's 8-bit resampling
 *	  exactly, restricted to a window of the output.
 *
 * Pillow's algorithm (libImaging/Resample.c), which CLIPImageProcessor uses
 * through Image.resize(size, BICUBIC): for each output position, the filter
 * (Keys cubic, a = -0.5, support 2) is stretched by the downscale factor when
 * shrinking (that is the antialiasing) and sampled at the input pixel centres
 * the stretched support covers; the weights are normalised to sum 1, then
 * rounded to signed fixed point.  The horizontal pass runs first, over only
 * the input rows the vertical pass will read; each pass adds half a unit,
 * shifts, and clips to 0..255, so the intermediate image is 8-bit exactly as
 * Pillow's is.  The coefficient arithmetic below is written in the same order
 * as Pillow's so that the doubles, and therefore the rounded integers, come
 * out identical.
 *
 * Fixed point: the weights of one axis share one precision, the most fraction
 * bits (at most 22) for which the axis's largest weight fits a signed 16-bit
 * integer -- the int16 scheme of Pillow's SIMD resampler, which the reference
 * data (HF transformers with a current Pillow) was produced with.  Older
 * Pillow releases (Debian's 9.4 among them) use 22 bits in 32-bit integers
 * throughout; their output differs by 1-2 units on about 1% of pixels.  (With
 * the precision fixed at 22, this code matched Pillow 9.4 bit for bit on 69
 * random resizes.)
 */
#include "image_resample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PRECISION_BITS 22
#define BICUBIC_SUPPORT 2.0

/* Per output position of one axis: which input samples it reads, and how. */
typedef struct axis_filter
{
	int			n;				/* output positions covered (the window) */
	int			ksize;			/* stride of weights[] per position */
	int			precision;		/* fraction bits of the fixed-point weights */
	int		   *first;			/* [n] first input index read */
	int		   *count;			/* [n] number of input samples read */
	int32_t    *weights;		/* [n][ksize] fixed-point weights */
} axis_filter;

static double
bicubic_filter(double x)
{
	const double a = -0.5;

	if (x < 0.0)
		x = -x;
	if (x < 1.0)
		return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
	if (x < 2.0)
		return (((x - 5) * x + 8) * x - 4) * a;
	return 0.0;
}

static void
axis_filter_free(axis_filter *f)
{
	free(f->first);
	free(f->count);
	free(f->weights);
	memset(f, 0, sizeof(*f));
}

/*
 * Normalised double weights of output position xx: count weights for input
 * samples [*first, *first + count).  Same arithmetic, in the same order, as
 * Pillow's precompute_coeffs.
 */
static void
axis_position_weights(int in_size, int64_t xx, double scale, double support,
					  double ss, int ksize, double *w, int *first, int *count)
{
	double		center = ((double) xx + 0.5) * scale;
	double		ww = 0.0;
	int			xmin,
				xmax,
				x;

	/* Pillow rounds by adding 0.5 and truncating toward zero. */
	xmin = (int) (center - support + 0.5);
	if (xmin < 0)
		xmin = 0;
	xmax = (int) (center + support + 0.5);
	if (xmax > in_size)
		xmax = in_size;
	xmax -= xmin;
	if (xmax < 0)
		xmax = 0;
	if (xmax > ksize)			/* cannot happen: the window spans 2 * support + 1 */
		xmax = ksize;
	for (x = 0; x < xmax; x++)
	{
		w[x] = bicubic_filter(((double) (x + xmin) - center + 0.5) * ss);
		ww += w[x];
	}
	if (ww != 0.0)
		for (x = 0; x < xmax; x++)
			w[x] /= ww;
	*first = xmin;
	*count = xmax;
}

/*
 * Weights for output positions [start, start + n) of an axis resized from
 * in_size to out_size samples, the output covering in_extent input samples.
 */
static cm_status
axis_filter_build(int in_size, double in_extent, int64_t out_size, int64_t start, int n,
				  axis_filter *f, cm_error *err)
{
	double		scale,
				filterscale,
				support,
				ss;
	double	   *w = NULL;
	size_t		nweights,
				bytes;
	double		maxk;
	int64_t		xx;
	int			i,
				x,
				precision;

	memset(f, 0, sizeof(*f));
	scale = in_extent / (double) out_size;
	filterscale = scale < 1.0 ? 1.0 : scale;
	support = BICUBIC_SUPPORT * filterscale;
	ss = 1.0 / filterscale;
	/* support <= 2 * CM_IMAGE_MAX_SIDE: ksize fits an int comfortably */
	f->ksize = (int) ceil(support) * 2 + 1;
	f->n = n;

	if (!cm_mul_size((size_t) n, (size_t) f->ksize, &nweights) ||
		!cm_mul_size(nweights, sizeof(int32_t), &bytes))
		return cm_set_error(err, CM_ERR_LIMIT, "resize filter of %d x %d weights is too large",
							n, f->ksize);
	f->first = malloc(sizeof(int) * (size_t) (n > 0 ? n : 1));
	f->count = malloc(sizeof(int) * (size_t) (n > 0 ? n : 1));
	f->weights = malloc(bytes ? bytes : 1);
	w = malloc(sizeof(double) * (size_t) f->ksize);
	if (!f->first || !f->count || !f->weights || !w)
	{
		free(w);
		axis_filter_free(f);
		return cm_set_error(err, CM_ERR_NOMEM, "out of memory for resize weights");
	}

	/*
	 * Pillow quantises the weights of a whole axis with one precision: the
	 * most fraction bits (at most 22) for which the largest weight of the
	 * axis still fits a signed 16-bit integer.  So the largest weight is
	 * taken over every output position, not only the window's.
	 */
	maxk = 0.0;
	for (xx = 0; xx < out_size; xx++)
	{
		int			xmin,
					count;

		axis_position_weights(in_size, xx, scale, support, ss, f->ksize, w, &xmin, &count);
		for (x = 0; x < count; x++)
			if (w[x] > maxk)
				maxk = w[x];
	}
	for (precision = 0; precision < MAX_PRECISION_BITS; precision++)
		if ((int) (0.5 + maxk * (1 << (precision + 1))) >= (1 << 15))
			break;
	/* maxk <= 1.25 for this filter, so precision >= 14; never below 1 */
	f->precision = precision < 1 ? 1 : precision;

	for (i = 0; i < n; i++)
	{
		int32_t    *k = f->weights + (size_t) i * f->ksize;
		int			xmin,
					count;

		axis_position_weights(in_size, start + i, scale, support, ss, f->ksize, w, &xmin, &count);
		for (x = 0; x < count; x++)
			k[x] = w[x] < 0 ? (int32_t) (-0.5 + w[x] * (1 << precision))
				: (int32_t) (0.5 + w[x] * (1 << precision));
		for (; x < f->ksize; x++)
			k[x] = 0;
		f->first[i] = xmin;
		f->count[i] = count;
	}
	free(w);
	return CM_OK;
}

/* Round a fixed-point sum to 8 bits as Pillow does (floor, then clip). */
static inline unsigned char
clip8(int32_t v, int precision)
{
	if (v < 0)
		return 0;
	v >>= precision;
	return v > 255 ? 255 : (unsigned char) v;
}

/*
 * Horizontal pass over input rows [row0, row0 + nrows): out has nrows rows of
 * f->n pixels of `channels` samples.  Inlined per channel count so that the
 * inner loops have constant trip counts.
 */
static inline void
resample_rows(const cm_pixel_view *in, int row0, int nrows,
			  const axis_filter *f, int channels, unsigned char *out)
{
	const int32_t half = (int32_t) 1 << (f->precision - 1);
	const size_t stride = (size_t) in->stride;
	int			r,
				i,
				j,
				c;

	for (r = 0; r < nrows; r++)
	{
		const unsigned char *src = in->data + ((size_t) (row0 + r) * in->width) * in->stride;
		unsigned char *dst = out + (size_t) r * f->n * channels;

		for (i = 0; i < f->n; i++)
		{
			const int32_t *k = f->weights + (size_t) i * f->ksize;
			const unsigned char *p = src + (size_t) f->first[i] * stride;
			int32_t		acc[4] = {half, half, half, half};

			if (channels == 3)
			{
				int32_t		a0 = half,
							a1 = half,
							a2 = half;

				for (j = 0; j < f->count[i]; j++, p += stride)
				{
					a0 += (int32_t) p[0] * k[j];
					a1 += (int32_t) p[1] * k[j];
					a2 += (int32_t) p[2] * k[j];
				}
				dst[(size_t) i * 3 + 0] = clip8(a0, f->precision);
				dst[(size_t) i * 3 + 1] = clip8(a1, f->precision);
				dst[(size_t) i * 3 + 2] = clip8(a2, f->precision);
				continue;
			}
			for (j = 0; j < f->count[i]; j++, p += stride)
				for (c = 0; c < channels; c++)
					acc[c] += (int32_t) p[c] * k[j];
			for (c = 0; c < channels; c++)
				dst[(size_t) i * channels + c] = clip8(acc[c], f->precision);
		}
	}
}

/*
 * Vertical pass: src holds rows starting at input row src_row0, each of
 * row_len samples; out gets f->n rows of row_len samples.  acc is scratch of
 * row_len sums.  Rows are accumulated whole, which vectorises; integer sums
 * do not depend on the order.
 */
static void
resample_columns(const unsigned char *src, int src_row0, size_t row_len,
				 const axis_filter *f, int32_t *restrict acc, unsigned char *out)
{
	const int32_t half = (int32_t) 1 << (f->precision - 1);
	int			i,
				j;
	size_t		t;

	for (i = 0; i < f->n; i++)
	{
		const int32_t *k = f->weights + (size_t) i * f->ksize;
		unsigned char *dst = out + (size_t) i * row_len;

		for (t = 0; t < row_len; t++)
			acc[t] = half;
		for (j = 0; j < f->count[i]; j++)
		{
			const unsigned char *restrict row =
				src + (size_t) (f->first[i] + j - src_row0) * row_len;
			/*
			 * Weights fit 16 bits by construction (see the precision), so
			 * 16 x 16 -> 32-bit products, which SSE2 vectorises.
			 */
			int16_t		kj = (int16_t) k[j];

			/* fixed-size blocks: vectorised even by -O2's cheap cost model */
			for (t = 0; t + 16 <= row_len; t += 16)
			{
				size_t		u;

				for (u = 0; u < 16; u++)
					acc[t + u] += (int32_t) (int16_t) row[t + u] * kj;
			}
			for (; t < row_len; t++)
				acc[t] += (int32_t) (int16_t) row[t] * kj;
		}
		for (t = 0; t < row_len; t++)
			dst[t] = clip8(acc[t], f->precision);
	}
}

/* Copy columns [x0, x0 + n) of input rows [row0, row0 + nrows), packed. */
static void
copy_rows(const cm_pixel_view *in, int row0, int nrows, int x0, int n,
		  unsigned char *out)
{
	int			r,
				i,
				c;

	for (r = 0; r < nrows; r++)
	{
		const unsigned char *src = in->data +
			((size_t) (row0 + r) * in->width + (size_t) x0) * in->stride;
		unsigned char *dst = out + (size_t) r * n * in->channels;

		for (i = 0; i < n; i++, src += in->stride)
			for (c = 0; c < in->channels; c++)
				*dst++ = src[c];
	}
}

cm_status
cm_resample_bicubic(const cm_pixel_view *in, int64_t out_width, int64_t out_height,
					int64_t x0, int64_t y0, int win_width, int win_height,
					unsigned char *out, cm_error *err)
{
	double		extent_w = in->extent_width > 0 ? in->extent_width : in->width;
	double		extent_h = in->extent_height > 0 ? in->extent_height : in->height;
	bool		need_horizontal = out_width != in->width || extent_w != in->width;
	bool		need_vertical = out_height != in->height || extent_h != in->height;
	axis_filter fh = {0},
				fv = {0};
	int			row_first,
				row_last,
				nrows,
				i;
	size_t		row_len,
				tmp_bytes;
	unsigned char *tmp = NULL;
	int32_t    *acc = NULL;
	cm_status	status;

	if (in->width <= 0 || in->height <= 0 || in->channels < 1 || in->channels > 4 ||
		in->stride < in->channels || out_width <= 0 || out_height <= 0 ||
		win_width <= 0 || win_height <= 0 || x0 < 0 || y0 < 0 ||
		x0 + win_width > out_width || y0 + win_height > out_height ||
		out_width > INT32_MAX || out_height > INT32_MAX)
		return cm_set_error(err, CM_ERR_INPUT,
							"invalid resize: %dx%d to %lldx%lld, window %dx%d at (%lld, %lld)",
							in->width, in->height, (long long) out_width, (long long) out_height,
							win_width, win_height, (long long) x0, (long long) y0);

	/* Which input rows the output window needs. */
	if (need_vertical)
	{
		status = axis_filter_build(in->height, extent_h, out_height, y0, win_height, &fv, err);
		if (status != CM_OK)
			return status;
		row_first = fv.first[0];
		row_last = row_first;
		for (i = 0; i < fv.n; i++)
			if (fv.first[i] + fv.count[i] > row_last)
				row_last = fv.first[i] + fv.count[i];
	}
	else
	{
		row_first = (int) y0;
		row_last = (int) y0 + win_height;
	}
	nrows = row_last - row_first;

	/* Horizontal pass (or column copy) into tmp: nrows x win_width pixels. */
	row_len = (size_t) win_width * in->channels;
	if (!cm_mul_size(row_len, (size_t) (nrows > 0 ? nrows : 1), &tmp_bytes))
	{
		axis_filter_free(&fv);
		return cm_set_error(err, CM_ERR_LIMIT, "resize buffer too large");
	}
	tmp = need_vertical ? malloc(tmp_bytes) : out;
	if (tmp == NULL)
	{
		axis_filter_free(&fv);
		return cm_set_error(err, CM_ERR_NOMEM, "out of memory for a %zu-byte resize buffer",
							tmp_bytes);
	}
	if (need_horizontal)
	{
		status = axis_filter_build(in->width, extent_w, out_width, x0, win_width, &fh, err);
		if (status != CM_OK)
		{
			if (tmp != out)
				free(tmp);
			axis_filter_free(&fv);
			return status;
		}
		switch (in->channels)
		{
			case 1:
				resample_rows(in, row_first, nrows, &fh, 1, tmp);
				break;
			case 3:
				resample_rows(in, row_first, nrows, &fh, 3, tmp);
				break;
			default:
				resample_rows(in, row_first, nrows, &fh, in->channels, tmp);
				break;
		}
		axis_filter_free(&fh);
	}
	else
		copy_rows(in, row_first, nrows, (int) x0, win_width, tmp);

	if (need_vertical)
	{
		acc = malloc(sizeof(int32_t) * row_len);
		if (acc == NULL)
		{
			free(tmp);
			axis_filter_free(&fv);
			return cm_set_error(err, CM_ERR_NOMEM, "out of memory for resize sums");
		}
		resample_columns(tmp, row_first, row_len, &fv, acc, out);
		free(acc);
		free(tmp);
		axis_filter_free(&fv);
	}
	return CM_OK;
}

/*
 * Input positions of output pixels [start, start + n) along one axis, as
 * Pillow's ImagingScaleAffine tabulates them: a running double sum from the
 * first pixel's centre, truncated.
 */
static void
nearest_positions(int in_size, int64_t out_size, int64_t start, int n, int *pos)
{
	double		step = (double) in_size / (double) out_size;
	double		at = step * 0.5;

	for (int64_t i = 0; i < start; i++)
		at += step;
	for (int i = 0; i < n; i++)
	{
		int			p = (int) at;

		/* the sum stays below in_size; clamp against rounding all the same */
		pos[i] = p < in_size ? p : in_size - 1;
		at += step;
	}
}

cm_status
cm_resample_nearest(const cm_pixel_view *in, int64_t out_width, int64_t out_height,
					int64_t x0, int64_t y0, int win_width, int win_height,
					unsigned char *out, cm_error *err)
{
	int		   *xs,
			   *ys;

	if (in->width <= 0 || in->height <= 0 || in->channels < 1 || in->channels > 4 ||
		in->stride < in->channels || out_width <= 0 || out_height <= 0 ||
		win_width <= 0 || win_height <= 0 || x0 < 0 || y0 < 0 ||
		x0 + win_width > out_width || y0 + win_height > out_height ||
		out_width > INT32_MAX || out_height > INT32_MAX)
		return cm_set_error(err, CM_ERR_INPUT,
							"invalid resize: %dx%d to %lldx%lld, window %dx%d at (%lld, %lld)",
							in->width, in->height, (long long) out_width, (long long) out_height,
							win_width, win_height, (long long) x0, (long long) y0);
	xs = malloc(sizeof(int) * (size_t) win_width);
	ys = malloc(sizeof(int) * (size_t) win_height);
	if (xs == NULL || ys == NULL)
	{
		free(xs);
		free(ys);
		return cm_set_error(err, CM_ERR_NOMEM, "out of memory for a resize table");
	}
	nearest_positions(in->width, out_width, x0, win_width, xs);
	nearest_positions(in->height, out_height, y0, win_height, ys);
	for (int y = 0; y < win_height; y++)
	{
		const unsigned char *row = in->data + (size_t) ys[y] * in->width * in->stride;

		for (int x = 0; x < win_width; x++)
		{
			const unsigned char *src = row + (size_t) xs[x] * in->stride;

			for (int c = 0; c < in->channels; c++)
				*out++ = src[c];
		}
	}
	free(xs);
	free(ys);
	return CM_OK;
}
