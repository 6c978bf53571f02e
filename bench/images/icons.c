/*
 * icons.c
 *	  Does compositing transparent icons onto a background help?  The shipped
 *	  model's 30 sample emoji (transparent PNGs, black under the transparent
 *	  pixels) are embedded with each image background and ranked against
 *	  their 30 English captions: top-1 and top-5 accuracy (image to caption)
 *	  and the mean cosine of the right pair.
 *
 * usage: icons MODEL_DIR SAMPLES_DIR   (SAMPLES_DIR/captions.tsv: file, english, ...)
 * Built and run by bench/images/run.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crossmodal_encoder.h"

#define MAX_SAMPLES 64

static unsigned char *
read_all(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	unsigned char *b;
	long		n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
	{
		fprintf(stderr, "cannot read %s\n", path);
		exit(1);
	}
	b = malloc((size_t) n + 1);
	if (fread(b, 1, (size_t) n, f) != (size_t) n)
		exit(1);
	b[n] = 0;
	fclose(f);
	*len = (size_t) n;
	return b;
}

int
main(int argc, char **argv)
{
	static const char *const names[] = {"none", "white", "black"};
	static const cm_image_background modes[] = {CM_BACKGROUND_NONE, CM_BACKGROUND_WHITE, CM_BACKGROUND_BLACK};
	char		path[4096],
			   *tsv,
			   *line,
			   *save = NULL;
	size_t		len;
	const char *captions[MAX_SAMPLES];
	unsigned char *images[MAX_SAMPLES];
	size_t		lens[MAX_SAMPLES];
	int			n = 0;
	cm_error	err;
	cm_model   *model;
	cm_model_info info;
	float	   *txt,
			   *img;

	if (argc != 3)
	{
		fprintf(stderr, "usage: icons MODEL_DIR SAMPLES_DIR\n");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/captions.tsv", argv[2]);
	tsv = (char *) read_all(path, &len);
	for (line = strtok_r(tsv, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
	{
		char	   *file = line,
				   *english = strchr(line, '\t'),
				   *end;

		if (english == NULL || strncmp(line, "file\t", 5) == 0 || n == MAX_SAMPLES)
			continue;
		*english++ = '\0';
		if ((end = strchr(english, '\t')) != NULL)
			*end = '\0';
		snprintf(path, sizeof(path), "%s/%s", argv[2], file);
		images[n] = read_all(path, &lens[n]);
		captions[n++] = english;
	}
	model = cm_model_load(argv[1], NULL, &err);
	if (model == NULL)
	{
		fprintf(stderr, "%s\n", err.message);
		return 1;
	}
	cm_model_get_info(model, &info);
	txt = malloc(sizeof(float) * info.embed_dim * n);
	img = malloc(sizeof(float) * info.embed_dim * n);
	if (cm_encode_texts(model, NULL, captions, NULL, n, NULL, txt, &err) != CM_OK)
	{
		fprintf(stderr, "%s\n", err.message);
		return 1;
	}
	printf("%d sample emoji of %s against their %d captions (image to caption)\n", n, argv[1], n);
	printf("%-10s %8s %8s %22s\n", "background", "top-1", "top-5", "mean cosine, right pair");
	for (int m = 0; m < 3; m++)
	{
		cm_run_options o = {0};
		int			top1 = 0,
					top5 = 0;
		double		right = 0;

		o.image_background = modes[m];
		if (cm_encode_images(model, NULL, (const unsigned char *const *) images, lens, n, &o, img, &err) != CM_OK)
		{
			fprintf(stderr, "%s\n", err.message);
			return 1;
		}
		for (int i = 0; i < n; i++)
		{
			double		sim[MAX_SAMPLES];
			int			rank = 0;

			for (int j = 0; j < n; j++)
			{
				sim[j] = 0;
				for (int d = 0; d < info.embed_dim; d++)
					sim[j] += (double) img[i * info.embed_dim + d] * txt[j * info.embed_dim + d];
			}
			for (int j = 0; j < n; j++)
				rank += sim[j] > sim[i];
			top1 += rank == 0;
			top5 += rank < 5;
			right += sim[i];
		}
		printf("%-10s %5d/%-2d %5d/%-2d %22.4f\n", names[m], top1, n, top5, n, right / n);
	}
	cm_model_free(model);
	return 0;
}
