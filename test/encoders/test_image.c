/*
 * test_image.c
 *	  Image decoding and CLIP preprocessing against Hugging Face's
 *	  CLIPImageProcessor output (test/golden), plus hostile and edge inputs.
 *
 * Run from the repository root (make -C encoders test does).
 */
#include <cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "image_decode.h"
#include "safetensors.h"

#include "image_test_util.h"

static int	n_passed;
static int	n_failed;

#define CHECK(cond, ...) \
	do { \
		if (cond) \
			n_passed++; \
		else \
		{ \
			n_failed++; \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__); \
			fputc('\n', stderr); \
		} \
	} while (0)

#define GOLDEN "test/golden"
#define CORPUS "test/fuzz/corpus/fuzz_image"

/* ---------------------------------------------------------------- helpers */

static unsigned char *
read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	unsigned char *data = NULL;
	long		n;

	*len = 0;
	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0)
	{
		data = malloc((size_t) n + 1);
		if (data && fread(data, 1, (size_t) n, f) != (size_t) n)
		{
			free(data);
			data = NULL;
		}
		else if (data)
			*len = (size_t) n;
	}
	fclose(f);
	return data;
}

/* preprocessor_config.json -> cm_image_params, as a model loader would. */
static bool
load_params(const char *model, cm_image_params *p)
{
	char		path[512];
	size_t		len;
	unsigned char *text;
	cJSON	   *root,
			   *size,
			   *crop,
			   *mean,
			   *std;
	bool		ok = false;
	int			c;

	snprintf(path, sizeof(path), GOLDEN "/%s/preprocessor_config.json", model);
	text = read_file(path, &len);
	if (text == NULL)
		return false;
	root = cJSON_ParseWithLength((const char *) text, len);
	free(text);
	if (root == NULL)
		return false;
	memset(p, 0, sizeof(*p));
	size = cJSON_GetObjectItem(root, "size");
	crop = cJSON_GetObjectItem(root, "crop_size");
	mean = cJSON_GetObjectItem(root, "image_mean");
	std = cJSON_GetObjectItem(root, "image_std");
	if (size && crop && cJSON_GetArraySize(mean) == 3 && cJSON_GetArraySize(std) == 3)
	{
		p->shortest_edge = cJSON_GetObjectItem(size, "shortest_edge")->valueint;
		p->crop_height = cJSON_GetObjectItem(crop, "height")->valueint;
		p->crop_width = cJSON_GetObjectItem(crop, "width")->valueint;
		p->do_resize = cJSON_IsTrue(cJSON_GetObjectItem(root, "do_resize"));
		p->do_center_crop = cJSON_IsTrue(cJSON_GetObjectItem(root, "do_center_crop"));
		p->rescale_factor = (float) cJSON_GetObjectItem(root, "rescale_factor")->valuedouble;
		for (c = 0; c < 3; c++)
		{
			p->mean[c] = (float) cJSON_GetArrayItem(mean, c)->valuedouble;
			p->std[c] = (float) cJSON_GetArrayItem(std, c)->valuedouble;
		}
		p->max_pixels = 64u << 20;
		ok = true;
	}
	cJSON_Delete(root);
	return ok;
}

static cm_image_params
small_params(int edge)
{
	cm_image_params p;

	memset(&p, 0, sizeof(p));
	p.shortest_edge = edge;
	p.crop_height = edge;
	p.crop_width = edge;
	p.do_resize = true;
	p.do_center_crop = true;
	p.rescale_factor = 1.0f / 255.0f;
	p.mean[0] = 0.48145466f;
	p.mean[1] = 0.4578275f;
	p.mean[2] = 0.40821073f;
	p.std[0] = 0.26862954f;
	p.std[1] = 0.26130258f;
	p.std[2] = 0.27577711f;
	p.max_pixels = 4u << 20;
	return p;
}

static float
normalised(const cm_image_params *p, int c, int v)
{
	float		scaled = (float) ((double) v * (double) p->rescale_factor);

	return (scaled - p->mean[c]) / p->std[c];
}

static size_t
out_floats(const cm_image_params *p)
{
	return (size_t) 3 * p->crop_height * p->crop_width;
}

/* Preprocess into a fresh buffer; NULL (and err filled) on failure. */
static float *
preprocess(const unsigned char *b, size_t len, const cm_image_params *p, cm_error *err)
{
	float	   *out = malloc(out_floats(p) * sizeof(float));

	if (out && cm_image_preprocess(b, len, p, out, err) != CM_OK)
	{
		free(out);
		return NULL;
	}
	return out;
}

/* ------------------------------------------------------ golden comparison */

/*
 * Pixel-value tolerances, in 0..255 units, per source format.
 *
 * PNG, GIF and BMP are lossless: stb_image decodes exactly the samples PIL
 * does, and the resampler reproduces Pillow's fixed-point arithmetic bit for
 * bit, so what is left is float rounding in the normalisation: measured mean
 * 9e-6, max 3.2e-5 (one float ulp, from the rescale factor arriving as a
 * float rather than Python's double).
 *
 * JPEG goes through libjpeg-turbo with PIL's settings, the library that made
 * the reference's pixels: the same figures as the lossless formats.
 */
typedef struct golden_tolerance
{
	const char *suffix;
	double		mean;			/* mean |difference| */
	double		max;			/* max |difference| */
} golden_tolerance;

static const golden_tolerance tolerances[] = {
	{".png", 1e-4, 1e-4},
	{".gif", 1e-4, 1e-4},
	{".bmp", 1e-4, 1e-4},
	{".jpg", 1e-4, 1e-4},
};

static const golden_tolerance *
tolerance_for(const char *name)
{
	size_t		n = strlen(name),
				i;

	for (i = 0; i < sizeof(tolerances) / sizeof(tolerances[0]); i++)
	{
		size_t		s = strlen(tolerances[i].suffix);

		if (n > s && strcmp(name + n - s, tolerances[i].suffix) == 0)
			return &tolerances[i];
	}
	return NULL;
}

static const char *const golden_models[] = {"tiny-clip-quickgelu-f32", "tiny-clip-gelu-p16-f16"};

static void
test_golden(void)
{
	cm_error	err;
	cm_safetensors *st = cm_safetensors_open(GOLDEN "/pixel_values.safetensors", &err);
	size_t		elen;
	unsigned char *etext = read_file(GOLDEN "/expected.json", &elen);
	cJSON	   *expected = etext ? cJSON_ParseWithLength((const char *) etext, elen) : NULL;
	cJSON	   *images = cJSON_GetObjectItem(expected, "images");
	int			n_images = cJSON_GetArraySize(images);
	size_t		m;

	CHECK(st != NULL, "open pixel_values.safetensors: %s", st ? "" : err.message);
	CHECK(n_images == 10, "expected.json lists %d images, want 10", n_images);
	if (st == NULL || n_images <= 0)
		goto done;

	printf("golden pixel differences, 0..255 units (mean / max):\n");
	for (m = 0; m < sizeof(golden_models) / sizeof(golden_models[0]); m++)
	{
		cm_image_params p;
		int			i;

		CHECK(load_params(golden_models[m], &p), "preprocessor_config.json of %s", golden_models[m]);
		for (i = 0; i < n_images; i++)
		{
			const char *name = cJSON_GetArrayItem(images, i)->valuestring;
			const golden_tolerance *tol = tolerance_for(name);
			char		key[256],
						path[512];
			const cm_tensor_view *t;
			size_t		len,
						n = out_floats(&p),
						j;
			unsigned char *bytes;
			float	   *ref,
					   *got;
			double		sum = 0,
						max = 0;

			snprintf(key, sizeof(key), "%s/%s", golden_models[m], name);
			snprintf(path, sizeof(path), GOLDEN "/images/%s", name);
			t = cm_safetensors_find(st, key);
			CHECK(t && t->ndim == 3 && t->shape[0] == 3 && t->shape[1] == p.crop_height &&
				  t->shape[2] == p.crop_width, "golden tensor %s [3,%d,%d]", key,
				  p.crop_height, p.crop_width);
			CHECK(tol != NULL, "tolerance for %s", name);
			bytes = read_file(path, &len);
			CHECK(bytes != NULL, "read %s", path);
			if (!t || t->n_elements != (int64_t) n || !tol || !bytes)
			{
				free(bytes);
				continue;
			}
			ref = malloc(n * sizeof(float));
			CHECK(cm_tensor_to_f32(t, ref, &err) == CM_OK, "read %s", key);
			got = preprocess(bytes, len, &p, &err);
			CHECK(got != NULL, "preprocess %s: %s", key, got ? "" : err.message);
			if (got)
			{
				for (j = 0; j < n; j++)
				{
					int			c = (int) (j / ((size_t) p.crop_height * p.crop_width));
					double		d = fabs((double) got[j] - ref[j]) * p.std[c] * 255.0;

					sum += d;
					if (d > max)
						max = d;
				}
				printf("  %-24s %-28s %9.6f / %9.6f\n", golden_models[m], name, sum / n, max);
				CHECK(sum / n <= tol->mean && max <= tol->max,
					  "%s: mean %.6f (limit %.6f), max %.6f (limit %.6f)", key,
					  sum / n, tol->mean, max, tol->max);
			}
			free(got);
			free(ref);
			free(bytes);
		}
	}
done:
	cm_safetensors_close(st);
	cJSON_Delete(expected);
	free(etext);
}

/* ------------------------------------------------------- hostile inputs */

static void
expect_status(const unsigned char *b, size_t len, const cm_image_params *p,
			  cm_status want, const char *needle, const char *what)
{
	cm_error	err;
	float	   *out = malloc(out_floats(p) * sizeof(float));
	cm_status	got;

	memset(&err, 0, sizeof(err));
	got = cm_image_preprocess(b, len, p, out, &err);
	CHECK(got == want, "%s: status %d, want %d (%s)", what, got, want,
		  got == CM_OK ? "ok" : err.message);
	if (got != CM_OK)
		CHECK(err.status == got && err.message[0] != '\0', "%s: error message set", what);
	if (needle && got != CM_OK)
		CHECK(strstr(err.message, needle) != NULL, "%s: message \"%s\" lacks \"%s\"",
			  what, err.message, needle);
	free(out);
}

/*
 * Every strict prefix must be refused with CM_ERR_INPUT, except the last
 * tail_ok ones, which may decode (a PNG missing only its IEND checksum, a GIF
 * missing only its trailer: the pixel data is complete).
 */
static void
test_prefixes(const char *path, size_t tail_ok, size_t step)
{
	cm_image_params p = small_params(16);
	size_t		len,
				n;
	unsigned char *bytes = read_file(path, &len);
	int			ok_count = 0,
				bad_status = 0;
	float	   *out = malloc(out_floats(&p) * sizeof(float));

	CHECK(bytes != NULL, "read %s", path);
	if (!bytes)
	{
		free(out);
		return;
	}
	for (n = 0; n < len; n += step)
	{
		/* a copy of exactly n bytes, so ASan sees any read past the end */
		unsigned char *prefix = malloc(n ? n : 1);
		cm_error	err;
		cm_status	s;

		memcpy(prefix, bytes, n);
		s = cm_image_preprocess(prefix, n, &p, out, &err);
		if (s == CM_OK)
			ok_count += n + tail_ok < len;
		else if (s != CM_ERR_INPUT)
		{
			bad_status++;
			fprintf(stderr, "  prefix %zu of %s: status %d: %s\n", n, path, s, err.message);
		}
		free(prefix);
	}
	CHECK(bad_status == 0, "%s: truncations give CM_ERR_INPUT", path);
	CHECK(ok_count == 0, "%s: %d truncated prefixes decoded without error", path, ok_count);
	CHECK(cm_image_preprocess(bytes, len, &p, out, NULL) == CM_OK, "%s: whole file decodes", path);
	free(out);
	free(bytes);
}

static void
test_hostile(void)
{
	cm_image_params p = small_params(64);
	unsigned char garbage[4096];
	unsigned int seed = 12345;
	size_t		i,
				len;
	buf			png;
	unsigned char *bytes;

	/* empty */
	expect_status(NULL, 0, &p, CM_ERR_INPUT, "no bytes", "NULL, 0 bytes");
	expect_status((const unsigned char *) "", 0, &p, CM_ERR_INPUT, "no bytes", "0 bytes");

	/* garbage, bare and behind each format's signature */
	for (i = 0; i < sizeof(garbage); i++)
	{
		seed = seed * 1103515245u + 12345u;
		garbage[i] = (unsigned char) (seed >> 16);
	}
	garbage[0] = 'x';
	expect_status(garbage, sizeof(garbage), &p, CM_ERR_INPUT, "unrecognised format", "random bytes");
	{
		static const char *const sigs[] = {"\x89PNG\r\n\x1a\n", "\xFF\xD8\xFF", "GIF89a", "BM"};
		int			s;

		for (s = 0; s < 4; s++)
		{
			unsigned char g[4096];
			cm_error	err;
			cm_status	st;
			float	   *out = malloc(out_floats(&p) * sizeof(float));

			memcpy(g, garbage, sizeof(g));
			memcpy(g, sigs[s], strlen(sigs[s]));
			st = cm_image_preprocess(g, sizeof(g), &p, out, &err);
			CHECK(st == CM_ERR_INPUT || st == CM_ERR_LIMIT || st == CM_OK,
				  "garbage after signature %d: status %d", s, st);
			if (st == CM_ERR_INPUT)
				CHECK(strstr(err.message, "invalid") != NULL, "garbage message: %s", err.message);
			free(out);
		}
	}

	/* truncations: every prefix of small PNG / JPEG / GIF / BMP files */
	test_prefixes(GOLDEN "/images/tiny_7x5.png", 4, 1);
	test_prefixes(GOLDEN "/images/gray_64x48.png", 4, 1);
	test_prefixes(CORPUS "/small_16x12.jpg", 0, 1);
	test_prefixes(CORPUS "/small_prog_16x12.jpg", 0, 1);
	test_prefixes(CORPUS "/small_5x3.bmp", 0, 1);
	test_prefixes(CORPUS "/palette_6x4.gif", 1, 1);
	test_prefixes(GOLDEN "/images/palette_150x90.gif", 1, 1);
	test_prefixes(GOLDEN "/images/exact_224x224.bmp", 0, 997);

	/* decompression bombs: refused from the header, before decoding */
	png = make_png(100000, 100000, 8, 2, NULL);
	expect_status(png.p, png.len, &p, CM_ERR_LIMIT, "100000x100000", "100000x100000 PNG, 4 Mpx limit");
	p.max_pixels = 0;
	expect_status(png.p, png.len, &p, CM_ERR_LIMIT, "65535", "100000x100000 PNG, no pixel limit");
	free(png.p);
	p.max_pixels = 4u << 20;
	png = make_png(3000, 3000, 8, 6, NULL);
	expect_status(png.p, png.len, &p, CM_ERR_LIMIT, "4194304", "3000x3000 PNG over a 4 Mpx limit");
	free(png.p);
	png = make_png(0, 10, 8, 2, NULL);
	expect_status(png.p, png.len, &p, CM_ERR_INPUT, "PNG", "0x10 PNG");
	free(png.p);

	/* a 16x16 PNG whose zlib stream inflates to 8 MiB: allocation capped */
	bytes = read_file(CORPUS "/bomb_idat_16x16.png", &len);
	CHECK(bytes != NULL, "read bomb_idat_16x16.png");
	if (bytes)
		expect_status(bytes, len, &p, CM_ERR_INPUT, "more memory", "zlib bomb PNG");
	free(bytes);

	/* a chunk claiming 2 GB that is not there */
	png = make_png(4, 4, 8, 2, NULL);
	{
		buf			b = {NULL, 0};

		put(&b, png.p, 33);		/* signature + IHDR */
		put_be32(&b, 0x7ffffff0u);
		put(&b, "IDAT\0\0\0\0", 8);
		expect_status(b.p, b.len, &p, CM_ERR_INPUT, "PNG", "lying IDAT length");
		free(b.p);
	}
	free(png.p);

	/* CMYK JPEG: decoded (pixels against PIL in test_image_formats) */
	bytes = read_file(CORPUS "/cmyk_8x8.jpg", &len);
	CHECK(bytes != NULL, "read cmyk_8x8.jpg");
	if (bytes)
		expect_status(bytes, len, &p, CM_OK, NULL, "CMYK JPEG");
	free(bytes);

	/* invalid parameters */
	{
		unsigned char px[3] = {1, 2, 3};
		cm_image_params q = small_params(8);

		png = make_png(1, 1, 8, 2, px);
		q.std[1] = 0;
		expect_status(png.p, png.len, &q, CM_ERR_MODEL, "std", "std = 0");
		q = small_params(8);
		q.shortest_edge = 0;
		expect_status(png.p, png.len, &q, CM_ERR_MODEL, "shortest_edge", "shortest_edge = 0");
		q = small_params(8);
		q.crop_width = 100000;
		expect_status(png.p, png.len, &q, CM_ERR_MODEL, "crop", "crop too large");
		q = small_params(8);
		q.do_center_crop = false;
		q.crop_width = 9;
		expect_status(png.p, png.len, &q, CM_ERR_INPUT, "does not crop", "no crop, wrong size");
		free(png.p);
	}
}

/* ------------------------------------------------ conversion and geometry */

static bool
same_output(const buf *a, const buf *b, const cm_image_params *p, const char *what)
{
	cm_error	err;
	float	   *x = preprocess(a->p, a->len, p, &err),
			   *y = preprocess(b->p, b->len, p, &err);
	bool		same = x && y && memcmp(x, y, out_floats(p) * sizeof(float)) == 0;

	CHECK(x && y, "%s: both decode", what);
	free(x);
	free(y);
	return same;
}

static void
test_conversions(void)
{
	enum
	{
		W = 13, H = 9
	};
	unsigned char grey[W * H],
				grey_alpha[W * H * 2],
				rgb_grey[W * H * 3],
				rgb[W * H * 3],
				rgba[W * H * 4],
				rgb16[W * H * 6];
	cm_image_params p = small_params(8);
	buf			a,
				b;
	int			i,
				c;

	for (i = 0; i < W * H; i++)
	{
		grey[i] = (unsigned char) (i * 37 + 11);
		grey_alpha[2 * i] = grey[i];
		grey_alpha[2 * i + 1] = (unsigned char) (i * 91);	/* alpha ramp */
		for (c = 0; c < 3; c++)
		{
			rgb_grey[3 * i + c] = grey[i];
			rgb[3 * i + c] = (unsigned char) (i * (c + 3) * 29 + c * 50);
			rgba[4 * i + c] = rgb[3 * i + c];
			rgb16[6 * i + 2 * c] = rgb[3 * i + c];	/* high byte */
			rgb16[6 * i + 2 * c + 1] = (unsigned char) (i * 7);
		}
		rgba[4 * i + 3] = (unsigned char) (255 - i);
	}

	/* grey is replicated to R = G = B, as PIL's convert("RGB") */
	a = make_png(W, H, 8, 0, grey);
	b = make_png(W, H, 8, 2, rgb_grey);
	CHECK(same_output(&a, &b, &p, "grey vs grey-as-RGB"), "grey PNG differs from the same grey as RGB");
	free(b.p);
	/* alpha is dropped, not composited */
	b = make_png(W, H, 8, 4, grey_alpha);
	CHECK(same_output(&a, &b, &p, "grey+alpha vs grey"), "grey+alpha PNG differs from grey");
	free(a.p);
	free(b.p);
	a = make_png(W, H, 8, 2, rgb);
	b = make_png(W, H, 8, 6, rgba);
	CHECK(same_output(&a, &b, &p, "RGBA vs RGB"), "RGBA PNG differs from RGB");
	free(b.p);
	/* 16-bit samples are reduced to their high byte */
	b = make_png(W, H, 16, 2, rgb16);
	CHECK(same_output(&a, &b, &p, "RGB16 vs RGB"), "16-bit PNG differs from its high bytes");
	free(a.p);
	free(b.p);
}

/*
 * GIF pixels stb leaves transparent black: the first frame's transparent
 * pixels and the screen outside the first image.  Expected: the RGB bytes of
 * PIL 9.4's Image.open(f).convert("RGB") for the same files (made with PIL:
 * a 12x8 palette GIF with index 3 transparent; the same placed at (1, 1) on
 * a 14x10 screen; and that one without a transparent index).
 */
static void
test_gif_palette_fill(void)
{
	static const char *const names[] = {"gif_transparent_12x8", "gif_offset_14x10",
	"gif_offset_opaque_14x10"};

	for (size_t f = 0; f < sizeof(names) / sizeof(names[0]); f++)
	{
		char		path[256];
		size_t		len,
					rgb_len;
		unsigned char *gif,
				   *rgb;
		cm_decoded_image img;
		cm_error	err = {0};
		size_t		differ = 0;

		snprintf(path, sizeof(path), "test/encoders/data/%s.gif", names[f]);
		gif = read_file(path, &len);
		snprintf(path, sizeof(path), "test/encoders/data/%s.rgb", names[f]);
		rgb = read_file(path, &rgb_len);
		CHECK(gif != NULL && rgb != NULL, "%s: fixture missing", names[f]);
		if (gif == NULL || rgb == NULL)
		{
			free(gif);
			free(rgb);
			continue;
		}
		CHECK(cm_image_decode(gif, len, &(cm_decode_options) {0}, &img, &err) == CM_OK,
			  "%s: %s", names[f], err.message);
		if (img.pixels != NULL)
		{
			CHECK(img.colours == 3 && (size_t) img.width * img.height * 3 == rgb_len,
				  "%s: decoded %dx%d with %d colours, expected %zu RGB bytes", names[f],
				  img.width, img.height, img.colours, rgb_len);
			if (img.colours == 3 && (size_t) img.width * img.height * 3 == rgb_len)
				for (size_t i = 0; i < rgb_len; i++)
					differ += img.pixels[i / 3 * img.stride + i % 3] != rgb[i];
			CHECK(differ == 0, "%s: %zu of %zu samples differ from PIL's convert(\"RGB\")",
				  names[f], differ, rgb_len);
			cm_decoded_image_free(&img);
		}
		free(gif);
		free(rgb);
	}
}

/*
 * open_clip's order (params.torchvision): the resize runs on the image in the
 * mode PIL opened it in, NEAREST for "P" and "1", premultiplied for "LA" and
 * "RGBA", and the crop starts at round((size - crop) / 2).  Expected: the
 * RGB bytes tools/openclip_image_reference.py computed with PIL 9.4 for the
 * files it wrote (manifest openclip_images.json); every sample must match.
 * The same images through transformers' order must differ for the modes
 * that matter, or the test would not show the order was followed.
 */
static void
test_openclip_order(void)
{
	size_t		len;
	char	   *text = (char *) read_file("test/encoders/data/openclip_images.json", &len);
	cJSON	   *root = text ? cJSON_ParseWithLength(text, len) : NULL;
	const cJSON *c;
	int			cases = 0;

	CHECK(root != NULL && cJSON_IsArray(root), "openclip_images.json missing or invalid");
	cJSON_ArrayForEach(c, root)
	{
		const char *name = cJSON_GetObjectItem(c, "image")->valuestring;
		const char *mode = cJSON_GetObjectItem(c, "mode")->valuestring;
		char		path[256];
		size_t		ilen,
					rgb_len;
		unsigned char *img,
				   *rgb;
		cm_image_params p = small_params(cJSON_GetObjectItem(c, "shortest_edge")->valueint);
		cm_error	err = {0};
		float	   *out,
				   *hf;
		size_t		differ = 0,
					differ_hf = 0;
		float		max_diff = 0;

		p.crop_height = p.crop_width = cJSON_GetObjectItem(c, "crop")->valueint;
		p.rescale_factor = 1.0f;
		for (int k = 0; k < 3; k++)
		{
			p.mean[k] = 0.0f;
			p.std[k] = 1.0f;
		}
		snprintf(path, sizeof(path), "test/encoders/data/%s", name);
		img = read_file(path, &ilen);
		snprintf(path, sizeof(path), "test/encoders/data/%s", cJSON_GetObjectItem(c, "rgb")->valuestring);
		rgb = read_file(path, &rgb_len);
		CHECK(img != NULL && rgb != NULL && rgb_len == out_floats(&p), "%s: fixture missing", name);
		if (img == NULL || rgb == NULL || rgb_len != out_floats(&p))
		{
			free(img);
			free(rgb);
			continue;
		}
		hf = preprocess(img, ilen, &p, &err);
		p.torchvision = true;
		out = preprocess(img, ilen, &p, &err);
		CHECK(out != NULL && hf != NULL, "%s: %s", name, err.message);
		for (size_t i = 0; out && hf && i < rgb_len; i++)
		{
			/* out is [3][crop][crop], rgb is [crop][crop][3] */
			size_t		plane = rgb_len / 3;
			size_t		at = (i % 3) * plane + i / 3;

			differ += out[at] != (float) rgb[i];
			differ_hf += hf[at] != (float) rgb[i];
			if (fabsf(out[at] - (float) rgb[i]) > max_diff)
				max_diff = fabsf(out[at] - (float) rgb[i]);
		}
		/*
		 * The resizer follows current Pillow's fixed-point precision, the
		 * reference is Pillow 9.4's: 1-2 units apart on ~1% of the samples
		 * of a bicubic resize (see image_resample.c); after premultiplied
		 * alpha, an alpha one unit apart moves a faint pixel's colour far.
		 * NEAREST paths must match exactly.
		 */
		if (strcmp(mode, "P") == 0 || strcmp(mode, "1") == 0)
			CHECK(differ == 0, "%s (PIL mode %s): %zu of %zu samples differ from open_clip's transform",
				  name, mode, differ, rgb_len);
		else
			CHECK(differ <= rgb_len / 100 && (strchr(mode, 'A') != NULL || max_diff <= 2),
				  "%s (PIL mode %s): %zu of %zu samples differ from open_clip's transform, by up to %g",
				  name, mode, differ, rgb_len, max_diff);
		if (differ_hf > 0)
			printf("  %-28s %-4s %3zu of %zu samples differ (transformers' order: %zu)\n", name, mode,
				   differ, rgb_len, differ_hf);
		if (strcmp(mode, "L") != 0 && strcmp(mode, "RGB") != 0 && strcmp(name, "openclip_rgba_16x16.png") != 0)
			CHECK(differ_hf > 0, "%s: transformers' order gives the same pixels: the case tests nothing",
				  name);
		cases++;
		free(out);
		free(hf);
		free(img);
		free(rgb);
	}
	CHECK(cases >= 10, "only %d open_clip image cases ran", cases);
	cJSON_Delete(root);
	free(text);
}

static void
test_geometry(void)
{
	unsigned char px[3] = {10, 200, 30};
	buf			one = make_png(1, 1, 8, 2, px);
	cm_image_params p = small_params(224);
	cm_error	err;
	float	   *out;
	int			c,
				y,
				x;
	bool		all = true;

	/* 1x1 upscaled to 224: every pixel is the one colour (weight exactly 1) */
	out = preprocess(one.p, one.len, &p, &err);
	CHECK(out != NULL, "1x1 PNG: %s", out ? "" : err.message);
	for (c = 0; out && c < 3; c++)
		for (y = 0; y < 224 * 224; y++)
			all = all && out[c * 224 * 224 + y] == normalised(&p, c, px[c]);
	CHECK(out && all, "1x1 PNG upscaled to a constant image");
	free(out);

	/*
	 * Crop larger than the resized image: HF pads with zeros, the image placed
	 * ceil((crop - size) / 2) pixels in.  5x5 in a 9 (high) x 8 (wide) crop:
	 * rows 2..6, columns 2..6 hold the colour.
	 */
	p = small_params(5);
	p.crop_height = 9;
	p.crop_width = 8;
	out = preprocess(one.p, one.len, &p, &err);
	CHECK(out != NULL, "padded crop: %s", out ? "" : err.message);
	all = true;
	for (c = 0; out && c < 3; c++)
		for (y = 0; y < 9; y++)
			for (x = 0; x < 8; x++)
			{
				bool		inside = y >= 2 && y < 7 && x >= 2 && x < 7;
				float		want = normalised(&p, c, inside ? px[c] : 0);

				all = all && out[(c * 9 + y) * 8 + x] == want;
			}
	CHECK(out && all, "padded centre crop places the image at (2, 2)");
	free(out);

	/* do_resize off, do_center_crop off: exact-size image passes through */
	p = small_params(1);
	p.do_resize = false;
	p.do_center_crop = false;
	out = preprocess(one.p, one.len, &p, &err);
	CHECK(out && out[0] == normalised(&p, 0, 10) && out[2] == normalised(&p, 2, 30),
		  "no resize, no crop: %s", out ? "" : err.message);
	free(out);
	free(one.p);
}

/* ------------------------------------------------------------- threads */

typedef struct thread_job
{
	const unsigned char *bytes;
	size_t		len;
	const float *want;
	const cm_image_params *params;
	int			mismatches;
	int			wrong_errors;
} thread_job;

static const unsigned char truncated_png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I'};

static void *
thread_main(void *arg)
{
	thread_job *job = arg;
	size_t		n = out_floats(job->params);
	float	   *out = malloc(n * sizeof(float));
	int			i;

	for (i = 0; i < 20; i++)
	{
		cm_error	err;

		if (cm_image_preprocess(job->bytes, job->len, job->params, out, &err) != CM_OK ||
			memcmp(out, job->want, n * sizeof(float)) != 0)
			job->mismatches++;
		/* a failing decode on the same thread: its own reason, every time */
		if (cm_image_preprocess(truncated_png, sizeof(truncated_png), job->params, out, &err) != CM_ERR_INPUT ||
			strstr(err.message, "PNG") == NULL)
			job->wrong_errors++;
	}
	free(out);
	return NULL;
}

static void
test_threads(void)
{
	static const char *const names[] = {"landscape_320x240.png", "progressive_300x200.jpg",
	"palette_150x90.gif", "rgba_100x100.png"};
	enum
	{
		N = 4
	};
	cm_image_params p = small_params(64);
	unsigned char *bytes[N];
	size_t		len[N];
	float	   *want[N];
	thread_job	jobs[N];
	pthread_t	tid[N];
	int			i;
	char		path[256];
	cm_error	err;

	for (i = 0; i < N; i++)
	{
		snprintf(path, sizeof(path), GOLDEN "/images/%s", names[i]);
		bytes[i] = read_file(path, &len[i]);
		want[i] = bytes[i] ? preprocess(bytes[i], len[i], &p, &err) : NULL;
		CHECK(want[i] != NULL, "serial %s", names[i]);
		jobs[i] = (thread_job) {bytes[i], len[i], want[i], &p, 0, 0};
	}
	for (i = 0; i < N; i++)
		if (want[i] && pthread_create(&tid[i], NULL, thread_main, &jobs[i]) != 0)
			want[i] = NULL;
	for (i = 0; i < N; i++)
	{
		if (want[i])
		{
			pthread_join(tid[i], NULL);
			CHECK(jobs[i].mismatches == 0, "%s: %d concurrent results differ", names[i], jobs[i].mismatches);
			CHECK(jobs[i].wrong_errors == 0, "%s: %d wrong concurrent errors", names[i], jobs[i].wrong_errors);
		}
		free(want[i]);
		free(bytes[i]);
	}
}

int
main(void)
{
	test_golden();
	test_hostile();
	test_conversions();
	test_gif_palette_fill();
	test_openclip_order();
	test_geometry();
	test_threads();
	printf("test_image: %d passed, %d failed\n", n_passed, n_failed);
	return n_failed == 0 ? 0 : 1;
}
