/*
 * test_image_formats.c
 *	  Every image format the decoder reads, against PIL 9.4 on the fixtures
 *	  of test/images (made by test/images/make_fixtures.py): decoded pixels
 *	  (exact), alpha composited onto white and black (exact), EXIF
 *	  orientation applied and ignored, golden-model embeddings of our pixels
 *	  against the same model fed PIL's pixels; truncations of every prefix,
 *	  decompression bombs per format, and the reduced-scale decode of large
 *	  JPEG and WebP photos against the exact one.
 *
 * Run from the repository root (make -C encoders test does).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <webp/encode.h>

#include "crossmodal_encoder.h"
#include "image.h"
#include "image_decode.h"
#include "runtime_test_util.h"
#include "image_test_util.h"

#define FIXTURES "test/images"
#define GOLDEN "test/golden"

typedef struct fixture
{
	const char *file;
	const char *expect;
	const char *white;			/* NULL for opaque fixtures */
	const char *black;
} fixture;

static cJSON *manifest_json;
static fixture *fixtures;
static int	n_fixtures;

static const char *
json_str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItem(o, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool
load_manifest(void)
{
	const cJSON *list;

	manifest_json = rt_load_json(FIXTURES "/manifest.json");
	list = cJSON_GetObjectItem(manifest_json, "fixtures");
	n_fixtures = cJSON_GetArraySize(list);
	if (n_fixtures <= 0)
		return false;
	fixtures = calloc((size_t) n_fixtures, sizeof(fixture));
	for (int i = 0; i < n_fixtures; i++)
	{
		const cJSON *e = cJSON_GetArrayItem(list, i);

		fixtures[i].file = json_str(e, "file");
		fixtures[i].expect = json_str(e, "expect");
		fixtures[i].white = json_str(e, "white");
		fixtures[i].black = json_str(e, "black");
	}
	return true;
}

static unsigned char *
fixture_bytes(const char *name, size_t *len)
{
	char		path[512];

	snprintf(path, sizeof(path), FIXTURES "/%s", name);
	return (unsigned char *) rt_read_file(path, len);
}

/*
 * Decode and compare with a PPM reference: the largest |difference| over the
 * RGB samples (grey replicated, alpha dropped), or -1 on a size mismatch or
 * decode failure (reported).
 */
static int
decode_against(const char *file, const char *ppm, const cm_decode_options *opt)
{
	size_t		len;
	unsigned char *bytes = fixture_bytes(file, &len);
	char		path[512];
	int			w,
				h,
				worst = 0;
	unsigned char *ref;
	cm_decoded_image img;
	cm_error	err = {0};

	snprintf(path, sizeof(path), FIXTURES "/%s", ppm);
	ref = read_ppm(path, &w, &h);
	RT_CHECK(bytes != NULL && ref != NULL, "%s / %s: fixture missing", file, ppm);
	if (bytes == NULL || ref == NULL)
	{
		free(bytes);
		free(ref);
		return -1;
	}
	if (cm_image_decode(bytes, len, opt, &img, &err) != CM_OK)
	{
		RT_CHECK(false, "%s: %s", file, err.message);
		worst = -1;
	}
	else
	{
		if (img.width != w || img.height != h)
		{
			RT_CHECK(false, "%s: decoded %dx%d, PIL %dx%d", file, img.width, img.height, w, h);
			worst = -1;
		}
		else
			for (size_t i = 0; i < (size_t) w * h; i++)
				for (int c = 0; c < 3; c++)
				{
					int			got = img.pixels[i * img.stride + (img.colours == 1 ? 0 : c)];
					int			d = abs(got - ref[i * 3 + c]);

					if (d > worst)
						worst = d;
				}
		cm_decoded_image_free(&img);
	}
	free(bytes);
	free(ref);
	return worst;
}

/* --------------------------------------------------------- pixels */

static void
test_pixels(void)
{
	cm_decode_options opt = {0};
	int			worst_all = 0;

	opt.exact = true;
	printf("pixels against PIL 9.4 (max |difference|, 0..255; composited on white / black):\n");
	for (int i = 0; i < n_fixtures; i++)
	{
		const fixture *f = &fixtures[i];
		int			d = decode_against(f->file, f->expect, &opt),
					dw = 0,
					db = 0;

		if (f->white)
		{
			opt.background = CM_BACKGROUND_WHITE;
			dw = decode_against(f->file, f->white, &opt);
			opt.background = CM_BACKGROUND_BLACK;
			db = decode_against(f->file, f->black, &opt);
			opt.background = CM_BACKGROUND_NONE;
		}
		if (f->white)
			printf("  %-26s %d  (%d / %d)\n", f->file, d, dw, db);
		else
			printf("  %-26s %d\n", f->file, d);
		RT_CHECK(d == 0 && dw == 0 && db == 0, "%s: max difference %d (white %d, black %d)",
				 f->file, d, dw, db);
		if (d > worst_all)
			worst_all = d;
	}
	printf("  all %d fixtures: max difference %d\n", n_fixtures, worst_all);
}

/* With orientation ignored, a rotated fixture decodes as the stored image. */
static void
test_orientation_ignored(void)
{
	static const char *const pairs[][2] = {
		{"jpeg_exif2.jpg", "jpeg_exif1.jpg.ppm"}, {"jpeg_exif3.jpg", "jpeg_exif1.jpg.ppm"},
		{"jpeg_exif4.jpg", "jpeg_exif1.jpg.ppm"}, {"jpeg_exif5.jpg", "jpeg_exif1.jpg.ppm"},
		{"jpeg_exif6.jpg", "jpeg_exif1.jpg.ppm"}, {"jpeg_exif7.jpg", "jpeg_exif1.jpg.ppm"},
		{"jpeg_exif8.jpg", "jpeg_exif1.jpg.ppm"}, {"jpeg_exif6_mm_long.jpg", "jpeg_exif1.jpg.ppm"},
		{"png_exif6.png", "png_rgb.png.ppm"}, {"png_rawprofile8.png", "png_rgb.png.ppm"},
		{"png_xmp3.png", "png_rgb.png.ppm"}, {"webp_exif6.webp", "webp_lossy.webp.ppm"},
		{"tiff_orient6.tif", "tiff_rgb_lzw.tif.ppm"},
	};
	cm_decode_options opt = {0};
	cm_image_info info;
	size_t		len;
	unsigned char *b;

	opt.exact = true;
	opt.ignore_orientation = true;
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
		RT_CHECK(decode_against(pairs[i][0], pairs[i][1], &opt) == 0,
				 "%s with orientation ignored differs from %s", pairs[i][0], pairs[i][1]);

	/* the probe reports the size after orientation */
	b = fixture_bytes("jpeg_exif6.jpg", &len);
	opt.ignore_orientation = false;
	RT_CHECK(b && cm_image_probe(b, len, &opt, &info, NULL) == CM_OK && info.orientation == 6 &&
			 info.width == 23 && info.height == 37, "probe of jpeg_exif6: %dx%d, orientation %d",
			 info.width, info.height, info.orientation);
	opt.ignore_orientation = true;
	RT_CHECK(b && cm_image_probe(b, len, &opt, &info, NULL) == CM_OK && info.orientation == 1 &&
			 info.width == 37, "probe of jpeg_exif6, orientation ignored");
	free(b);
}

/* ------------------------------------------------------- embeddings */

static void
test_embeddings(void)
{
	static const char *const models[] = {"tiny-clip-quickgelu-f32", "tiny-clip-gelu-p16-f16"};

	printf("golden-model embeddings of our pixels against PIL's (lowest cosine):\n");
	for (size_t m = 0; m < sizeof(models) / sizeof(models[0]); m++)
	{
		char		dir[256];
		cm_error	err = {0};
		cm_model   *model;
		cm_model_info info;
		cm_run_options run = {0};
		double		lowest = 1.0;
		const char *lowest_file = "";

		snprintf(dir, sizeof(dir), GOLDEN "/%s", models[m]);
		model = cm_model_load(dir, NULL, &err);
		RT_CHECK(model != NULL, "load %s: %s", dir, err.message);
		if (model == NULL)
			continue;
		cm_model_get_info(model, &info);
		run.image_decode = CM_DECODE_EXACT;
		for (int i = 0; i < n_fixtures; i++)
		{
			char		path[512];
			int			w,
						h;
			size_t		len = 0;
			unsigned char *bytes = fixture_bytes(fixtures[i].file, &len),
					   *ref;
			buf			png = {NULL, 0};
			float	   *emb = malloc(sizeof(float) * 2 * info.embed_dim);
			const unsigned char *inputs[2];
			size_t		lens[2];
			double		cosine;

			snprintf(path, sizeof(path), FIXTURES "/%s", fixtures[i].expect);
			ref = read_ppm(path, &w, &h);
			if (bytes == NULL || ref == NULL)
			{
				RT_CHECK(false, "%s: fixture missing", fixtures[i].file);
				free(bytes);
				free(ref);
				free(emb);
				continue;
			}
			png = make_png((uint32_t) w, (uint32_t) h, 8, 2, ref);
			inputs[0] = bytes;
			lens[0] = len;
			inputs[1] = png.p;
			lens[1] = png.len;
			if (cm_encode_images(model, NULL, inputs, lens, 2, &run, emb, &err) != CM_OK)
				RT_CHECK(false, "%s / %s: %s", models[m], fixtures[i].file, err.message);
			else
			{
				cosine = rt_cosine(emb, emb + info.embed_dim, info.embed_dim);
				RT_CHECK(cosine > 0.99999, "%s / %s: cosine %.7f", models[m], fixtures[i].file, cosine);
				if (cosine < lowest)
				{
					lowest = cosine;
					lowest_file = fixtures[i].file;
				}
			}
			free(png.p);
			free(bytes);
			free(ref);
			free(emb);
		}
		printf("  %-24s %.7f (%s)\n", models[m], lowest, lowest_file);
		cm_model_free(model);
	}
}

/* ------------------------------------------------------- truncations */

/* Where a GIF's first image data ends (its blocks walked); len if it does not. */
static size_t
gif_first_image_end(const unsigned char *b, size_t len)
{
	size_t		i = 13;

	if (len < 13)
		return len;
	if (b[10] & 0x80)
		i += (size_t) 3 * (2 << (b[10] & 7));
	while (i < len)
	{
		bool		image = b[i] == 0x2C;

		if (image)
		{
			if (i + 10 > len)
				return len;
			if (b[i + 9] & 0x80)
				i += (size_t) 3 * (2 << (b[i + 9] & 7));
			i += 11;
		}
		else
			i += 2;				/* extension introducer and label */
		while (i < len && b[i] != 0)
			i += b[i] + 1;
		i++;
		if (image)
			return i < len ? i : len;
	}
	return len;
}

/*
 * How many trailing bytes a prefix may lack and still decode, because what
 * it lacks is not pixel data (PIL reads these too): a PNG's IEND chunk, a
 * JPEG's end-of-image marker, a GIF's trailer or the frames after its first,
 * a TGA's footer, a TIFF's pointer to a next directory.
 */
static size_t
tail_allowed(const char *file, const unsigned char *b, size_t len)
{
	const char *ext = strrchr(file, '.');

	if (strcmp(ext, ".png") == 0)
		return 12;
	if (strcmp(ext, ".jpg") == 0)
		return 2;
	if (strcmp(ext, ".gif") == 0)
		return len - gif_first_image_end(b, len);
	if (strcmp(ext, ".tga") == 0 && len >= 26 && memcmp(b + len - 18, "TRUEVISION-XFILE.", 17) == 0)
		return 26;				/* the TGA 2.0 footer */
	if (strcmp(ext, ".tif") == 0 && len >= 8 && b[0] == 'I')
	{
		/* the next-directory offset, when the first directory ends the file */
		size_t		ifd = b[4] | b[5] << 8 | (size_t) b[6] << 16 | (size_t) b[7] << 24;

		if (ifd + 2 <= len && ifd + 2 + 12 * (size_t) (b[ifd] | b[ifd + 1] << 8) + 4 == len)
			return 4;
	}
	return 0;
}

/*
 * Every strict prefix of a fixture (in steps of `step` bytes) is refused
 * with CM_ERR_INPUT, except those that only lack what tail_allowed says.
 */
static void
test_prefixes_of(const char *file, size_t step)
{
	size_t		len,
				tail_ok;
	unsigned char *bytes = fixture_bytes(file, &len);
	cm_decode_options opt = {0};
	int			decoded = 0,
				wrong = 0;

	opt.max_pixels = 1u << 20;
	if (bytes == NULL)
	{
		RT_CHECK(false, "%s: fixture missing", file);
		return;
	}
	tail_ok = tail_allowed(file, bytes, len);
	for (size_t n = 0; n < len; n += step)
	{
		unsigned char *prefix = malloc(n ? n : 1);	/* exactly n bytes: ASan sees overreads */
		cm_decoded_image img;
		cm_error	err = {0};
		cm_status	s;

		memcpy(prefix, bytes, n);
		s = cm_image_decode(prefix, n, &opt, &img, &err);
		if (s == CM_OK)
		{
			decoded += n + tail_ok < len;
			if (n + tail_ok < len)
				fprintf(stderr, "  %s: prefix of %zu / %zu bytes decoded\n", file, n, len);
			cm_decoded_image_free(&img);
		}
		else if (s != CM_ERR_INPUT || err.message[0] == '\0')
		{
			wrong++;
			fprintf(stderr, "  %s: prefix of %zu bytes: status %d: %s\n", file, n, s, err.message);
		}
		free(prefix);
	}
	RT_CHECK(decoded == 0, "%s: %d truncated prefixes decoded", file, decoded);
	RT_CHECK(wrong == 0, "%s: %d truncations without CM_ERR_INPUT", file, wrong);
	free(bytes);
}

static void
test_prefixes(void)
{
	/* every prefix of one or more fixtures per decoding path */
	test_prefixes_of("jpeg_420.jpg", 1);
	test_prefixes_of("jpeg_progressive.jpg", 1);
	test_prefixes_of("jpeg_ycck.jpg", 1);
	test_prefixes_of("jpeg_arithmetic.jpg", 1);
	test_prefixes_of("png_interlaced.png", 1);
	test_prefixes_of("png_palette_short.png", 1);
	test_prefixes_of("gif_animated.gif", 1);
	test_prefixes_of("gif_palette.gif", 1);
	test_prefixes_of("bmp_565.bmp", 1);
	test_prefixes_of("bmp_palette4.bmp", 1);
	test_prefixes_of("tga_rgb_rle.tga", 1);
	test_prefixes_of("tga_palette.tga", 1);
	test_prefixes_of("webp_lossy.webp", 1);
	test_prefixes_of("webp_alpha_lossless.webp", 1);
	test_prefixes_of("webp_animated.webp", 1);
	test_prefixes_of("tiff_rgb_lzw.tif", 1);
	test_prefixes_of("tiff_tiled_lzw.tif", 1);
	test_prefixes_of("tiff_rgb_jpeg.tif", 1);
	test_prefixes_of("tiff_ycbcr_lzw.tif", 1);
	/* the rest in steps */
	for (int i = 0; i < n_fixtures; i++)
		test_prefixes_of(fixtures[i].file, 13);
}

/* ------------------------------------------------------- bombs */

static void
expect_decode(const unsigned char *b, size_t len, uint64_t max_pixels, cm_status want,
			  const char *needle, const char *what)
{
	cm_decode_options opt = {0};
	cm_decoded_image img;
	cm_error	err = {0};
	cm_status	s;

	opt.max_pixels = max_pixels;
	s = cm_image_decode(b, len, &opt, &img, &err);
	if (s == CM_OK)
		cm_decoded_image_free(&img);
	RT_CHECK(s == want, "%s: status %d, want %d (%s)", what, s, want, s == CM_OK ? "ok" : err.message);
	if (s != CM_OK && needle)
		RT_CHECK(strstr(err.message, needle) != NULL, "%s: \"%s\" lacks \"%s\"", what, err.message, needle);
}

static void
put_le16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char) v;
	p[1] = (unsigned char) (v >> 8);
}

static void
put_le32(unsigned char *p, uint32_t v)
{
	put_le16(p, v & 0xFFFF);
	put_le16(p + 2, v >> 16);
}

static void
test_bombs(void)
{
	size_t		len;
	unsigned char *b;
	const uint64_t limit = 4u << 20;

	/*
	 * JPEG whose frame header claims 3000 x 3000.  Without a pixel limit it
	 * decodes: libjpeg fills the blocks its data lacks (a warning, which PIL
	 * ignores too), and the end-of-image marker is there.
	 */
	b = fixture_bytes("jpeg_444.jpg", &len);
	if (b)
	{
		for (size_t i = 2; i + 9 < len; i++)
			if (b[i] == 0xFF && b[i + 1] == 0xC0)
			{
				b[i + 5] = b[i + 7] = 3000 >> 8;
				b[i + 6] = b[i + 8] = 3000 & 0xFF;
				break;
			}
		expect_decode(b, len, limit, CM_ERR_LIMIT, "3000x3000", "JPEG claiming 3000x3000");
		expect_decode(b, len, 0, CM_OK, NULL, "JPEG claiming 3000x3000, no pixel limit");
		free(b);
	}

	/* TGA of 65535 x 65535 with a few bytes of pixels */
	{
		unsigned char tga[18 + 64] = {0, 0, 2};

		put_le16(tga + 12, 65535);
		put_le16(tga + 14, 65535);
		tga[16] = 24;
		expect_decode(tga, sizeof(tga), limit, CM_ERR_LIMIT, "65535x65535", "TGA 65535x65535");
		tga[2] = 10;			/* RLE: 128 pixels per 4 bytes */
		put_le16(tga + 12, 2000);
		put_le16(tga + 14, 2000);
		expect_decode(tga, sizeof(tga), limit, CM_ERR_INPUT, "truncated", "RLE TGA 2000x2000, 64 bytes");
	}

	/* BMP of 50000 x 50000 */
	b = fixture_bytes("bmp_rgb24.bmp", &len);
	if (b)
	{
		put_le32(b + 18, 50000);
		put_le32(b + 22, 50000);
		expect_decode(b, len, limit, CM_ERR_LIMIT, "50000x50000", "BMP 50000x50000");
		put_le32(b + 18, 2000);
		put_le32(b + 22, 2000);
		expect_decode(b, len, limit, CM_ERR_INPUT, "truncated", "BMP 2000x2000 with 37x23 of data");
		free(b);
	}

	/*
	 * Animated WebP whose VP8X canvas is 16383 x 16383 (the format's
	 * largest; a still image's canvas must match its bitstream).
	 */
	b = fixture_bytes("webp_animated.webp", &len);
	if (b && len > 30 && memcmp(b + 12, "VP8X", 4) == 0)
	{
		b[24] = b[27] = 0xFE;
		b[25] = b[28] = 0x3F;
		b[26] = b[29] = 0;
		expect_decode(b, len, limit, CM_ERR_LIMIT, "16383x16383", "WebP canvas 16383x16383");
	}
	free(b);

	/* TIFF whose IFD says 60000 x 60000 */
	b = fixture_bytes("tiff_rgb_none.tif", &len);
	if (b && b[0] == 'I')
	{
		uint32_t	ifd = b[4] | b[5] << 8 | (uint32_t) b[6] << 16 | (uint32_t) b[7] << 24;
		unsigned	n = b[ifd] | b[ifd + 1] << 8;

		for (unsigned e = 0; e < n; e++)
		{
			unsigned char *ent = b + ifd + 2 + 12 * e;
			unsigned	tag = ent[0] | ent[1] << 8;

			if (tag == 256 || tag == 257)
			{
				put_le16(ent + 2, 4);	/* LONG */
				put_le32(ent + 4, 1);
				put_le32(ent + 8, 60000);
			}
		}
		expect_decode(b, len, limit, CM_ERR_LIMIT, "60000x60000", "TIFF 60000x60000");
		expect_decode(b, len, 0, CM_ERR_INPUT, "TIFF", "TIFF 60000x60000 without its strips, no limit");
	}
	free(b);

	/* PNG 100000 x 100000: over the side limit even without a pixel limit */
	{
		buf			png = make_png(100000, 100000, 8, 2, NULL);

		expect_decode(png.p, png.len, 0, CM_ERR_LIMIT, "65535", "PNG 100000x100000");
		free(png.p);
	}
}

/* ------------------------------------------------------- unsupported */

/* Valid images of kinds not read: CM_ERR_UNSUPPORTED with the reason. */
static void
test_unsupported(void)
{
	static const unsigned char avif[] = {0, 0, 0, 0x1c, 'f', 't', 'y', 'p', 'a', 'v', 'i', 'f', 0, 0, 0, 0,
	'm', 'i', 'f', '1', 'm', 'i', 'a', 'f', 'a', 'v', 'i', 'f', 0, 0, 0, 8};
	static const unsigned char heic[] = {0, 0, 0, 0x18, 'f', 't', 'y', 'p', 'h', 'e', 'i', 'c', 0, 0, 0, 0,
	'm', 'i', 'f', '1', 'h', 'e', 'i', 'c', 0, 0, 0, 8};
	size_t		len;
	unsigned char *b;

	expect_decode(avif, sizeof(avif), 0, CM_ERR_UNSUPPORTED, "AVIF and HEIC", "AVIF");
	expect_decode(heic, sizeof(heic), 0, CM_ERR_UNSUPPORTED, "AVIF and HEIC", "HEIC");

	/* a TIFF compression outside the list (34712, JPEG 2000) */
	b = fixture_bytes("tiff_rgb_none.tif", &len);
	if (b && b[0] == 'I')
	{
		uint32_t	ifd = b[4] | b[5] << 8 | (uint32_t) b[6] << 16 | (uint32_t) b[7] << 24;
		unsigned	n = b[ifd] | b[ifd + 1] << 8;

		for (unsigned e = 0; e < n; e++)
		{
			unsigned char *ent = b + ifd + 2 + 12 * e;

			if ((ent[0] | ent[1] << 8) == 259)
				put_le16(ent + 8, 34712);
		}
		expect_decode(b, len, 0, CM_ERR_UNSUPPORTED, "compression 34712", "TIFF in JPEG 2000");
	}
	free(b);

	/* an RLE8 BMP */
	b = fixture_bytes("bmp_palette8.bmp", &len);
	if (b)
	{
		put_le32(b + 30, 1);
		expect_decode(b, len, 0, CM_ERR_UNSUPPORTED, "RLE", "RLE8 BMP");
	}
	free(b);
}

/* ------------------------------------------------------- reduced scale */

/* A smooth synthetic photo of w x h, RGB. */
static unsigned char *
synthetic_photo(int w, int h)
{
	unsigned char *px = malloc((size_t) w * h * 3);

	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++)
		{
			unsigned char *p = px + ((size_t) y * w + x) * 3;
			double		fx = (double) x / w,
						fy = (double) y / h;

			p[0] = (unsigned char) (127 + 120 * sin(6.3 * fx + 2 * fy));
			p[1] = (unsigned char) (127 + 120 * cos(9.1 * fy * fx + 1));
			p[2] = (unsigned char) ((x / 40 + y / 40) % 2 ? 220 : 40);
		}
	return px;
}

/* JPEG of px with an APP1 EXIF orientation (0: none). */
static unsigned char *
encode_jpeg(const unsigned char *px, int w, int h, int orientation, size_t *len)
{
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr e;
	unsigned char *out = NULL;
	unsigned long size = 0;

	c.err = jpeg_std_error(&e);
	jpeg_create_compress(&c);
	jpeg_mem_dest(&c, &out, &size);
	c.image_width = (JDIMENSION) w;
	c.image_height = (JDIMENSION) h;
	c.input_components = 3;
	c.in_color_space = JCS_RGB;
	jpeg_set_defaults(&c);
	jpeg_set_quality(&c, 90, TRUE);
	jpeg_start_compress(&c, TRUE);
	if (orientation)
	{
		unsigned char exif[] = {'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 42, 0, 8, 0, 0, 0,
			1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, (unsigned char) orientation, 0, 0, 0, 0, 0, 0, 0};

		jpeg_write_marker(&c, JPEG_APP0 + 1, exif, sizeof(exif));
	}
	for (int y = 0; y < h; y++)
	{
		JSAMPROW	row = (JSAMPROW) (px + (size_t) y * w * 3);

		jpeg_write_scanlines(&c, &row, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	*len = size;
	return out;
}

static cm_image_params
clip_params(void)
{
	cm_image_params p;

	memset(&p, 0, sizeof(p));
	p.shortest_edge = 224;
	p.crop_height = p.crop_width = 224;
	p.do_resize = p.do_center_crop = true;
	p.rescale_factor = 1.0f / 255.0f;
	p.mean[0] = p.mean[1] = p.mean[2] = 0.0f;
	p.std[0] = p.std[1] = p.std[2] = 1.0f / 255.0f;	/* output in 0..255 units */
	p.max_pixels = 64u << 20;
	return p;
}

static void
compare_reduced(const char *what, const unsigned char *bytes, size_t len, int want_reduce,
				double max_mean)
{
	cm_image_params p = clip_params();
	size_t		n = 3 * 224 * 224;
	float	   *exact = malloc(n * sizeof(float)),
			   *fast = malloc(n * sizeof(float));
	cm_decode_options opt = {0};
	cm_decoded_image img;
	cm_error	err = {0};
	double		sum = 0,
				max = 0;

	p.exact_decode = true;
	RT_CHECK(cm_image_preprocess(bytes, len, &p, exact, &err) == CM_OK, "%s exact: %s", what, err.message);
	p.exact_decode = false;
	RT_CHECK(cm_image_preprocess(bytes, len, &p, fast, &err) == CM_OK, "%s reduced: %s", what, err.message);
	for (size_t i = 0; i < n; i++)
	{
		double		d = fabs((double) exact[i] - fast[i]);

		sum += d;
		if (d > max)
			max = d;
	}
	printf("  %-34s mean %.3f, max %.1f (0..255 units)\n", what, sum / n, max);
	RT_CHECK(sum / n < max_mean, "%s: reduced-scale pixels differ by %.3f on average", what, sum / n);

	/* the decode did reduce, by the expected factor, and kept the full geometry */
	opt.target_width = 224;
	opt.target_height = 224;
	if (cm_image_decode(bytes, len, &opt, &img, &err) == CM_OK)
	{
		RT_CHECK(img.reduce == want_reduce, "%s: reduce %d, want %d", what, img.reduce, want_reduce);
		RT_CHECK(img.width == (img.full_width + img.reduce - 1) / img.reduce,
				 "%s: %d px wide at 1/%d of %d", what, img.width, img.reduce, img.full_width);
		cm_decoded_image_free(&img);
	}
	else
		RT_CHECK(false, "%s: %s", what, err.message);
	free(exact);
	free(fast);
}

static void
test_reduced(void)
{
	int			w = 1800,
				h = 1350;
	unsigned char *px = synthetic_photo(w, h);
	size_t		len;
	unsigned char *jpeg;
	uint8_t    *webp = NULL;

	printf("reduced-scale decode against the exact decode (224 px model input):\n");
	/* 1350 / 4 = 338 >= 2 x 224? no: 1/2 (675) is the largest that keeps 2x */
	jpeg = encode_jpeg(px, w, h, 0, &len);
	compare_reduced("JPEG 1800x1350", jpeg, len, 2, 1.0);
	free(jpeg);
	jpeg = encode_jpeg(px, w, h, 6, &len);
	compare_reduced("JPEG 1800x1350, EXIF orientation 6", jpeg, len, 2, 1.0);
	free(jpeg);
	len = WebPEncodeRGB(px, w, h, w * 3, 90, &webp);
	RT_CHECK(len > 0, "WebP encode");
	if (len > 0)
		compare_reduced("WebP 1800x1350", webp, len, 2, 1.0);
	WebPFree(webp);
	free(px);

	/* 4000 x 3000: 1/4 keeps 750 >= 2 x 224 */
	w = 4000, h = 3000;
	px = synthetic_photo(w, h);
	jpeg = encode_jpeg(px, w, h, 0, &len);
	compare_reduced("JPEG 4000x3000", jpeg, len, 4, 1.0);
	free(jpeg);
	free(px);
}

/* ------------------------------------------------------- cancellation */

static bool
cancel_now(void *ctx)
{
	(*(int *) ctx)++;
	return true;
}

/* JPEG (libjpeg's progress monitor) and TIFF (between strips) stop midway. */
static void
test_cancel(void)
{
	static const char *const files[] = {"jpeg_progressive.jpg", "tiff_rgb_lzw.tif"};
	cm_image_params p = clip_params();
	float	   *out = malloc(sizeof(float) * 3 * 224 * 224);

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
	{
		size_t		len;
		unsigned char *b = fixture_bytes(files[i], &len);
		cm_error	err = {0};
		int			polls = 0;

		p.cancel = cancel_now;
		p.cancel_ctx = &polls;
		RT_CHECK(b && cm_image_preprocess(b, len, &p, out, &err) == CM_ERR_CANCELLED && polls > 0,
				 "%s: cancel callback honoured (%d polls): %s", files[i], polls, err.message);
		p.cancel = NULL;
		RT_CHECK(b && cm_image_preprocess(b, len, &p, out, &err) == CM_OK, "%s: decodes after", files[i]);
		free(b);
	}
	free(out);
}

int
main(void)
{
	if (!load_manifest())
	{
		fprintf(stderr, "cannot read " FIXTURES "/manifest.json\n");
		return 1;
	}
	test_pixels();
	test_orientation_ignored();
	test_embeddings();
	test_prefixes();
	test_bombs();
	test_unsupported();
	test_reduced();
	test_cancel();
	free(fixtures);
	cJSON_Delete(manifest_json);
	return rt_summary("test_image_formats");
}
