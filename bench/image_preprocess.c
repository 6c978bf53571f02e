/*
 * image_preprocess.c
 *	  Benchmark: decode + CLIP preprocessing of a 640x480 JPEG to 224 px, the
 *	  decode alone, and a 640x480 PNG, in ms per image (one thread).
 *
 * Build and run from the repository root:
 *   cc -std=c11 -O2 -Iencoders bench/image_preprocess.c encoders/image.c \
 *      encoders/image_decode.c encoders/image_resample.c encoders/cm_common.c \
 *      -lm -o build/image_preprocess && build/image_preprocess
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image.h"
#include "image_decode.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

typedef struct membuf
{
	unsigned char *p;
	size_t		len;
} membuf;

static void
append(void *ctx, void *data, int size)
{
	membuf	   *b = ctx;

	b->p = realloc(b->p, b->len + (size_t) size);
	memcpy(b->p + b->len, data, (size_t) size);
	b->len += (size_t) size;
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A photo-like test image: smooth gradients plus texture and noise. */
static unsigned char *
make_pixels(int w, int h)
{
	unsigned char *px = malloc((size_t) w * h * 3);
	unsigned int seed = 1;
	int			x,
				y,
				c;

	for (y = 0; y < h; y++)
		for (x = 0; x < w; x++)
			for (c = 0; c < 3; c++)
			{
				int			v = (x * (c + 1) / 3 + y * (3 - c) / 2 + ((x / 7 + y / 5) % 9) * 6) & 255;

				seed = seed * 1103515245u + 12345u;
				v += (int) ((seed >> 16) % 17) - 8;
				px[((size_t) y * w + x) * 3 + c] = (unsigned char) (v < 0 ? 0 : v > 255 ? 255 : v);
			}
	return px;
}

static void
bench(const char *label, const membuf *img, const cm_image_params *p, float *out, bool decode_only)
{
	int			iters = 200,
				i;
	double		t0,
				best = 1e30;

	for (i = 0; i < iters; i++)
	{
		cm_error	err;

		t0 = now_ms();
		if (decode_only)
		{
			cm_decoded_image d;

			if (cm_image_decode(img->p, img->len, &(cm_decode_options) {0}, &d, &err) != CM_OK)
			{
				fprintf(stderr, "%s: %s\n", label, err.message);
				exit(1);
			}
			cm_decoded_image_free(&d);
		}
		else if (cm_image_preprocess(img->p, img->len, p, out, &err) != CM_OK)
		{
			fprintf(stderr, "%s: %s\n", label, err.message);
			exit(1);
		}
		t0 = now_ms() - t0;
		if (t0 < best)
			best = t0;
	}
	printf("%-44s %7.3f ms (best of %d)\n", label, best, iters);
}

int
main(void)
{
	unsigned char *px = make_pixels(640, 480);
	membuf		jpg = {NULL, 0},
				png = {NULL, 0};
	cm_image_params p;
	float	   *out = malloc(sizeof(float) * 3 * 224 * 224);

	stbi_write_jpg_to_func(append, &jpg, 640, 480, 3, px, 90);
	stbi_write_png_to_func(append, &png, 640, 480, 3, px, 640 * 3);
	memset(&p, 0, sizeof(p));
	p.shortest_edge = 224;
	p.crop_height = p.crop_width = 224;
	p.do_resize = p.do_center_crop = true;
	p.rescale_factor = 1.0f / 255.0f;
	p.mean[0] = 0.48145466f;
	p.mean[1] = 0.4578275f;
	p.mean[2] = 0.40821073f;
	p.std[0] = 0.26862954f;
	p.std[1] = 0.26130258f;
	p.std[2] = 0.27577711f;

	printf("640x480 JPEG (%zu bytes, q90) and PNG (%zu bytes) -> 224x224\n", jpg.len, png.len);
	bench("JPEG decode only", &jpg, &p, out, true);
	bench("JPEG decode + resize + crop + normalise", &jpg, &p, out, false);
	bench("PNG decode only", &png, &p, out, true);
	bench("PNG decode + resize + crop + normalise", &png, &p, out, false);
	free(px);
	free(jpg.p);
	free(png.p);
	free(out);
	return 0;
}
