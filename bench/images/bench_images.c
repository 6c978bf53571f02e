/*
 * bench_images.c
 *	  Image benchmark: ms per image for decode + resize + crop + normalise to
 *	  CLIP's 224 px input, exact decode against reduced-scale decode (with a
 *	  few reduction margins), interleaved run by run; and, with --model, the
 *	  embedding cosine of each against the exact decode and the end-to-end
 *	  ms of cm_encode_images (what encode_image runs) per image.
 *
 * usage: bench_images [--repeats N] [--model DIR]... FILE...
 * Built and run by bench/images/run.sh.
 */
#define _POSIX_C_SOURCE 199309L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crossmodal_encoder.h"
#include "image.h"
#include "image_decode.h"

#define MAX_MODELS 4
#define SIDE 224

/* The variants timed: exact, then reduced decodes with these margins. */
static const double gaps[] = {0 /* exact */ , 1.0, 1.5, 2.0, 3.0};
#define N_VARIANTS (sizeof(gaps) / sizeof(gaps[0]))

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
	qsort(v, (size_t) n, sizeof(double), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static unsigned char *
read_all(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	unsigned char *b = NULL;
	long		n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
	{
		fprintf(stderr, "cannot read %s\n", path);
		exit(1);
	}
	b = malloc((size_t) n);
	if (fread(b, 1, (size_t) n, f) != (size_t) n)
		exit(1);
	fclose(f);
	*len = (size_t) n;
	return b;
}

/*
 * CLIPImageProcessor's settings as openai/clip-vit-base-patch32 has them
 * (side 224; the shipped emoji model has the same at 64).
 */
static cm_image_params
clip_params(int side, double gap)
{
	cm_image_params p;

	memset(&p, 0, sizeof(p));
	p.shortest_edge = side;
	p.crop_height = p.crop_width = side;
	p.do_resize = p.do_center_crop = true;
	p.rescale_factor = 1.0f / 255.0f;
	p.mean[0] = 0.48145466f;
	p.mean[1] = 0.4578275f;
	p.mean[2] = 0.40821073f;
	p.std[0] = 0.26862954f;
	p.std[1] = 0.26130258f;
	p.std[2] = 0.27577711f;
	p.max_pixels = 100000000;
	p.exact_decode = gap == 0;
	p.reduce_gap = gap;
	return p;
}

static const char *
base(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

int
main(int argc, char **argv)
{
	int			repeats = 5,
				n_models = 0;
	const char *model_dirs[MAX_MODELS];
	cm_model   *models[MAX_MODELS];
	size_t		plane = (size_t) 3 * SIDE * SIDE;
	float	   *px[N_VARIANTS];

	for (size_t v = 0; v < N_VARIANTS; v++)
		px[v] = malloc(plane * sizeof(float));
	while (argc > 1 && strncmp(argv[1], "--", 2) == 0)
	{
		if (strcmp(argv[1], "--repeats") == 0 && argc > 2)
			repeats = atoi(argv[2]);
		else if (strcmp(argv[1], "--model") == 0 && argc > 2 && n_models < MAX_MODELS)
			model_dirs[n_models++] = argv[2];
		else
		{
			fprintf(stderr, "usage: bench_images [--repeats N] [--model DIR]... FILE...\n");
			return 2;
		}
		argc -= 2;
		argv += 2;
	}
	for (int m = 0; m < n_models; m++)
	{
		cm_error	err;

		models[m] = cm_model_load(model_dirs[m], NULL, &err);
		if (models[m] == NULL)
		{
			fprintf(stderr, "%s: %s\n", model_dirs[m], err.message);
			return 1;
		}
	}
	cm_set_num_threads(1);

	printf("%-14s %6s  %8s", "file", "MP", "exact");
	for (size_t v = 1; v < N_VARIANTS; v++)
		printf("  gap %.1f (1/r)", gaps[v]);
	printf("   ms per image, decode + resize + normalise, median of %d\n", repeats);
	for (int f = 1; f < argc; f++)
	{
		size_t		len;
		unsigned char *bytes = read_all(argv[f], &len);
		double		t[N_VARIANTS][64];
		int			reduce[N_VARIANTS] = {0};
		cm_image_info info;
		cm_decode_options probe = {0};

		if (repeats > 64)
			repeats = 64;
		if (cm_image_probe(bytes, len, &probe, &info, NULL) != CM_OK)
			return 1;
		/* interleaved: each repeat runs every variant once, in turn */
		for (int r = 0; r < repeats; r++)
			for (size_t v = 0; v < N_VARIANTS; v++)
			{
				cm_image_params p = clip_params(SIDE, gaps[v]);
				cm_error	err;
				double		t0 = now_ms();

				if (cm_image_preprocess(bytes, len, &p, px[v], &err) != CM_OK)
				{
					fprintf(stderr, "%s: %s\n", argv[f], err.message);
					return 1;
				}
				t[v][r] = now_ms() - t0;
			}
		for (size_t v = 1; v < N_VARIANTS; v++)
		{
			cm_decode_options o = {0};
			cm_decoded_image img;
			int			short_side = info.width < info.height ? info.width : info.height;

			/* the reduction the decoder picks for this margin */
			o.target_width = (int) ((int64_t) SIDE * info.width / short_side);
			o.target_height = (int) ((int64_t) SIDE * info.height / short_side);
			o.reduce_gap = gaps[v];
			if (cm_image_decode(bytes, len, &o, &img, NULL) == CM_OK)
			{
				reduce[v] = img.reduce;
				cm_decoded_image_free(&img);
			}
		}
		printf("%-14s %6.2f  %8.2f", base(argv[f]), info.width * (double) info.height / 1e6,
			   median(t[0], repeats));
		for (size_t v = 1; v < N_VARIANTS; v++)
			printf("  %8.2f (1/%d)", median(t[v], repeats), reduce[v]);
		printf("\n");

		for (int m = 0; m < n_models; m++)
		{
			cm_model_info mi;
			float	   *emb;
			cm_error	err;
			double		te[2][64];

			float	   *mpx;

			cm_model_get_info(models[m], &mi);
			emb = malloc(sizeof(float) * mi.embed_dim * N_VARIANTS);
			mpx = malloc(sizeof(float) * 3 * mi.image_size * mi.image_size);
			printf("    %-28s cosine to exact:", base(model_dirs[m]));
			for (size_t v = 0; v < N_VARIANTS; v++)
			{
				cm_image_params p = clip_params(mi.image_size, gaps[v]);

				if (cm_image_preprocess(bytes, len, &p, mpx, &err) != CM_OK ||
					cm_encode_pixels(models[m], NULL, mpx, 1, NULL, emb + v * mi.embed_dim, &err) != CM_OK)
				{
					fprintf(stderr, "%s\n", err.message);
					return 1;
				}
				if (v > 0)
				{
					double		dot = 0;

					for (int i = 0; i < mi.embed_dim; i++)
						dot += (double) emb[i] * emb[v * mi.embed_dim + i];
					printf("  %.6f", dot);
				}
			}
			printf("\n");

			/* end to end, one thread: exact against the default decode */
			for (int r = 0; r < repeats; r++)
				for (int v = 0; v < 2; v++)
				{
					cm_run_options o = {0};
					const unsigned char *in = bytes;
					double		t0;

					o.image_decode = v == 0 ? CM_DECODE_EXACT : CM_DECODE_DEFAULT;
					t0 = now_ms();
					if (cm_encode_images(models[m], NULL, &in, &len, 1, &o, emb, &err) != CM_OK)
					{
						fprintf(stderr, "%s\n", err.message);
						return 1;
					}
					te[v][r] = now_ms() - t0;
				}
			printf("    %-28s encode_image end to end: exact %.1f ms, default %.1f ms\n",
				   base(model_dirs[m]), median(te[0], repeats), median(te[1], repeats));
			free(emb);
			free(mpx);
		}
		free(bytes);
	}
	for (int m = 0; m < n_models; m++)
		cm_model_free(models[m]);
	for (size_t v = 0; v < N_VARIANTS; v++)
		free(px[v]);
	return 0;
}
