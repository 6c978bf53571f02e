/*
 * image_tiff.c
 *	  TIFF through libtiff (the library PIL decodes compressed TIFFs with):
 *	  the first image of the file, converted to 8-bit samples as PIL 9.4's
 *	  TiffImagePlugin + convert("RGB") do.
 *
 * libtiff decompresses (and undoes predictors and bit order); the samples
 * are then converted here, following PIL's table of layouts: grey (min-is-
 * black or min-is-white, 1 to 8 bits widened as v * 255 / (2^bits - 1)),
 * palette (the colour map's high bytes), RGB, CMYK (PIL's cmyk2rgb), with or
 * without alpha (associated alpha is divided out as PIL's "RGBa" unpacker
 * does), 16-bit samples reduced to their high byte (PIL does so for every
 * layout but 16-bit grey, which it clamps: see image_stb.c).  YCbCr is what
 * PIL lets libtiff convert: JPEG-compressed YCbCr through libjpeg's RGB
 * output, other YCbCr through TIFFRGBAImage.  Compressions are limited to
 * the common ones; planar (one plane per sample) and tiled files are read.
 *
 * Hostile input: the size comes from IFD0, read and checked before libtiff
 * sees the file; libtiff's single allocations are capped by what an image
 * of that size can need (TIFFOpenOptionsSetMaxSingleMemAlloc), strips and
 * tiles are decoded into our own buffers, the file is "mapped" from the
 * caller's bytes, and libtiff's messages go to a per-handle handler, never
 * to stderr.  The cancel callback is polled between strips and tiles.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tiffio.h>

#include "image.h"
#include "image_formats.h"

#define TAG_IMAGE_WIDTH 256
#define TAG_IMAGE_LENGTH 257
#define TAG_ORIENTATION 274

typedef struct tiff_session
{
	const unsigned char *bytes;
	size_t		len;
	uint64_t	pos;
	char		message[256];	/* libtiff's first error */
} tiff_session;

static tmsize_t
mem_read(thandle_t h, void *buf, tmsize_t n)
{
	tiff_session *s = (tiff_session *) h;
	uint64_t	left = s->pos < s->len ? s->len - s->pos : 0;
	size_t		k = n < 0 ? 0 : (uint64_t) n < left ? (size_t) n : (size_t) left;

	if (k)
		memcpy(buf, s->bytes + s->pos, k);
	s->pos += k;
	return (tmsize_t) k;
}

static tmsize_t
mem_write(thandle_t h, void *buf, tmsize_t n)
{
	(void) h, (void) buf, (void) n;
	return -1;
}

static toff_t
mem_seek(thandle_t h, toff_t off, int whence)
{
	tiff_session *s = (tiff_session *) h;
	uint64_t	base = whence == SEEK_CUR ? s->pos : whence == SEEK_END ? s->len : 0;

	if (off > UINT64_MAX - base)
		return (toff_t) -1;
	s->pos = base + off;
	return s->pos;
}

static int
mem_close(thandle_t h)
{
	(void) h;
	return 0;
}

static toff_t
mem_size(thandle_t h)
{
	return ((tiff_session *) h)->len;
}

static int
mem_map(thandle_t h, void **base, toff_t *size)
{
	tiff_session *s = (tiff_session *) h;

	*base = (void *) s->bytes;
	*size = s->len;
	return 1;
}

static void
mem_unmap(thandle_t h, void *base, toff_t size)
{
	(void) h, (void) base, (void) size;
}

static int	on_error(TIFF *tif, void *ud, const char *module, const char *fmt, va_list ap)
			__attribute__((format(printf, 4, 0)));

/* libtiff's handler type has no format attribute for GCC to carry over. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wsuggest-attribute=format"
#endif

static int
on_error(TIFF *tif, void *ud, const char *module, const char *fmt, va_list ap)
{
	tiff_session *s = ud;

	(void) tif, (void) module;
	if (s->message[0] == '\0')
		vsnprintf(s->message, sizeof(s->message), fmt, ap);
	return 1;
}

static int
on_warning(TIFF *tif, void *ud, const char *module, const char *fmt, va_list ap)
{
	(void) tif, (void) ud, (void) module, (void) fmt, (void) ap;
	return 1;
}

/* ------------------------------------------------------------ header */

static bool
tiff_sniff(const unsigned char *b, size_t len)
{
	return len >= 4 &&
		((b[0] == 'I' && b[1] == 'I' && (b[2] == 42 || b[2] == 43) && b[3] == 0) ||
		 (b[0] == 'M' && b[1] == 'M' && b[2] == 0 && (b[3] == 42 || b[3] == 43)));
}

static cm_status
tiff_header(const unsigned char *b, size_t len, cm_image_header *h, cm_error *err)
{
	double		w,
				hh,
				o;

	if (!cm_tiff_ifd0_number(b, len, TAG_IMAGE_WIDTH, &w) ||
		!cm_tiff_ifd0_number(b, len, TAG_IMAGE_LENGTH, &hh))
		return cm_set_error(err, CM_ERR_INPUT, "invalid TIFF image: truncated or malformed header");
	if (!cm_tiff_ifd0_complete(b, len))
		return cm_set_error(err, CM_ERR_INPUT,
							"invalid TIFF image: truncated (its first directory's data ends past the %zu bytes given)",
							len);
	if (!(w >= 0 && w <= UINT32_MAX && hh >= 0 && hh <= UINT32_MAX))
		return cm_set_error(err, CM_ERR_INPUT, "invalid TIFF image: size out of range");
	h->width = (uint32_t) w;
	h->height = (uint32_t) hh;
	if (cm_tiff_ifd0_number(b, len, TAG_ORIENTATION, &o) && o >= 1 && o <= 8 && o == (int) o)
		h->orientation = (int) o;
	return CM_OK;
}

/* ------------------------------------------------------------ decode */

/* How the samples of a pixel become colour and alpha. */
typedef enum tiff_kind
{
	KIND_GREY,
	KIND_PALETTE,
	KIND_RGB,
	KIND_CMYK
} tiff_kind;

typedef struct tiff_layout
{
	uint32_t	w,
				h;
	uint16_t	spp,
				bps,
				photometric,
				planar,
				compression;
	tiff_kind	kind;
	int			base;			/* colour samples: 1, 3 or 4 (CMYK) */
	int			alpha;			/* 0 none, 1 associated, 2 unassociated */
	bool		min_is_white;
	uint16_t   *map[3];			/* palette colour map (libtiff's) */
} tiff_layout;

/* Read what the layout needs from libtiff and check that it is supported. */
static cm_status
tiff_layout_read(TIFF *tif, const cm_image_header *hdr, tiff_layout *l, bool *as_rgba,
				 cm_error *err)
{
	uint16_t	sampleformat = SAMPLEFORMAT_UINT,
				inkset = INKSET_CMYK,
				n_extra = 0,
			   *extra = NULL;

	memset(l, 0, sizeof(*l));
	*as_rgba = false;
	if (!TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &l->w) ||
		!TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &l->h) ||
		l->w != hdr->width || l->h != hdr->height)
		return cm_set_error(err, CM_ERR_INPUT, "invalid TIFF image: inconsistent size");
	TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &l->spp);
	TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &l->bps);
	TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &l->planar);
	TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &l->compression);
	TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &sampleformat);
	TIFFGetFieldDefaulted(tif, TIFFTAG_INKSET, &inkset);
	TIFFGetFieldDefaulted(tif, TIFFTAG_EXTRASAMPLES, &n_extra, &extra);
	if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &l->photometric))
		return cm_set_error(err, CM_ERR_INPUT, "invalid TIFF image: no PhotometricInterpretation");

	switch (l->compression)
	{
		case COMPRESSION_NONE:
		case COMPRESSION_CCITTRLE:
		case COMPRESSION_CCITTFAX3:
		case COMPRESSION_CCITTFAX4:
		case COMPRESSION_LZW:
		case COMPRESSION_JPEG:
		case COMPRESSION_ADOBE_DEFLATE:
		case COMPRESSION_DEFLATE:
		case COMPRESSION_PACKBITS:
		case COMPRESSION_LZMA:
		case COMPRESSION_ZSTD:
		case COMPRESSION_WEBP:
			if (TIFFIsCODECConfigured(l->compression))
				break;
			/* fall through */
		default:
			return cm_set_error(err, CM_ERR_UNSUPPORTED,
								"TIFF compression %u is not supported (supported: none, LZW, Deflate, PackBits, JPEG, CCITT, LZMA, Zstandard, WebP)",
								l->compression);
	}
	if (sampleformat != SAMPLEFORMAT_UINT)
		return cm_set_error(err, CM_ERR_UNSUPPORTED,
							"TIFF images with signed or floating-point samples are not supported");
	if (l->bps != 1 && l->bps != 2 && l->bps != 4 && l->bps != 8 && l->bps != 16)
		return cm_set_error(err, CM_ERR_UNSUPPORTED, "TIFF images of %u bits per sample are not supported",
							l->bps);

	if (l->photometric == PHOTOMETRIC_YCBCR)
	{
		/* As PIL: libjpeg makes RGB of JPEG YCbCr, TIFFRGBAImage of the rest. */
		if (l->compression == COMPRESSION_JPEG && l->planar == PLANARCONFIG_CONTIG)
		{
			TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
			l->photometric = PHOTOMETRIC_RGB;
		}
		else
		{
			*as_rgba = true;
			return CM_OK;
		}
	}
	switch (l->photometric)
	{
		case PHOTOMETRIC_MINISWHITE:
		case PHOTOMETRIC_MINISBLACK:
			l->kind = KIND_GREY;
			l->base = 1;
			l->min_is_white = l->photometric == PHOTOMETRIC_MINISWHITE;
			break;
		case PHOTOMETRIC_PALETTE:
			l->kind = KIND_PALETTE;
			l->base = 1;
			if (l->bps > 8 || l->spp != 1 ||
				!TIFFGetField(tif, TIFFTAG_COLORMAP, &l->map[0], &l->map[1], &l->map[2]))
				return cm_set_error(err, CM_ERR_UNSUPPORTED,
									"TIFF palette images need one sample of at most 8 bits and a colour map");
			break;
		case PHOTOMETRIC_RGB:
			l->kind = KIND_RGB;
			l->base = 3;
			if (l->bps < 8)
				return cm_set_error(err, CM_ERR_UNSUPPORTED,
									"TIFF RGB images of %u bits per sample are not supported", l->bps);
			break;
		case PHOTOMETRIC_SEPARATED:
			l->kind = KIND_CMYK;
			l->base = 4;
			if (l->bps != 8 || inkset != INKSET_CMYK)
				return cm_set_error(err, CM_ERR_UNSUPPORTED,
									"TIFF separated images other than 8-bit CMYK are not supported");
			break;
		default:
			return cm_set_error(err, CM_ERR_UNSUPPORTED,
								"TIFF photometric interpretation %u is not supported", l->photometric);
	}
	if (l->spp < l->base || l->spp > l->base + 3)
		return cm_set_error(err, CM_ERR_UNSUPPORTED, "TIFF image with %u samples per pixel is not supported",
							l->spp);
	if (l->spp > l->base && l->kind != KIND_CMYK)
	{
		/* the first extra sample is alpha unless declared "unspecified" */
		if (n_extra == 0 || extra == NULL)
			l->alpha = 2;
		else
			l->alpha = extra[0] == EXTRASAMPLE_ASSOCALPHA ? 1 :
				extra[0] == EXTRASAMPLE_UNASSALPHA ? 2 : 0;
	}
	if (l->planar != PLANARCONFIG_CONTIG && l->planar != PLANARCONFIG_SEPARATE)
		return cm_set_error(err, CM_ERR_INPUT, "invalid TIFF image: PlanarConfiguration %u", l->planar);
	return CM_OK;
}

/* Sample i of a row of bps-bit samples (libtiff gives 16-bit ones in host order). */
static inline unsigned
sample_at(const unsigned char *row, uint64_t i, int bps)
{
	switch (bps)
	{
		case 8:
			return row[i];
		case 16:
			{
				uint16_t	v;

				memcpy(&v, row + 2 * i, 2);
				return v;
			}
		default:
			{
				uint64_t	bit = i * (uint64_t) bps;

				return (row[bit / 8] >> (8 - bps - bit % 8)) & ((1u << bps) - 1);
			}
	}
}

/* A non-index sample as 8 bits: high byte of 16, v * 255 / max below 8. */
static inline unsigned
to8(unsigned v, int bps)
{
	return bps == 16 ? v >> 8 : bps == 8 ? v : v * 255 / ((1u << bps) - 1);
}

typedef struct tiff_raw
{
	unsigned char *data;		/* [planes][h][plane_row] */
	size_t		plane_row;		/* bytes per row of one plane */
	int			planes;
} tiff_raw;

static cm_status
tiff_read_raw(TIFF *tif, const tiff_layout *l, const cm_decode_request *req, size_t cap,
			  tiff_session *sess, tiff_raw *raw, cm_error *err)
{
	uint64_t	samples_per_row = (uint64_t) l->w * (l->planar == PLANARCONFIG_SEPARATE ? 1 : l->spp);
	size_t		plane_bytes,
				total;
	bool		tiled = TIFFIsTiled(tif);
	uint32_t	n = tiled ? TIFFNumberOfTiles(tif) : TIFFNumberOfStrips(tif);
	unsigned char *tile = NULL;
	uint32_t	tw = 0,
				th = 0,
				rps = 0,
				across = 1,
				down = 1,
				per_plane;

	raw->planes = l->planar == PLANARCONFIG_SEPARATE ? l->spp : 1;
	raw->plane_row = (size_t) ((samples_per_row * l->bps + 7) / 8);
	if (!cm_mul_size(raw->plane_row, l->h, &plane_bytes) ||
		!cm_mul_size(plane_bytes, (size_t) raw->planes, &total))
		return cm_set_error(err, CM_ERR_NOMEM, "TIFF image too large for this machine's address space");
	raw->data = malloc(total ? total : 1);
	if (raw->data == NULL)
		return cm_set_error(err, CM_ERR_NOMEM, "out of memory for a %ux%u TIFF image", l->w, l->h);

	if (tiled)
	{
		uint64_t	tile_bytes;

		TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw);
		TIFFGetField(tif, TIFFTAG_TILELENGTH, &th);
		tile_bytes = TIFFTileSize64(tif);
		if (tw == 0 || th == 0 || tile_bytes == 0 || tile_bytes > cap)
			return cm_set_error(err, CM_ERR_INPUT, "invalid TIFF image: tiles of %ux%u", tw, th);
		tile = malloc((size_t) tile_bytes);
		if (tile == NULL)
			return cm_set_error(err, CM_ERR_NOMEM, "out of memory for a TIFF tile");
		across = l->w / tw + (l->w % tw != 0);
		down = l->h / th + (l->h % th != 0);
		per_plane = across * down;
	}
	else
	{
		TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rps);
		if (rps == 0 || rps > l->h)
			rps = l->h;
		per_plane = l->h / rps + (l->h % rps != 0);
	}
	if ((uint64_t) per_plane * raw->planes != n)
	{
		free(tile);
		return cm_set_error(err, CM_ERR_INPUT, "invalid TIFF image: %u %s for a %ux%u image",
							n, tiled ? "tiles" : "strips", l->w, l->h);
	}

	for (uint32_t i = 0; i < n; i++)
	{
		int			plane = (int) (i / per_plane);
		uint32_t	k = i % per_plane;
		unsigned char *base = raw->data + (size_t) plane * plane_bytes;

		if (req->cancel != NULL && req->cancel(req->cancel_ctx))
		{
			free(tile);
			return cm_set_error(err, CM_ERR_CANCELLED, "cancelled while decoding a TIFF image");
		}
		if (!tiled)
		{
			uint32_t	row0 = k * rps,
						rows = l->h - row0 < rps ? l->h - row0 : rps;
			tmsize_t	want = (tmsize_t) ((size_t) rows * raw->plane_row);

			if (TIFFReadEncodedStrip(tif, i, base + (size_t) row0 * raw->plane_row, want) != want)
				return cm_set_error(err, CM_ERR_INPUT, "invalid TIFF image: strip %u: %s", i,
									sess->message[0] ? sess->message : "truncated");
		}
		else
		{
			uint32_t	x0 = (k % across) * tw,
						y0 = (k / across) * th;
			size_t		tile_row = (size_t) (((uint64_t) tw * (raw->planes > 1 ? 1 : l->spp) * l->bps + 7) / 8);
			size_t		at = (size_t) (((uint64_t) x0 * (raw->planes > 1 ? 1 : l->spp) * l->bps) / 8);
			size_t		cols = l->w - x0 < tw ? l->w - x0 : tw;
			size_t		copy = (size_t) (((uint64_t) cols * (raw->planes > 1 ? 1 : l->spp) * l->bps + 7) / 8);

			if (TIFFReadEncodedTile(tif, i, tile, (tmsize_t) -1) < 0)
			{
				free(tile);
				return cm_set_error(err, CM_ERR_INPUT, "invalid TIFF image: tile %u: %s", i,
									sess->message[0] ? sess->message : "truncated");
			}
			for (uint32_t r = 0; r < th && y0 + r < l->h; r++)
				memcpy(base + (size_t) (y0 + r) * raw->plane_row + at, tile + (size_t) r * tile_row, copy);
		}
	}
	free(tile);
	return CM_OK;
}

/* PIL's cmyk2rgb for plain (not inverted) CMYK samples. */
static void
cmyk_to_rgb(const unsigned s[4], unsigned char *out)
{
	int			nk = 255 - (int) s[3];

	for (int c = 0; c < 3; c++)
	{
		int			t = (int) s[c] * nk + 128;
		int			v = nk - (((t >> 8) + t) >> 8);

		out[c] = (unsigned char) (v < 0 ? 0 : v > 255 ? 255 : v);
	}
}

static void
tiff_convert(const tiff_layout *l, const tiff_raw *raw, cm_decoded_image *out)
{
	int			k = out->stride;
	size_t		plane_bytes = raw->plane_row * l->h;

	for (uint32_t y = 0; y < l->h; y++)
	{
		unsigned char *dst = out->pixels + (size_t) y * l->w * k;

		for (uint32_t x = 0; x < l->w; x++, dst += k)
		{
			unsigned	s[8];
			int			n = l->spp;

			for (int c = 0; c < n && c < 8; c++)
			{
				const unsigned char *row;
				uint64_t	i;

				if (raw->planes > 1)
					row = raw->data + (size_t) c * plane_bytes + (size_t) y * raw->plane_row, i = x;
				else
					row = raw->data + (size_t) y * raw->plane_row, i = (uint64_t) x * n + c;
				s[c] = sample_at(row, i, l->bps);
			}
			switch (l->kind)
			{
				case KIND_GREY:
					dst[0] = (unsigned char) to8(s[0], l->bps);
					if (l->min_is_white)
						dst[0] = (unsigned char) (255 - dst[0]);
					break;
				case KIND_PALETTE:
					for (int c = 0; c < 3; c++)
						dst[c] = (unsigned char) (l->map[c][s[0]] >> 8);
					break;
				case KIND_RGB:
					for (int c = 0; c < 3; c++)
						dst[c] = (unsigned char) to8(s[c], l->bps);
					break;
				case KIND_CMYK:
					cmyk_to_rgb(s, dst);
					break;
			}
			if (l->alpha)
			{
				unsigned	a = to8(s[l->base], l->bps);

				dst[out->colours] = (unsigned char) a;
				if (l->alpha == 1 && a != 255)
				{
					/* PIL's "RGBa" unpacker: divide the premultiplied colour out */
					for (int c = 0; c < out->colours; c++)
					{
						unsigned	v = a == 0 ? 0 : dst[c] * 255 / a;

						dst[c] = (unsigned char) (v > 255 ? 255 : v);
					}
				}
			}
		}
	}
}

/* YCbCr that is not JPEG-compressed: libtiff's RGBA conversion, as PIL. */
static cm_status
tiff_decode_rgba(TIFF *tif, const cm_image_header *hdr, tiff_session *sess,
				 cm_decoded_image *out, cm_error *err)
{
	TIFFRGBAImage img;
	char		emsg[1024] = "";
	uint32_t   *raster;
	size_t		n = (size_t) hdr->width * hdr->height;
	int			ok;

	if (!TIFFRGBAImageOK(tif, emsg) || !TIFFRGBAImageBegin(&img, tif, 0, emsg))
		return cm_set_error(err, CM_ERR_UNSUPPORTED, "TIFF YCbCr image not supported: %s", emsg);
	img.req_orientation = ORIENTATION_TOPLEFT;
	raster = (uint32_t *) cm_alloc_pixels(hdr->width, hdr->height, 4);
	if (raster == NULL)
	{
		TIFFRGBAImageEnd(&img);
		return cm_set_error(err, CM_ERR_NOMEM, "out of memory for a %ux%u TIFF image",
							hdr->width, hdr->height);
	}
	ok = img.width == hdr->width && img.height == hdr->height &&
		TIFFRGBAImageGet(&img, raster, hdr->width, hdr->height);
	TIFFRGBAImageEnd(&img);
	if (!ok)
	{
		free(raster);
		return cm_set_error(err, CM_ERR_INPUT, "invalid TIFF image: %s",
							sess->message[0] ? sess->message : "undecodable YCbCr data");
	}
	out->pixels = (unsigned char *) raster;
	for (size_t i = 0; i < n; i++)
	{
		uint32_t	p = raster[i];

		out->pixels[3 * i] = (unsigned char) TIFFGetR(p);
		out->pixels[3 * i + 1] = (unsigned char) TIFFGetG(p);
		out->pixels[3 * i + 2] = (unsigned char) TIFFGetB(p);
	}
	out->width = (int) hdr->width;
	out->height = (int) hdr->height;
	out->stride = 3;
	out->colours = 3;
	return CM_OK;
}

static cm_status
tiff_decode(const cm_decode_request *req, cm_decoded_image *out, cm_error *err)
{
	const cm_image_header *hdr = &req->header;
	tiff_session sess;
	TIFFOpenOptions *opts;
	TIFF	   *tif;
	tiff_layout l;
	tiff_raw	raw = {NULL, 0, 0};
	bool		as_rgba;
	size_t		cap;
	cm_status	s;

	/*
	 * libtiff's largest single allocation: what one plane of 16-bit
	 * samples of the image can take, plus room for its directory.
	 */
	if (!cm_mul_size((size_t) hdr->width + 64, (size_t) hdr->height + 64, &cap) ||
		!cm_mul_size(cap, 16, &cap) || !cm_add_size(cap, (size_t) 16 << 20, &cap))
		cap = SIZE_MAX;

	memset(&sess, 0, sizeof(sess));
	sess.bytes = req->bytes;
	sess.len = req->len;
	if ((opts = TIFFOpenOptionsAlloc()) == NULL)
		return cm_set_error(err, CM_ERR_NOMEM, "out of memory opening a TIFF image");
	TIFFOpenOptionsSetMaxSingleMemAlloc(opts, (tmsize_t) (cap > (size_t) INT64_MAX ? INT64_MAX : cap));
	TIFFOpenOptionsSetErrorHandlerExtR(opts, on_error, &sess);
	TIFFOpenOptionsSetWarningHandlerExtR(opts, on_warning, &sess);
	tif = TIFFClientOpenExt("image", "r", (thandle_t) &sess, mem_read, mem_write, mem_seek,
							mem_close, mem_size, mem_map, mem_unmap, opts);
	TIFFOpenOptionsFree(opts);
	if (tif == NULL)
		return cm_set_error(err, CM_ERR_INPUT, "invalid TIFF image: %s",
							sess.message[0] ? sess.message : "cannot read its first directory");

	s = tiff_layout_read(tif, hdr, &l, &as_rgba, err);
	if (s == CM_OK && as_rgba)
		s = tiff_decode_rgba(tif, hdr, &sess, out, err);
	else if (s == CM_OK)
	{
		s = tiff_read_raw(tif, &l, req, cap, &sess, &raw, err);
		if (s == CM_OK)
		{
			out->colours = l.kind == KIND_GREY ? 1 : 3;
			out->stride = out->colours + (l.alpha ? 1 : 0);
			/* PIL's mode: P, 1 (bilevel), LA / RGBA (either kind of alpha) */
			out->mode = l.kind == KIND_PALETTE || (l.kind == KIND_GREY && l.bps == 1) ? CM_MODE_PALETTE
				: l.alpha ? CM_MODE_ALPHA : CM_MODE_DIRECT;
			out->pixels = cm_alloc_pixels(l.w, l.h, out->stride);
			if (out->pixels == NULL)
				s = cm_set_error(err, CM_ERR_NOMEM, "out of memory for a %ux%u TIFF image", l.w, l.h);
			else
			{
				tiff_convert(&l, &raw, out);
				out->width = (int) l.w;
				out->height = (int) l.h;
			}
		}
		free(raw.data);
	}
	TIFFClose(tif);
	return s;
}

const cm_image_codec cm_codec_tiff = {
	CM_IMAGE_TIFF, "TIFF", tiff_sniff, tiff_header, tiff_decode
};
