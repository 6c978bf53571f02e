/*
 * image_decode.c
 *	  Decode image bytes with stb_image, refusing oversized images before any
 *	  pixel allocation and capping every allocation the decoder makes.
 *
 * stb_image is compiled here, privately (STB_IMAGE_STATIC), with only the four
 * formats we accept.  Its global switches (vertical flip, unpremultiply,
 * iPhone PNG conversion) are never set, so they keep their defaults; its
 * failure reason is thread-local (C11 _Thread_local, stb's default), read
 * right after the failing call on the same thread.
 */
#include "image_decode.h"

#include <stdlib.h>
#include <string.h>

#include "image.h"

/*
 * Allocation guard.  stb_image's allocation macros take no context, so the
 * cap for the current call reaches them through a thread-local pointer that
 * is set only for the duration of one decode on that thread.  It is needed
 * because a PNG's zlib stream may inflate far beyond the size its header
 * declares, and a chunk length may claim gigabytes that are not there: stb
 * would allocate for them before noticing.
 */
typedef struct stb_alloc_guard
{
	size_t		cap;			/* largest single allocation allowed */
	bool		refused;		/* set when a request exceeded cap */
} stb_alloc_guard;

static _Thread_local stb_alloc_guard *current_guard;

static void *
guarded_malloc(size_t n)
{
	stb_alloc_guard *guard = current_guard;

	if (guard == NULL || n > guard->cap)
	{
		if (guard)
			guard->refused = true;
		return NULL;
	}
	return malloc(n ? n : 1);
}

static void *
guarded_realloc(void *p, size_t n)
{
	stb_alloc_guard *guard = current_guard;

	if (guard == NULL || n > guard->cap)
	{
		if (guard)
			guard->refused = true;
		return NULL;
	}
	return realloc(p, n ? n : 1);
}

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_GIF
#define STBI_ONLY_BMP
#define STBI_MAX_DIMENSIONS CM_IMAGE_MAX_SIDE
#define STBI_MALLOC(sz) guarded_malloc(sz)
#define STBI_REALLOC(p, newsz) guarded_realloc(p, newsz)
#define STBI_FREE(p) free(p)

/*
 * Third-party code: keep our strict warnings for our own code only.  GCC
 * reports stb's declared-but-unused static API at the end of the file, so
 * that one warning stays off for the whole file.
 */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wdeclaration-after-statement"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wtype-limits"
#pragma GCC diagnostic ignored "-Wcast-function-type"
#pragma GCC diagnostic ignored "-Wpointer-arith"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#ifndef __clang__
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

/* Slack for the decoder's fixed-size tables and per-row scratch. */
#define DECODER_ALLOC_SLACK ((size_t) 1 << 20)

static const char *
format_name(cm_image_format format)
{
	switch (format)
	{
		case CM_IMAGE_PNG:
			return "PNG";
		case CM_IMAGE_JPEG:
			return "JPEG";
		case CM_IMAGE_GIF:
			return "GIF";
		case CM_IMAGE_BMP:
			return "BMP";
	}
	return "image";
}

/* Recognise the format by its signature; false for anything else. */
static bool
sniff_format(const unsigned char *b, size_t len, cm_image_format *format)
{
	static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

	if (len >= 8 && memcmp(b, png_sig, 8) == 0)
		*format = CM_IMAGE_PNG;
	else if (len >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF)
		*format = CM_IMAGE_JPEG;
	else if (len >= 6 && (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0))
		*format = CM_IMAGE_GIF;
	else if (len >= 2 && b[0] == 'B' && b[1] == 'M')
		*format = CM_IMAGE_BMP;
	else
		return false;
	return true;
}

static uint32_t
read_le16(const unsigned char *p)
{
	return (uint32_t) p[0] | (uint32_t) p[1] << 8;
}

static uint32_t
read_le32(const unsigned char *p)
{
	return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

/*
 * Walk a JPEG's marker segments up to its first scan: the frame's component
 * count (0 when no frame header came first) and the offset where the
 * entropy-coded data starts.  False when the segments run past the end.
 */
static bool
jpeg_scan_frame(const unsigned char *b, size_t len, int *components,
				uint32_t *width, uint32_t *height, size_t *scan_start)
{
	size_t		i = 2;

	*components = 0;
	*width = *height = 0;
	while (i + 4 <= len)
	{
		unsigned	marker;
		size_t		seglen;

		if (b[i] != 0xFF)
			return false;
		marker = b[i + 1];
		if (marker == 0xFF)
		{
			i++;				/* fill byte */
			continue;
		}
		if (marker == 0x01 || marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7))
		{
			i += 2;				/* markers without a length */
			continue;
		}
		seglen = (size_t) b[i + 2] << 8 | b[i + 3];
		if (seglen < 2 || i + 2 + seglen > len)
			return false;
		/* SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC) */
		if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 &&
			marker != 0xC8 && marker != 0xCC && seglen >= 8)
		{
			*height = (uint32_t) b[i + 5] << 8 | b[i + 6];
			*width = (uint32_t) b[i + 7] << 8 | b[i + 8];
			*components = b[i + 9];
		}
		if (marker == 0xDA)
		{
			*scan_start = i + 2 + seglen;
			return true;
		}
		i += 2 + seglen;
	}
	return false;
}

/*
 * JPEG checks stb_image does not make: a CMYK / YCCK frame would be converted
 * with different arithmetic than PIL's, and stb fills a truncated scan with
 * zeros instead of failing, so the end-of-image marker must be present after
 * the first scan (entropy-coded data never contains FF D9).
 */
static cm_status
check_jpeg(const unsigned char *b, size_t len, cm_error *err)
{
	int			components;
	uint32_t	w,
				h;
	size_t		scan_start;
	size_t		i;

	if (!jpeg_scan_frame(b, len, &components, &w, &h, &scan_start))
		return CM_OK;			/* malformed: stb reports why */
	if (components == 4)
		return cm_set_error(err, CM_ERR_UNSUPPORTED,
							"CMYK JPEG images are not supported (convert the image to RGB)");
	for (i = scan_start; i + 1 < len; i++)
		if (b[i] == 0xFF && b[i + 1] == 0xD9)
			return CM_OK;
	return cm_set_error(err, CM_ERR_INPUT,
						"invalid JPEG image: truncated (no end-of-image marker after the scan data)");
}

/*
 * stb's BMP reader returns zeros past the end of the data instead of failing;
 * refuse an uncompressed BMP whose pixel rows end beyond the bytes given.
 */
static cm_status
check_bmp(const unsigned char *b, size_t len, cm_error *err)
{
	uint64_t	offset,
				width,
				height,
				bpp,
				compression = 0,
				row_bytes,
				end;
	uint32_t	header_size;

	if (len < 26)
		return CM_OK;			/* stb reports the short header */
	offset = read_le32(b + 10);
	header_size = read_le32(b + 14);
	if (header_size == 12)
	{
		width = read_le16(b + 18);
		height = read_le16(b + 20);
		bpp = read_le16(b + 24);
	}
	else if (header_size >= 40 && len >= 34)
	{
		int32_t		h = (int32_t) read_le32(b + 22);

		width = (uint64_t) (int64_t) (int32_t) read_le32(b + 18);
		height = h < 0 ? (uint64_t) -(int64_t) h : (uint64_t) h;
		bpp = read_le16(b + 28);
		compression = read_le32(b + 30);
	}
	else
		return CM_OK;
	/* Only uncompressed layouts (BI_RGB, BI_BITFIELDS) have a fixed size. */
	if ((compression != 0 && compression != 3) || width > CM_IMAGE_MAX_SIDE ||
		height > CM_IMAGE_MAX_SIDE || bpp > 32)
		return CM_OK;
	row_bytes = (width * bpp + 31) / 32 * 4;
	end = offset + row_bytes * height;
	if (end > len)
		return cm_set_error(err, CM_ERR_INPUT,
							"invalid BMP image: truncated (pixel data ends at byte %llu, the data has %zu bytes)",
							(unsigned long long) end, len);
	return CM_OK;
}

static uint32_t
read_be32(const unsigned char *p)
{
	return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | (uint32_t) p[3];
}

/*
 * The size the header declares, read here rather than through stbi_info,
 * which refuses very large images with only "unknown image type": the limit
 * check must name the size.  False when the header is too short or
 * malformed to say.
 */
static bool
declared_size(cm_image_format format, const unsigned char *b, size_t len,
			  uint64_t *width, uint64_t *height)
{
	switch (format)
	{
		case CM_IMAGE_PNG:
			if (len < 24 || memcmp(b + 12, "IHDR", 4) != 0)
				return false;
			*width = read_be32(b + 16);
			*height = read_be32(b + 20);
			return true;
		case CM_IMAGE_GIF:
			if (len < 10)
				return false;
			*width = read_le16(b + 6);
			*height = read_le16(b + 8);
			return true;
		case CM_IMAGE_BMP:
			if (len < 26)
				return false;
			if (read_le32(b + 14) == 12)
			{
				*width = read_le16(b + 18);
				*height = read_le16(b + 20);
			}
			else
			{
				int32_t		w = (int32_t) read_le32(b + 18);
				int32_t		h = (int32_t) read_le32(b + 22);

				*width = w < 0 ? (uint64_t) -(int64_t) w : (uint64_t) w;
				*height = h < 0 ? (uint64_t) -(int64_t) h : (uint64_t) h;
			}
			return true;
		case CM_IMAGE_JPEG:
			{
				int			components;
				uint32_t	w,
							h;
				size_t		scan_start;

				if (!jpeg_scan_frame(b, len, &components, &w, &h, &scan_start) || components == 0)
					return false;
				*width = w;
				*height = h;
				return true;
			}
	}
	return false;
}

/* Skip GIF data sub-blocks from b[*i] through their zero terminator. */
static bool
gif_skip_subblocks(const unsigned char *b, size_t len, size_t *i)
{
	while (*i < len)
	{
		size_t		n = b[*i];

		*i += n + 1;
		if (n == 0)
			return true;
	}
	return false;
}

/* What PIL's convert("RGB") needs from a GIF beyond stb's decode. */
typedef struct gif_first_frame
{
	int			left,
				top,
				width,
				height;			/* the first image's rectangle on the screen */
	const unsigned char *palette;	/* its colour table (local, else global), RGB */
	int			palette_entries;
	int			transparent;	/* its transparent index, -1 when none */
} gif_first_frame;

/*
 * stb's GIF reader returns zeros past the end of the data instead of
 * failing; walk the blocks up to the end of the first image's data and
 * refuse the image when they run past the bytes given.  On the way, note
 * the first image's rectangle, colour table and transparent index.
 */
static cm_status
check_gif(const unsigned char *b, size_t len, gif_first_frame *frame, cm_error *err)
{
	size_t		i = 13;
	const unsigned char *global_palette = NULL;
	int			global_entries = 0;

	memset(frame, 0, sizeof(*frame));
	frame->transparent = -1;
	if (len < 13)
		return CM_OK;			/* stb reports the short header */
	if (b[10] & 0x80)			/* global colour table */
	{
		global_entries = 2 << (b[10] & 7);
		global_palette = b + 13;
		i += (size_t) 3 * global_entries;
	}
	for (;;)
	{
		if (i >= len)
			break;
		if (b[i] == 0x21)		/* extension: label, then sub-blocks */
		{
			/* A graphic control block: its flags, delay and transparent index. */
			if (i + 6 < len && b[i + 1] == 0xF9 && b[i + 2] >= 4)
				frame->transparent = (b[i + 3] & 1) ? b[i + 6] : -1;
			i += 2;
			if (!gif_skip_subblocks(b, len, &i))
				break;
		}
		else if (b[i] == 0x2C)	/* image descriptor */
		{
			unsigned	flags;

			if (i + 10 > len)
				break;
			frame->left = read_le16(b + i + 1);
			frame->top = read_le16(b + i + 3);
			frame->width = read_le16(b + i + 5);
			frame->height = read_le16(b + i + 7);
			flags = b[i + 9];
			i += 10;
			frame->palette = global_palette;
			frame->palette_entries = global_entries;
			if (flags & 0x80)	/* local colour table */
			{
				frame->palette = b + i;
				frame->palette_entries = 2 << (flags & 7);
				i += (size_t) 3 * frame->palette_entries;
			}
			i++;				/* LZW minimum code size */
			if (!gif_skip_subblocks(b, len, &i) || i > len)
				break;
			return CM_OK;
		}
		else
			return CM_OK;		/* trailer or junk: stb reports it */
	}
	return cm_set_error(err, CM_ERR_INPUT,
						"invalid GIF image: truncated (the first image's data ends past the %zu bytes given)",
						len);
}

/*
 * stb leaves the first frame's transparent pixels, and the screen outside
 * the first image, as zeros (transparent black).  PIL's convert("RGB") of a
 * GIF shows the colour table there instead: the transparent index's colour,
 * and outside the image that of the transparent index, or of index 0 when
 * there is none (Pillow 9's first-frame fill).  Rewrite those pixels.
 */
static void
gif_fill_as_pil(unsigned char *rgba, int w, int h, const gif_first_frame *frame)
{
	int			fill = frame->transparent >= 0 ? frame->transparent : 0;
	unsigned char inside[3] = {0, 0, 0},
				outside[3] = {0, 0, 0};

	if (frame->palette == NULL)
		return;
	if (frame->transparent >= 0 && frame->transparent < frame->palette_entries)
		memcpy(inside, frame->palette + 3 * frame->transparent, 3);
	if (fill < frame->palette_entries)
		memcpy(outside, frame->palette + 3 * fill, 3);
	for (int y = 0; y < h; y++)
	{
		bool		row_inside = y >= frame->top && y - frame->top < frame->height;

		for (int x = 0; x < w; x++)
		{
			unsigned char *p = rgba + ((size_t) y * w + x) * 4;

			if (!row_inside || x < frame->left || x - frame->left >= frame->width)
				memcpy(p, outside, 3);
			else if (p[3] == 0 && frame->transparent >= 0)
				memcpy(p, inside, 3);
		}
	}
}

/* The largest single allocation stb may need for a w x h image from len bytes. */
static size_t
decoder_alloc_cap(int w, int h, size_t len)
{
	/*
	 * 16 bytes per pixel covers the largest buffer of any of the four
	 * decoders (16-bit RGBA PNG output at 8 bytes per pixel, and the zlib
	 * buffer that may double past its exact size once), with 64 pixels of
	 * padding per side for JPEG's MCU rounding; compressed data accumulated
	 * from the input is at most len.
	 */
	size_t		pixels,
				cap;

	if (!cm_mul_size((size_t) w + 64, (size_t) h + 64, &pixels) ||
		!cm_mul_size(pixels, 16, &cap) ||
		!cm_add_size(cap, len, &cap) ||
		!cm_add_size(cap, DECODER_ALLOC_SLACK, &cap))
		return SIZE_MAX;
	return cap;
}

cm_status
cm_image_decode(const unsigned char *bytes, size_t len, uint64_t max_pixels,
				cm_decoded_image *out, cm_error *err)
{
	cm_image_format format;
	stb_alloc_guard guard = {0, false};
	uint64_t	dec_w,
				dec_h;
	int			w,
				h,
				iw,
				ih,
				icomp,
				info_ok,
				dw,
				dh,
				dcomp;
	unsigned char *pixels;
	cm_status	status;
	gif_first_frame gif_frame;

	memset(out, 0, sizeof(*out));
	if (bytes == NULL || len == 0)
		return cm_set_error(err, CM_ERR_INPUT, "invalid image: no bytes");
	if (!sniff_format(bytes, len, &format))
		return cm_set_error(err, CM_ERR_INPUT,
							"invalid image: unrecognised format (expected PNG, JPEG, GIF or BMP)");
	if (len > (size_t) INT32_MAX)
		return cm_set_error(err, CM_ERR_LIMIT,
							"image of %zu bytes exceeds the decoder's 2 GiB input limit", len);

	/* Header only: nothing is decoded or allocated for pixels yet. */
	if (!declared_size(format, bytes, len, &dec_w, &dec_h))
		return cm_set_error(err, CM_ERR_INPUT,
							"invalid %s image: truncated or malformed header", format_name(format));
	if (dec_w == 0 || dec_h == 0)
		return cm_set_error(err, CM_ERR_INPUT, "invalid %s image: size %llux%llu",
							format_name(format), (unsigned long long) dec_w,
							(unsigned long long) dec_h);
	if (dec_w > CM_IMAGE_MAX_SIDE || dec_h > CM_IMAGE_MAX_SIDE)
	{
		cm_set_error(err, CM_ERR_LIMIT, "image of %llux%llu pixels exceeds the limit of %d pixels per side",
					 (unsigned long long) dec_w, (unsigned long long) dec_h, CM_IMAGE_MAX_SIDE);
		cm_error_set_limit(err, CM_LIMIT_IMAGE_SIDE);
		return CM_ERR_LIMIT;
	}
	if (max_pixels != 0 && dec_w * dec_h > max_pixels)
	{
		cm_set_error(err, CM_ERR_LIMIT, "image of %llux%llu = %llu pixels exceeds the limit of %llu pixels",
					 (unsigned long long) dec_w, (unsigned long long) dec_h,
					 (unsigned long long) (dec_w * dec_h), (unsigned long long) max_pixels);
		cm_error_set_limit(err, CM_LIMIT_IMAGE_PIXELS);
		return CM_ERR_LIMIT;
	}
	w = (int) dec_w;
	h = (int) dec_h;

	/*
	 * stb's own header parse must agree.  When it fails, its reason is only
	 * "unknown image type" (it tries every format in turn), so the decode
	 * below runs anyway, bounded by the cap, to report the precise reason.
	 */
	guard.cap = DECODER_ALLOC_SLACK;
	current_guard = &guard;
	info_ok = stbi_info_from_memory(bytes, (int) len, &iw, &ih, &icomp);
	current_guard = NULL;
	if (info_ok && (iw != w || ih != h))
		return cm_set_error(err, CM_ERR_INPUT, "invalid %s image: inconsistent size %dx%d / %dx%d",
							format_name(format), w, h, iw, ih);

	if (format == CM_IMAGE_JPEG)
		status = check_jpeg(bytes, len, err);
	else if (format == CM_IMAGE_BMP)
		status = check_bmp(bytes, len, err);
	else if (format == CM_IMAGE_GIF)
		status = check_gif(bytes, len, &gif_frame, err);
	else
		status = CM_OK;
	if (status != CM_OK)
		return status;

	guard.cap = decoder_alloc_cap(w, h, len);
	current_guard = &guard;
	pixels = stbi_load_from_memory(bytes, (int) len, &dw, &dh, &dcomp, 0);
	if (pixels == NULL)
	{
		const char *reason = stbi_failure_reason();

		current_guard = NULL;
		if (guard.refused)
			return cm_set_error(err, CM_ERR_INPUT,
								"invalid %s image: its data needs more memory than a %dx%d image can (corrupt or hostile data)",
								format_name(format), w, h);
		if (reason && strcmp(reason, "outofmem") == 0)
			return cm_set_error(err, CM_ERR_NOMEM, "out of memory decoding a %dx%d %s image",
								w, h, format_name(format));
		return cm_set_error(err, CM_ERR_INPUT, "invalid %s image: %s",
							format_name(format), reason ? reason : "undecodable data");
	}
	current_guard = NULL;

	if (dw != w || dh != h || dcomp < 1 || dcomp > 4)
	{
		free(pixels);
		return cm_set_error(err, CM_ERR_INPUT,
							"invalid %s image: header says %dx%d but the data decodes to %dx%d",
							format_name(format), w, h, dw, dh);
	}
	if (format == CM_IMAGE_GIF && dcomp == 4)
		gif_fill_as_pil(pixels, w, h, &gif_frame);
	out->pixels = pixels;
	out->width = w;
	out->height = h;
	out->stride = dcomp;
	out->colours = dcomp <= 2 ? 1 : 3;
	out->format = format;
	return CM_OK;
}

void
cm_decoded_image_free(cm_decoded_image *img)
{
	if (img == NULL)
		return;
	free(img->pixels);			/* allocated by guarded_malloc: plain malloc */
	img->pixels = NULL;
}
