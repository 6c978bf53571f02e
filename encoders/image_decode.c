/*
 * image_decode.c
 *	  Identify an image's format, check its declared size against the limits,
 *	  decode it with the format's codec (at a reduced scale when the caller's
 *	  target allows), then composite alpha and apply the EXIF orientation.
 *
 * The result is what transformers' load_image gives a CLIPImageProcessor:
 * PIL.ImageOps.exif_transpose(Image.open(f)), whose convert("RGB") the caller
 * performs by reading the first `colours` samples of each pixel.
 */
#include "image_decode.h"

#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "image_formats.h"

/*
 * A reduced-scale decode keeps at least this many decoded pixels per pixel
 * of the resize target on each axis, so that the antialiased resize still
 * averages over two source pixels or more and the embedding barely moves
 * (bench/images/README.md has the measurements behind the figure).
 */
#define REDUCE_GAP 2

static const cm_image_codec *const codecs[] = {
	&cm_codec_png, &cm_codec_jpeg, &cm_codec_gif, &cm_codec_bmp,
	&cm_codec_webp, &cm_codec_tiff,
	&cm_codec_tga,				/* no signature: tried last */
};

#define N_CODECS (sizeof(codecs) / sizeof(codecs[0]))

const char *
cm_image_format_name(cm_image_format format)
{
	for (size_t i = 0; i < N_CODECS; i++)
		if (codecs[i]->format == format)
			return codecs[i]->name;
	return "image";
}

unsigned char *
cm_alloc_pixels(uint32_t w, uint32_t h, int samples)
{
	size_t		n;

	if (!cm_mul_size(w, h, &n) || !cm_mul_size(n, (size_t) samples, &n))
		return NULL;
	return malloc(n ? n : 1);
}

static bool
swaps_axes(int orientation)
{
	return orientation >= 5 && orientation <= 8;
}

/*
 * AVIF and HEIC (ISO base media files whose brands say so), recognised only
 * to say why they are not read.
 */
static bool
is_heif(const unsigned char *b, size_t len)
{
	static const char *const brands[] = {"avif", "avis", "heic", "heix", "heim", "heis",
	"hevc", "hevx", "hevm", "hevs", "mif1", "msf1"};
	size_t		box;

	if (len < 16 || memcmp(b + 4, "ftyp", 4) != 0)
		return false;
	box = cm_be32(b);
	if (box < 16 || box > len)
		box = len;
	for (size_t at = 8; at + 4 <= box; at += 4)
	{
		if (at == 12)
			continue;			/* minor version */
		for (size_t i = 0; i < sizeof(brands) / sizeof(brands[0]); i++)
			if (memcmp(b + at, brands[i], 4) == 0)
				return true;
	}
	return false;
}

/* Find the codec and read its header; the limits are checked here. */
static cm_status
probe(const unsigned char *bytes, size_t len, const cm_decode_options *opt,
	  const cm_image_codec **codec_out, cm_image_header *h, cm_error *err)
{
	const cm_image_codec *codec = NULL;
	uint64_t	pixels;
	cm_status	s;

	if (bytes == NULL || len == 0)
		return cm_set_error(err, CM_ERR_INPUT, "invalid image: no bytes");
	if (is_heif(bytes, len))
		return cm_set_error(err, CM_ERR_UNSUPPORTED,
							"AVIF and HEIC images are not supported (convert the image to JPEG, PNG or WebP)");
	for (size_t i = 0; i < N_CODECS && codec == NULL; i++)
		if (codecs[i]->sniff(bytes, len))
			codec = codecs[i];
	if (codec == NULL)
		return cm_set_error(err, CM_ERR_INPUT,
							"invalid image: unrecognised format (expected PNG, JPEG, GIF, BMP, TGA, WebP or TIFF)");
	if (len > (size_t) INT32_MAX)
	{
		cm_set_error(err, CM_ERR_LIMIT, "image of %zu bytes exceeds the decoder's 2 GiB input limit", len);
		cm_error_set_limit(err, CM_LIMIT_OTHER);
		return CM_ERR_LIMIT;
	}

	memset(h, 0, sizeof(*h));
	h->orientation = 1;
	h->max_reduce = 1;
	s = codec->header(bytes, len, h, err);
	if (s != CM_OK)
		return s;
	if (h->width == 0 || h->height == 0)
		return cm_set_error(err, CM_ERR_INPUT, "invalid %s image: size %ux%u",
							codec->name, h->width, h->height);
	if (h->width > CM_IMAGE_MAX_SIDE || h->height > CM_IMAGE_MAX_SIDE)
	{
		cm_set_error(err, CM_ERR_LIMIT, "image of %ux%u pixels exceeds the limit of %d pixels per side",
					 h->width, h->height, CM_IMAGE_MAX_SIDE);
		cm_error_set_limit(err, CM_LIMIT_IMAGE_SIDE);
		return CM_ERR_LIMIT;
	}
	pixels = (uint64_t) h->width * h->height;
	if (opt->max_pixels != 0 && pixels > opt->max_pixels)
	{
		cm_set_error(err, CM_ERR_LIMIT, "image of %ux%u = %llu pixels exceeds the limit of %llu pixels",
					 h->width, h->height, (unsigned long long) pixels,
					 (unsigned long long) opt->max_pixels);
		cm_error_set_limit(err, CM_LIMIT_IMAGE_PIXELS);
		return CM_ERR_LIMIT;
	}
	if (h->orientation < 1 || h->orientation > 8 || opt->ignore_orientation)
		h->orientation = 1;
	*codec_out = codec;
	return CM_OK;
}

cm_status
cm_image_probe(const unsigned char *bytes, size_t len, const cm_decode_options *opt,
			   cm_image_info *info, cm_error *err)
{
	const cm_image_codec *codec;
	cm_image_header h;
	cm_status	s;

	memset(info, 0, sizeof(*info));
	s = probe(bytes, len, opt, &codec, &h, err);
	if (s != CM_OK)
		return s;
	info->format = codec->format;
	info->orientation = h.orientation;
	info->width = (int) (swaps_axes(h.orientation) ? h.height : h.width);
	info->height = (int) (swaps_axes(h.orientation) ? h.width : h.height);
	return CM_OK;
}

static uint32_t
ceil_div(uint32_t a, uint32_t b)
{
	return a / b + (a % b != 0);
}

/*
 * The largest reduction the image's codec offers that keeps REDUCE_GAP decoded
 * pixels per target pixel on both axes (stored axes: the target is given
 * after orientation).
 */
static int
choose_reduce(const cm_image_header *h, const cm_decode_options *opt)
{
	double		gap = opt->reduce_gap > 0 ? opt->reduce_gap : REDUCE_GAP,
				tw,
				th;
	int			r = 1;

	if (opt->exact || h->max_reduce <= 1 ||
		opt->target_width <= 0 || opt->target_height <= 0)
		return 1;
	tw = swaps_axes(h->orientation) ? opt->target_height : opt->target_width;
	th = swaps_axes(h->orientation) ? opt->target_width : opt->target_height;
	while (r * 2 <= h->max_reduce &&
		   ceil_div(h->width, (uint32_t) r * 2) >= gap * tw &&
		   ceil_div(h->height, (uint32_t) r * 2) >= gap * th)
		r *= 2;
	return r;
}

/*
 * Composite onto an opaque background, as PIL's
 * Image.new(mode, size, colour).paste(im, mask=alpha) does: each sample
 * becomes round((c * a + bg * (255 - a)) / 255).  In place: the samples of
 * pixel i move to i * colours, never past where they were read.
 */
static void
composite(cm_decoded_image *img, cm_image_background background)
{
	unsigned	bg = background == CM_BACKGROUND_WHITE ? 255 : 0;
	size_t		n = (size_t) img->width * img->height;
	unsigned char *p = img->pixels;

	for (size_t i = 0; i < n; i++)
	{
		const unsigned char *src = p + i * img->stride;
		unsigned	a = src[img->colours];
		unsigned char *dst = p + i * img->colours;

		for (int c = 0; c < img->colours; c++)
		{
			unsigned	t = src[c] * a + bg * (255 - a) + 128;

			dst[c] = (unsigned char) ((t + (t >> 8)) >> 8);
		}
	}
	img->stride = img->colours;
}

/*
 * Apply an EXIF orientation (2..8) as PIL's Image.transpose does for
 * exif_transpose: output pixel (x, y) of the upright image is stored pixel
 * (sx, sy) below.
 */
static cm_status
orient(cm_decoded_image *img, int orientation, cm_error *err)
{
	int			w = img->width,
				h = img->height,
				ow = swaps_axes(orientation) ? h : w,
				oh = swaps_axes(orientation) ? w : h,
				k = img->stride;
	unsigned char *dst = cm_alloc_pixels((uint32_t) ow, (uint32_t) oh, k);
	const unsigned char *src = img->pixels;

	if (dst == NULL)
		return cm_set_error(err, CM_ERR_NOMEM, "out of memory turning a %dx%d image upright", w, h);
	for (int y = 0; y < oh; y++)
	{
		unsigned char *row = dst + (size_t) y * ow * k;

		for (int x = 0; x < ow; x++)
		{
			int			sx,
						sy;

			switch (orientation)
			{
				case 2:			/* mirrored left to right */
					sx = w - 1 - x, sy = y;
					break;
				case 3:			/* rotated 180 */
					sx = w - 1 - x, sy = h - 1 - y;
					break;
				case 4:			/* mirrored top to bottom */
					sx = x, sy = h - 1 - y;
					break;
				case 5:			/* transposed */
					sx = y, sy = x;
					break;
				case 6:			/* stored turned 90 anticlockwise */
					sx = y, sy = h - 1 - x;
					break;
				case 7:			/* transversed */
					sx = w - 1 - y, sy = h - 1 - x;
					break;
				default:		/* 8: stored turned 90 clockwise */
					sx = w - 1 - y, sy = x;
					break;
			}
			memcpy(row + (size_t) x * k, src + ((size_t) sy * w + sx) * k, (size_t) k);
		}
	}
	free(img->pixels);
	img->pixels = dst;
	img->width = ow;
	img->height = oh;
	return CM_OK;
}

cm_status
cm_image_decode(const unsigned char *bytes, size_t len, const cm_decode_options *opt,
				cm_decoded_image *out, cm_error *err)
{
	const cm_image_codec *codec;
	cm_image_header h;
	cm_decode_request req;
	cm_decoded_image img;
	cm_status	s;
	int			reduce;
	bool		stored_extent_set;
	double		stored_extent_w,
				stored_extent_h;

	memset(out, 0, sizeof(*out));
	s = probe(bytes, len, opt, &codec, &h, err);
	if (s != CM_OK)
		return s;
	reduce = choose_reduce(&h, opt);

	memset(&img, 0, sizeof(img));
	req.bytes = bytes;
	req.len = len;
	req.header = h;
	req.reduce = reduce;
	req.cancel = opt->cancel;
	req.cancel_ctx = opt->cancel_ctx;
	s = codec->decode(&req, &img, err);
	if (s != CM_OK)
	{
		free(img.pixels);
		return s;
	}
	if (img.pixels == NULL || img.width != (int) ceil_div(h.width, (uint32_t) reduce) ||
		img.height != (int) ceil_div(h.height, (uint32_t) reduce) ||
		(img.colours != 1 && img.colours != 3) ||
		(img.stride != img.colours && img.stride != img.colours + 1))
	{
		s = cm_set_error(err, CM_ERR_INPUT,
						 "invalid %s image: header says %ux%u but the data decodes to %dx%d",
						 codec->name, h.width, h.height, img.width, img.height);
		free(img.pixels);
		return s;
	}
	img.format = codec->format;
	/* a codec that rescales reports the extent it filled (stored layout) */
	stored_extent_set = img.extent_width > 0 && img.extent_height > 0;
	stored_extent_w = img.extent_width;
	stored_extent_h = img.extent_height;

	if (opt->background != CM_BACKGROUND_NONE && img.stride > img.colours)
		composite(&img, opt->background);
	if (h.orientation != 1 && (s = orient(&img, h.orientation, err)) != CM_OK)
	{
		free(img.pixels);
		return s;
	}
	img.full_width = (int) (swaps_axes(h.orientation) ? h.height : h.width);
	img.full_height = (int) (swaps_axes(h.orientation) ? h.width : h.height);
	img.reduce = reduce;
	if (!stored_extent_set)
	{
		stored_extent_w = (double) h.width / reduce;
		stored_extent_h = (double) h.height / reduce;
	}
	img.extent_width = swaps_axes(h.orientation) ? stored_extent_h : stored_extent_w;
	img.extent_height = swaps_axes(h.orientation) ? stored_extent_w : stored_extent_h;
	/* alpha composited onto a background, or never there: nothing to premultiply */
	if (img.mode == CM_MODE_ALPHA && img.stride == img.colours)
		img.mode = CM_MODE_DIRECT;
	*out = img;
	return CM_OK;
}

void
cm_decoded_image_free(cm_decoded_image *img)
{
	if (img == NULL)
		return;
	free(img->pixels);
	img->pixels = NULL;
}
