/*
 * image_stb.c
 *	  PNG, GIF, BMP and TGA through stb_image, with the checks stb does not
 *	  make and the fixes that bring its output to PIL's convert("RGB").
 *
 * stb_image is compiled here, privately (STB_IMAGE_STATIC), with only these
 * four formats.  Its global switches (vertical flip, unpremultiply, iPhone
 * PNG conversion) are never set, so they keep their defaults; its failure
 * reason is thread-local (C11 _Thread_local, stb's default), read right after
 * the failing call on the same thread.
 *
 * Where stb and PIL differ, PIL wins:
 *  - stb fills data missing at the end of a BMP, GIF or TGA with zeros; a
 *    walk of the structure refuses such truncations first.
 *  - A palette index past the end of a PNG's PLTE reads stb's uninitialised
 *    stack; PIL shows grey (i, i, i) there.  A short PLTE is given the rest
 *    of PIL's grey ramp before stb sees it.  A BMP or TGA palette index past
 *    its colour map is refused (PIL's reading of those differs by format).
 *  - stb widens 5- and 6-bit BMP channels by bit replication, PIL as
 *    v * 255 / max; 32-bit BI_RGB BMPs have no alpha in PIL.
 *  - A TGA stored right to left is mirrored (stb reads only the vertical
 *    origin).
 *  - GIF pixels stb leaves transparent black show the colour table as PIL
 *    does (gif_fill_as_pil).
 *  - 16-bit samples become their high byte (stb, and PIL for every 16-bit
 *    layout but grey, which PIL 9.4 clamps to 0..255 instead: see the
 *    README; we scale it like the others).
 */
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "image_formats.h"

/*
 * Allocation guard.  stb_image's allocation macros take no context, so the
 * cap for the current call reaches them through a thread-local pointer that
 * is set only for the duration of one call on that thread.  It is needed
 * because a PNG's zlib stream may inflate far beyond the size its header
 * declares, and a chunk length may claim gigabytes that are not there: stb
 * would allocate for them before noticing.
 */
typedef struct stb_alloc_guard
{
	size_t		cap;			/* largest single allocation allowed */
	bool		refused;		/* set when a request exceeded cap */
	bool		failed;			/* set when malloc or realloc returned NULL */
} stb_alloc_guard;

static _Thread_local stb_alloc_guard *current_guard;

static void *
guarded_malloc(size_t n)
{
	stb_alloc_guard *guard = current_guard;
	void	   *p;

	if (guard == NULL || n > guard->cap)
	{
		if (guard)
			guard->refused = true;
		return NULL;
	}
	p = malloc(n ? n : 1);
	if (p == NULL)
		guard->failed = true;
	return p;
}

static void *
guarded_realloc(void *p, size_t n)
{
	stb_alloc_guard *guard = current_guard;
	void	   *q;

	if (guard == NULL || n > guard->cap)
	{
		if (guard)
			guard->refused = true;
		return NULL;
	}
	q = realloc(p, n ? n : 1);
	if (q == NULL)
		guard->failed = true;
	return q;
}

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_ONLY_PNG
#define STBI_ONLY_GIF
#define STBI_ONLY_BMP
#define STBI_ONLY_TGA
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

/* Largest PNG text chunk inflated for its orientation (PIL's own limit). */
#define PNG_TEXT_MAX ((size_t) 1 << 20)

/* The largest single allocation stb may need for a w x h image from len bytes. */
static size_t
decoder_alloc_cap(uint32_t w, uint32_t h, size_t len)
{
	/*
	 * 16 bytes per pixel covers the largest buffer of any of the decoders
	 * (16-bit RGBA PNG output at 8 bytes per pixel, and the zlib buffer that
	 * may double past its exact size once), with 64 pixels of padding per
	 * side; compressed data accumulated from the input is at most len.
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

/*
 * stb's decode under the guard, with its failure reported in our terms.
 * want_comp 0 keeps the file's own channel count.
 */
static cm_status
stb_decode(const cm_image_codec *codec, const unsigned char *b, size_t len,
		   const cm_image_header *h, cm_decoded_image *out, cm_error *err)
{
	stb_alloc_guard guard = {0, false, false};
	int			iw,
				ih,
				icomp,
				info_ok,
				dw,
				dh,
				dcomp;
	unsigned char *pixels;

	/*
	 * stb's own header parse must agree.  When it fails, its reason is only
	 * "unknown image type" (it tries every format in turn), so the decode
	 * below runs anyway, bounded by the cap, to report the precise reason.
	 */
	guard.cap = DECODER_ALLOC_SLACK;
	current_guard = &guard;
	info_ok = stbi_info_from_memory(b, (int) len, &iw, &ih, &icomp);
	current_guard = NULL;
	if (info_ok && ((uint32_t) iw != h->width || (uint32_t) ih != h->height))
		return cm_set_error(err, CM_ERR_INPUT, "invalid %s image: inconsistent size %ux%u / %dx%d",
							codec->name, h->width, h->height, iw, ih);

	guard.cap = decoder_alloc_cap(h->width, h->height, len);
	guard.refused = false;
	guard.failed = false;
	current_guard = &guard;
	/*
	 * stb keeps its last failure reason (per thread) until the next failure
	 * and returns NULL without one where its zlib output's first allocation
	 * fails: start from none, and tell out-of-memory by the guard.
	 */
	stbi__g_failure_reason = NULL;
	pixels = stbi_load_from_memory(b, (int) len, &dw, &dh, &dcomp, 0);
	current_guard = NULL;
	if (pixels == NULL)
	{
		const char *reason = stbi_failure_reason();

		if (guard.refused)
			return cm_set_error(err, CM_ERR_INPUT,
								"invalid %s image: its data needs more memory than a %ux%u image can (corrupt or hostile data)",
								codec->name, h->width, h->height);
		if (guard.failed || (reason && strcmp(reason, "outofmem") == 0))
			return cm_set_error(err, CM_ERR_NOMEM, "out of memory decoding a %ux%u %s image",
								h->width, h->height, codec->name);
		if (reason && strcmp(reason, "BMP RLE") == 0)
			return cm_set_error(err, CM_ERR_UNSUPPORTED,
								"RLE-compressed BMP images are not supported (convert the image to PNG)");
		return cm_set_error(err, CM_ERR_INPUT, "invalid %s image: %s",
							codec->name, reason ? reason : "undecodable data");
	}
	if (dcomp < 1 || dcomp > 4)
	{
		free(pixels);
		return cm_set_error(err, CM_ERR_INPUT, "invalid %s image: %d channels", codec->name, dcomp);
	}
	out->pixels = pixels;
	out->width = dw;
	out->height = dh;
	out->stride = dcomp;
	out->colours = dcomp <= 2 ? 1 : 3;
	return CM_OK;
}

/* ------------------------------------------------------------------ PNG */

static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static bool
png_sniff(const unsigned char *b, size_t len)
{
	return len >= 8 && memcmp(b, png_sig, 8) == 0;
}

/* One PNG chunk: its type and data, inside the bytes given. */
typedef struct png_chunk
{
	const unsigned char *type;
	const unsigned char *data;
	size_t		len;
} png_chunk;

/* The chunk at *pos, advancing past its CRC; false at the end or when short. */
static bool
png_next_chunk(const unsigned char *b, size_t len, size_t *pos, png_chunk *c)
{
	size_t		n;

	if (*pos > len || len - *pos < 12)
		return false;
	n = cm_be32(b + *pos);
	if (n > len - *pos - 12)
		return false;
	c->type = b + *pos + 4;
	c->data = b + *pos + 8;
	c->len = n;
	*pos += 12 + n;
	return true;
}

/* zlib data inflated with stb's inflater, at most PNG_TEXT_MAX bytes; malloc'd. */
static unsigned char *
png_inflate(const unsigned char *z, size_t n, size_t *out_len)
{
	stb_alloc_guard guard = {PNG_TEXT_MAX, false, false};
	char	   *text;
	int			got;

	if (n > PNG_TEXT_MAX)
		return NULL;
	current_guard = &guard;
	text = stbi_zlib_decode_malloc_guesssize_headerflag((const char *) z, (int) n, 4096, &got, 1);
	current_guard = NULL;
	if (text == NULL || got < 0)
	{
		free(text);
		return NULL;
	}
	*out_len = (size_t) got;
	return (unsigned char *) text;
}

/*
 * ImageMagick's "Raw profile type exif" text: a blank line, the name, the
 * length, then hex digits in lines.  PIL decodes what follows the third
 * newline with bytes.fromhex.  Malloc'd; NULL when malformed.
 */
static unsigned char *
raw_profile_bytes(const unsigned char *t, size_t n, size_t *out_len)
{
	size_t		i = 0,
				o = 0;
	int			newlines = 0;
	unsigned char *out;
	int			hi = -1;

	while (i < n && newlines < 3)
		newlines += t[i++] == '\n';
	out = malloc(n / 2 + 1);
	if (out == NULL)
		return NULL;
	for (; i < n; i++)
	{
		unsigned char ch = t[i];
		int			v;

		if (ch == '\n' || ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f')
		{
			if (hi >= 0 && ch != '\n')
				break;			/* space inside a byte: fromhex refuses it */
			continue;
		}
		if (ch >= '0' && ch <= '9')
			v = ch - '0';
		else if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
			v = (ch | 0x20) - 'a' + 10;
		else
			break;
		if (hi < 0)
			hi = v;
		else
		{
			out[o++] = (unsigned char) (hi << 4 | v);
			hi = -1;
		}
	}
	if (i < n || hi >= 0)
	{
		free(out);
		return NULL;
	}
	*out_len = o;
	return out;
}

/* Text held by PNG text chunks under the keys PIL reads orientation from. */
typedef struct png_texts
{
	const unsigned char *exif;	/* eXIf data, or tEXt "exif" */
	size_t		exif_len;
	unsigned char *raw_profile; /* "Raw profile type exif" (malloc'd) */
	size_t		raw_profile_len;
	unsigned char *xmp;			/* "XML:com.adobe.xmp" (malloc'd) */
	size_t		xmp_len;
} png_texts;

static void
png_keep(unsigned char **slot, size_t *slot_len, const unsigned char *v, size_t n,
		 bool compressed)
{
	unsigned char *copy;
	size_t		copy_len = n;

	if (compressed)
		copy = png_inflate(v, n, &copy_len);
	else if ((copy = malloc(n ? n : 1)) != NULL)
		memcpy(copy, v, n);
	if (copy == NULL)
		return;					/* PIL skips a text it cannot inflate */
	free(*slot);
	*slot = copy;
	*slot_len = copy_len;
}

/*
 * A text chunk (tEXt, zTXt, iTXt) with a key PIL reads orientation from; a
 * later chunk replaces an earlier one under the same key, as in PIL's info.
 */
static void
png_text_chunk(const png_chunk *c, png_texts *t)
{
	const unsigned char *key = c->data,
			   *nul = memchr(c->data, 0, c->len),
			   *v,
			   *end = c->data + c->len;
	size_t		klen;
	bool		compressed = false;
	unsigned char **slot;
	size_t	   *slot_len;

	if (nul == NULL)
		return;
	klen = (size_t) (nul - key);
	v = nul + 1;
	if (memcmp(c->type, "zTXt", 4) == 0)
	{
		if (v >= end || *v != 0)
			return;
		v++;
		compressed = true;
	}
	else if (memcmp(c->type, "iTXt", 4) == 0)
	{
		const unsigned char *p;

		if (end - v < 2 || (v[0] != 0 && v[1] != 0))
			return;
		compressed = v[0] != 0;
		v += 2;
		/* language tag, translated keyword */
		for (int k = 0; k < 2; k++)
		{
			if ((p = memchr(v, 0, (size_t) (end - v))) == NULL)
				return;
			v = p + 1;
		}
	}
	if (klen == 4 && memcmp(key, "exif", 4) == 0 && memcmp(c->type, "tEXt", 4) == 0)
	{
		t->exif = v;
		t->exif_len = (size_t) (end - v);
		return;
	}
	if (klen == 21 && memcmp(key, "Raw profile type exif", 21) == 0)
		slot = &t->raw_profile, slot_len = &t->raw_profile_len;
	else if (klen == 17 && memcmp(key, "XML:com.adobe.xmp", 17) == 0)
		slot = &t->xmp, slot_len = &t->xmp_len;
	else
		return;
	png_keep(slot, slot_len, v, (size_t) (end - v), compressed);
}

/*
 * PIL's Image.getexif() for a PNG: the eXIf chunk (or a tEXt "exif"), else
 * the raw profile; then, when that has no orientation, XMP.
 */
static int
png_orientation(const unsigned char *b, size_t len)
{
	png_texts	t;
	png_chunk	c;
	size_t		pos = 8;
	int			orientation = 0;

	memset(&t, 0, sizeof(t));
	while (png_next_chunk(b, len, &pos, &c) && memcmp(c.type, "IEND", 4) != 0)
	{
		if (memcmp(c.type, "eXIf", 4) == 0)
		{
			t.exif = c.data;
			t.exif_len = c.len;
		}
		else if (memcmp(c.type, "tEXt", 4) == 0 || memcmp(c.type, "zTXt", 4) == 0 ||
				 memcmp(c.type, "iTXt", 4) == 0)
			png_text_chunk(&c, &t);
	}
	if (t.exif != NULL)
		orientation = cm_exif_orientation(t.exif, t.exif_len);
	else if (t.raw_profile != NULL)
	{
		size_t		n;
		unsigned char *exif = raw_profile_bytes(t.raw_profile, t.raw_profile_len, &n);

		if (exif != NULL)
			orientation = cm_exif_orientation(exif, n);
		free(exif);
	}
	if (orientation == 0 && t.xmp != NULL)
		orientation = cm_xmp_orientation(t.xmp, t.xmp_len);
	free(t.raw_profile);
	free(t.xmp);
	return orientation;
}

static cm_status
png_header(const unsigned char *b, size_t len, cm_image_header *h, cm_error *err)
{
	if (len < 24 || memcmp(b + 12, "IHDR", 4) != 0)
		return cm_set_error(err, CM_ERR_INPUT, "invalid PNG image: truncated or malformed header");
	h->width = cm_be32(b + 16);
	h->height = cm_be32(b + 20);
	h->orientation = png_orientation(b, len);
	return CM_OK;
}

/*
 * A copy of a palette PNG whose PLTE has fewer than 256 entries, with the
 * rest of PIL's grey ramp appended (stb does not check CRCs); NULL when the
 * PNG needs no change or has no PLTE.
 */
static unsigned char *
png_full_palette(const unsigned char *b, size_t len, size_t *out_len)
{
	png_chunk	c;
	size_t		pos = 8,
				at;
	unsigned char *copy;
	size_t		entries,
				extra;

	if (len < 26 || b[25] != 3)	/* IHDR colour type 3: palette */
		return NULL;
	for (;;)
	{
		at = pos;
		if (!png_next_chunk(b, len, &pos, &c) || memcmp(c.type, "IDAT", 4) == 0)
			return NULL;
		if (memcmp(c.type, "PLTE", 4) == 0)
			break;
	}
	entries = c.len / 3;
	if (c.len % 3 != 0 || entries == 0 || entries >= 256)
		return NULL;			/* stb refuses a broken PLTE itself */
	extra = (256 - entries) * 3;
	if ((copy = malloc(len + extra)) == NULL)
		return NULL;
	memcpy(copy, b, at + 8 + c.len);
	for (size_t i = entries; i < 256; i++)
		memset(copy + at + 8 + 3 * i, (int) i, 3);
	copy[at] = 0;
	copy[at + 1] = 0;
	copy[at + 2] = 3;
	copy[at + 3] = 0;			/* length 768 */
	memcpy(copy + at + 8 + 768, b + at + 8 + c.len, len - (at + 8 + c.len));
	*out_len = len + extra;
	return copy;
}

static cm_status
png_decode(const cm_decode_request *req, cm_decoded_image *out, cm_error *err)
{
	const unsigned char *b = req->bytes;
	size_t		len = req->len;
	const cm_image_header *h = &req->header;
	size_t		padded_len = 0;
	unsigned char *padded = png_full_palette(b, len, &padded_len);
	cm_status	s;

	s = stb_decode(&cm_codec_png, padded ? padded : b, padded ? padded_len : len, h, out, err);
	free(padded);
	/* PIL's mode: P for colour type 3, 1 for 1-bit grey, LA / RGBA for 4 / 6 */
	if (s == CM_OK && len >= 26)
		out->mode = b[25] == 3 || (b[25] == 0 && b[24] == 1) ? CM_MODE_PALETTE
			: b[25] == 4 || b[25] == 6 ? CM_MODE_ALPHA : CM_MODE_DIRECT;
	return s;
}

const cm_image_codec cm_codec_png = {
	CM_IMAGE_PNG, "PNG", png_sniff, png_header, png_decode
};

/* ------------------------------------------------------------------ GIF */

static bool
gif_sniff(const unsigned char *b, size_t len)
{
	return len >= 6 && (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0);
}

static cm_status
gif_header(const unsigned char *b, size_t len, cm_image_header *h, cm_error *err)
{
	if (len < 10)
		return cm_set_error(err, CM_ERR_INPUT, "invalid GIF image: truncated or malformed header");
	h->width = cm_le16(b + 6);
	h->height = cm_le16(b + 8);
	return CM_OK;
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
			frame->left = (int) cm_le16(b + i + 1);
			frame->top = (int) cm_le16(b + i + 3);
			frame->width = (int) cm_le16(b + i + 5);
			frame->height = (int) cm_le16(b + i + 7);
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
 * there is none (Pillow 9's first-frame fill).  Rewrite those pixels (a
 * transparent pixel keeps alpha 0; the fill is opaque unless it is the
 * transparent index).
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
			{
				memcpy(p, outside, 3);
				/* transparent only where the fill is the transparent index */
				p[3] = frame->transparent >= 0 ? 0 : 255;
			}
			else if (p[3] == 0 && frame->transparent >= 0)
				memcpy(p, inside, 3);
		}
	}
}

static cm_status
gif_decode(const cm_decode_request *req, cm_decoded_image *out, cm_error *err)
{
	const unsigned char *b = req->bytes;
	size_t		len = req->len;
	const cm_image_header *h = &req->header;
	gif_first_frame frame;
	cm_status	s;

	if ((s = check_gif(b, len, &frame, err)) != CM_OK)
		return s;
	if ((s = stb_decode(&cm_codec_gif, b, len, h, out, err)) != CM_OK)
		return s;
	if (out->stride == 4)
		gif_fill_as_pil(out->pixels, out->width, out->height, &frame);
	/* PIL's mode: P, or L when the first frame has no colour table or the grey ramp i -> (i, i, i) */
	out->mode = CM_MODE_DIRECT;
	for (int i = 0; frame.palette != NULL && i < frame.palette_entries; i++)
		if (frame.palette[3 * i] != i || frame.palette[3 * i + 1] != i || frame.palette[3 * i + 2] != i)
		{
			out->mode = CM_MODE_PALETTE;
			break;
		}
	return CM_OK;
}

const cm_image_codec cm_codec_gif = {
	CM_IMAGE_GIF, "GIF", gif_sniff, gif_header, gif_decode
};

/* ------------------------------------------------------------------ BMP */

static bool
bmp_sniff(const unsigned char *b, size_t len)
{
	return len >= 2 && b[0] == 'B' && b[1] == 'M';
}

/* The fields of a BMP header the checks and fixes need. */
typedef struct bmp_layout
{
	uint64_t	offset;			/* of the pixel data */
	uint32_t	header_size;
	uint64_t	width,
				height;
	uint32_t	bpp;
	uint32_t	compression;
	uint32_t	colours_used;	/* biClrUsed, 0 = 2^bpp */
	uint32_t	masks[3];		/* BI_BITFIELDS R, G, B; 0 when absent */
} bmp_layout;

static bool
bmp_parse(const unsigned char *b, size_t len, bmp_layout *l)
{
	memset(l, 0, sizeof(*l));
	if (len < 26)
		return false;
	l->offset = cm_le32(b + 10);
	l->header_size = cm_le32(b + 14);
	if (l->header_size == 12)
	{
		l->width = cm_le16(b + 18);
		l->height = cm_le16(b + 20);
		l->bpp = cm_le16(b + 24);
		return true;
	}
	if (len < 54)
		return false;
	{
		int32_t		w = (int32_t) cm_le32(b + 18);
		int32_t		hh = (int32_t) cm_le32(b + 22);

		l->width = w < 0 ? (uint64_t) -(int64_t) w : (uint64_t) w;
		l->height = hh < 0 ? (uint64_t) -(int64_t) hh : (uint64_t) hh;
	}
	l->bpp = cm_le16(b + 28);
	l->compression = cm_le32(b + 30);
	l->colours_used = cm_le32(b + 46);
	if (l->compression == 3 && len >= 66)	/* masks follow a 40-byte header */
		for (int c = 0; c < 3; c++)
			l->masks[c] = cm_le32(b + 54 + 4 * c);
	return true;
}

static cm_status
bmp_header(const unsigned char *b, size_t len, cm_image_header *h, cm_error *err)
{
	bmp_layout	l;

	if (!bmp_parse(b, len, &l))
		return cm_set_error(err, CM_ERR_INPUT, "invalid BMP image: truncated or malformed header");
	if (l.width > UINT32_MAX || l.height > UINT32_MAX)
		return cm_set_error(err, CM_ERR_INPUT, "invalid BMP image: size out of range");
	h->width = (uint32_t) l.width;
	h->height = (uint32_t) l.height;
	return CM_OK;
}

/*
 * Before stb: refuse an uncompressed BMP whose pixel rows end beyond the
 * bytes given (stb would read zeros), and a palette index past the colour
 * map (stb would read its uninitialised palette).
 */
static cm_status
check_bmp(const unsigned char *b, size_t len, const bmp_layout *l, cm_error *err)
{
	uint64_t	row_bytes,
				end,
				entries,
				palette_at;

	/* Only uncompressed layouts (BI_RGB, BI_BITFIELDS) have a fixed size. */
	if ((l->compression != 0 && l->compression != 3) || l->width > CM_IMAGE_MAX_SIDE ||
		l->height > CM_IMAGE_MAX_SIDE || l->bpp > 32 || l->bpp == 0)
		return CM_OK;			/* stb refuses what it cannot read */
	row_bytes = (l->width * l->bpp + 31) / 32 * 4;
	end = l->offset + row_bytes * l->height;
	if (end > len)
		return cm_set_error(err, CM_ERR_INPUT,
							"invalid BMP image: truncated (pixel data ends at byte %llu, the data has %zu bytes)",
							(unsigned long long) end, len);
	if (l->bpp > 8)
		return CM_OK;

	/* The palette as stb reads it: what lies between the header and the pixels. */
	palette_at = 14 + (uint64_t) l->header_size;
	if (l->offset < palette_at)
		return CM_OK;			/* stb refuses it */
	entries = (l->offset - palette_at) / (l->header_size == 12 ? 3 : 4);
	if (l->colours_used != 0 && l->colours_used < entries)
		entries = l->colours_used;	/* PIL's palette: the ones in use */
	if (entries >= ((uint64_t) 1 << l->bpp))
		return CM_OK;
	for (uint64_t y = 0; y < l->height; y++)
	{
		const unsigned char *row = b + l->offset + y * row_bytes;

		for (uint64_t x = 0; x < l->width; x++)
		{
			uint64_t	bit = x * l->bpp;
			unsigned	v = (row[bit / 8] >> (8 - l->bpp - bit % 8)) & ((1u << l->bpp) - 1);

			if (v >= entries)
				return cm_set_error(err, CM_ERR_UNSUPPORTED,
									"BMP image uses colour index %u of a %llu-entry palette",
									v, (unsigned long long) entries);
		}
	}
	return CM_OK;
}

/* Bits set in a mask, 0..32. */
static int
mask_bits(uint32_t m)
{
	return __builtin_popcount(m);
}

/*
 * stb widens a channel of n < 8 bits by bit replication; PIL computes
 * v * 255 / (2^n - 1) (integer division).  Both keep v in the top n bits.
 */
static void
bmp_fix_channels(cm_decoded_image *img, const int bits[3])
{
	unsigned char lut[3][256];
	size_t		n = (size_t) img->width * img->height;

	for (int c = 0; c < 3; c++)
		for (int s = 0; s < 256; s++)
		{
			int			v = bits[c] >= 1 && bits[c] < 8 ? s >> (8 - bits[c]) : -1;

			lut[c][s] = (unsigned char) (v < 0 ? s : v * 255 / ((1 << bits[c]) - 1));
		}
	for (size_t i = 0; i < n; i++)
		for (int c = 0; c < 3; c++)
		{
			unsigned char *p = img->pixels + i * img->stride + c;

			*p = lut[c][*p];
		}
}

/*
 * PIL's mode for a BMP: a palette of 8 bits or fewer that is the grey ramp
 * (two entries: black and white) is dropped, giving L (1); 32-bit bit fields
 * with an alpha mask PIL knows (or all four zero) give RGBA.
 */
static cm_image_mode
bmp_mode(const unsigned char *b, size_t len, const bmp_layout *l)
{
	if (l->bpp == 32 && l->compression == 3 && l->header_size >= 56 && len >= 70)
	{
		uint32_t	r = cm_le32(b + 54),
					g = cm_le32(b + 58),
					bl = cm_le32(b + 62),
					a = cm_le32(b + 66);

		return (r == 0xFF000000 && g == 0xFF0000 && bl == 0xFF00 && a == 0xFF) ||
			(r == 0xFF && g == 0xFF00 && bl == 0xFF0000 && a == 0xFF000000) ||
			(r == 0xFF0000 && g == 0xFF00 && bl == 0xFF && a == 0xFF000000) ||
			(r == 0 && g == 0 && bl == 0 && a == 0) ? CM_MODE_ALPHA : CM_MODE_DIRECT;
	}
	if (l->bpp > 8)
		return CM_MODE_DIRECT;
	{
		uint64_t	colours = l->colours_used ? l->colours_used : (uint64_t) 1 << l->bpp;
		size_t		padding = l->header_size == 12 ? 3 : 4,
					at = 14 + (size_t) l->header_size;

		for (uint64_t i = 0; i < colours; i++)
		{
			unsigned	v = colours == 2 ? (i ? 255 : 0) : (unsigned) (i & 255);
			const unsigned char *rgb = b + at + padding * i;

			if (at + padding * i + 3 > len || rgb[0] != v || rgb[1] != v || rgb[2] != v)
				return CM_MODE_PALETTE;
		}
		return colours == 2 ? CM_MODE_PALETTE : CM_MODE_DIRECT;
	}
}

static cm_status
bmp_decode(const cm_decode_request *req, cm_decoded_image *out, cm_error *err)
{
	const unsigned char *b = req->bytes;
	size_t		len = req->len;
	const cm_image_header *h = &req->header;
	bmp_layout	l;
	cm_status	s;

	if (!bmp_parse(b, len, &l))
		return cm_set_error(err, CM_ERR_INPUT, "invalid BMP image: truncated or malformed header");
	if ((s = check_bmp(b, len, &l, err)) != CM_OK)
		return s;
	if ((s = stb_decode(&cm_codec_bmp, b, len, h, out, err)) != CM_OK)
		return s;
	if (l.bpp == 16 && out->colours == 3)
	{
		/* BI_RGB 16-bit is 5-5-5 */
		int			bits[3] = {5, 5, 5};

		if (l.compression == 3)
			for (int c = 0; c < 3; c++)
				bits[c] = mask_bits(l.masks[c]);
		bmp_fix_channels(out, bits);
	}
	if (l.bpp == 32 && l.compression == 0 && out->stride == 4)
	{
		/* PIL reads BI_RGB 32-bit as BGRX: the fourth byte is not alpha */
		size_t		n = (size_t) out->width * out->height;

		for (size_t i = 0; i < n; i++)
			out->pixels[i * 4 + 3] = 255;
	}
	out->mode = bmp_mode(b, len, &l);
	return CM_OK;
}

const cm_image_codec cm_codec_bmp = {
	CM_IMAGE_BMP, "BMP", bmp_sniff, bmp_header, bmp_decode
};

/* ------------------------------------------------------------------ TGA */

/* The fields of a TGA header (18 bytes, little-endian). */
typedef struct tga_layout
{
	unsigned	id_len;
	unsigned	colourmap_type;
	unsigned	image_type;		/* 1..3 raw, 9..11 RLE */
	unsigned	map_start,
				map_len,
				map_bits;
	unsigned	width,
				height;
	unsigned	bits;
	unsigned	flags;
} tga_layout;

static void
tga_parse(const unsigned char *b, tga_layout *l)
{
	l->id_len = b[0];
	l->colourmap_type = b[1];
	l->image_type = b[2];
	l->map_start = cm_le16(b + 3);
	l->map_len = cm_le16(b + 5);
	l->map_bits = b[7];
	l->width = cm_le16(b + 12);
	l->height = cm_le16(b + 14);
	l->bits = b[16];
	l->flags = b[17];
}

/*
 * TGA has no signature: accept the header PIL's TgaImageFile accepts (and
 * an image type it can read), as PIL does when no other format matched.
 */
static bool
tga_sniff(const unsigned char *b, size_t len)
{
	tga_layout	l;

	if (len < 18)
		return false;
	tga_parse(b, &l);
	return l.colourmap_type <= 1 && l.width > 0 && l.height > 0 &&
		(l.bits == 1 || l.bits == 8 || l.bits == 16 || l.bits == 24 || l.bits == 32) &&
		(l.image_type == 1 || l.image_type == 2 || l.image_type == 3 ||
		 l.image_type == 9 || l.image_type == 10 || l.image_type == 11);
}

static cm_status
tga_header(const unsigned char *b, size_t len, cm_image_header *h, cm_error *err)
{
	tga_layout	l;

	if (len < 18)
		return cm_set_error(err, CM_ERR_INPUT, "invalid TGA image: truncated header");
	tga_parse(b, &l);
	h->width = l.width;
	h->height = l.height;
	return CM_OK;
}

/*
 * Walk a TGA's pixel data as stb will read it: refuse data that ends early
 * (stb would read zeros) and a colour index past the colour map (stb would
 * show entry 0, PIL grey).
 */
static cm_status
check_tga(const unsigned char *b, size_t len, const tga_layout *l, cm_error *err)
{
	bool		indexed = (l->image_type & 7) == 1;
	bool		rle = l->image_type >= 9;
	size_t		pos = 18 + l->id_len,
				bpp = (l->bits + 7) / 8;
	uint64_t	total = (uint64_t) l->width * l->height,
				done = 0;

	if (l->bits == 1 || (indexed && l->bits != 8))
		return cm_set_error(err, CM_ERR_UNSUPPORTED, "TGA images of %u bits per %s are not supported",
							l->bits, indexed ? "colour index" : "pixel");
	if (l->colourmap_type == 1)
	{
		if (indexed && l->map_start != 0)
			return cm_set_error(err, CM_ERR_UNSUPPORTED,
								"TGA colour maps that start past index 0 are not supported");
		pos += (size_t) l->map_len * ((l->map_bits + 7) / 8);
	}
	if (indexed && (l->colourmap_type != 1 || l->map_len == 0))
		return cm_set_error(err, CM_ERR_INPUT, "invalid TGA image: colour-mapped without a colour map");
	while (done < total)
	{
		uint64_t	run = 1;
		size_t		literal = 1;

		if (rle)
		{
			if (pos >= len)
				break;
			run = 1 + (b[pos] & 127);
			literal = (b[pos] & 128) ? 1 : run;
			pos++;
		}
		else
		{
			run = total - done;
			literal = (size_t) run;
		}
		if (pos > len || (len - pos) / bpp < literal)
			break;
		if (indexed)
			for (size_t i = 0; i < literal; i++)
				if (b[pos + i] >= l->map_len)
					return cm_set_error(err, CM_ERR_UNSUPPORTED,
										"TGA image uses colour index %u of a %u-entry colour map",
										b[pos + i], l->map_len);
		pos += literal * bpp;
		done += run;
	}
	if (done < total)
		return cm_set_error(err, CM_ERR_INPUT,
							"invalid TGA image: truncated (pixel data ends past the %zu bytes given)", len);
	return CM_OK;
}

static cm_status
tga_decode(const cm_decode_request *req, cm_decoded_image *out, cm_error *err)
{
	const unsigned char *b = req->bytes;
	size_t		len = req->len;
	const cm_image_header *h = &req->header;
	tga_layout	l;
	cm_status	s;

	tga_parse(b, &l);
	if ((s = check_tga(b, len, &l, err)) != CM_OK)
		return s;
	if ((s = stb_decode(&cm_codec_tga, b, len, h, out, err)) != CM_OK)
		return s;
	if (l.flags & 0x10)
	{
		/* stored right to left: mirror each row */
		int			k = out->stride;

		for (int y = 0; y < out->height; y++)
		{
			unsigned char *row = out->pixels + (size_t) y * out->width * k;

			for (int x = 0; x < out->width / 2; x++)
				for (int c = 0; c < k; c++)
				{
					unsigned char t = row[(size_t) x * k + c];

					row[(size_t) x * k + c] = row[(size_t) (out->width - 1 - x) * k + c];
					row[(size_t) (out->width - 1 - x) * k + c] = t;
				}
		}
	}
	/* PIL's mode: P (colour-mapped), 1 (1-bit grey), LA (16-bit grey), RGBA (32-bit) */
	if ((l.image_type & 7) == 1 || ((l.image_type & 7) == 3 && l.bits == 1))
		out->mode = CM_MODE_PALETTE;
	else if (((l.image_type & 7) == 3 && l.bits == 16) || ((l.image_type & 7) == 2 && l.bits == 32))
		out->mode = CM_MODE_ALPHA;
	return CM_OK;
}

const cm_image_codec cm_codec_tga = {
	CM_IMAGE_TGA, "TGA", tga_sniff, tga_header, tga_decode
};
