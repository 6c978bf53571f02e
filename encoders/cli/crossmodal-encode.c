/*
 * crossmodal-encode.c
 *	  Command-line front end of the encoder runtime: print the L2-normalised
 *	  embedding of each text or image in the embedding type's text form.
 *
 *	  crossmodal-encode MODEL_DIR [--threads N] (--text "..." | --image FILE)...
 *
 * One line per input, in argument order: [0.1,-0.2,...].
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crossmodal_encoder.h"

typedef struct input
{
	bool		is_image;
	const char *arg;			/* the text, or the image's path */
	int			index;			/* within its kind's batch */
} input;

static void
usage(FILE *f)
{
	fprintf(f, "usage: crossmodal-encode MODEL_DIR [--threads N] (--text \"...\" | --image FILE...)...\n"
			"Prints each input's L2-normalised embedding as [x,y,...], one per line, in argument order.\n");
}

/* The shortest %g form that reads back as the same float. */
static void
print_float(float v)
{
	char		buf[32];

	for (int prec = 1; prec <= 9; prec++)
	{
		snprintf(buf, sizeof(buf), "%.*g", prec, (double) v);
		if (strtof(buf, NULL) == v)
			break;
	}
	fputs(buf, stdout);
}

static unsigned char *
read_whole(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	size_t		cap = 0,
				n = 0;

	if (f == NULL)
		return NULL;
	for (;;)
	{
		size_t		got;

		if (n == cap)
		{
			size_t		ncap = cap ? cap * 2 : 65536;
			unsigned char *nb = realloc(buf, ncap);

			if (nb == NULL)
			{
				free(buf);
				fclose(f);
				errno = ENOMEM;
				return NULL;
			}
			buf = nb;
			cap = ncap;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f))
	{
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	*len = n;
	return buf;
}

static void
log_to_stderr(void *ctx, int level, const char *message)
{
	(void) ctx;
	if (level >= CM_LOG_INFO)
		fprintf(stderr, "crossmodal-encode: %s\n", message);
}

int
main(int argc, char **argv)
{
	cm_error	err = {0};
	cm_load_options lopt = {.log = log_to_stderr};
	cm_model   *model = NULL;
	cm_model_info info;
	input	   *inputs;
	const char **texts;
	const unsigned char **images;
	size_t	   *image_lens;
	int			n_inputs = 0,
				n_texts = 0,
				n_images = 0;
	float	   *text_out = NULL,
			   *image_out = NULL;
	int			rc = 1;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
	{
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	inputs = calloc((size_t) argc, sizeof(input));
	texts = calloc((size_t) argc, sizeof(char *));
	images = calloc((size_t) argc, sizeof(unsigned char *));
	image_lens = calloc((size_t) argc, sizeof(size_t));
	if (!inputs || !texts || !images || !image_lens)
	{
		fprintf(stderr, "crossmodal-encode: out of memory\n");
		goto done;
	}

	for (int i = 2; i < argc; i++)
	{
		if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
		{
			char	   *end;
			long		t = strtol(argv[++i], &end, 10);

			if (*end != '\0' || t < 1 || t > 1024)
			{
				fprintf(stderr, "crossmodal-encode: --threads needs a number from 1 to 1024\n");
				goto done;
			}
			cm_set_num_threads((int) t);
		}
		else if (strcmp(argv[i], "--text") == 0 && i + 1 < argc)
		{
			inputs[n_inputs] = (input) {false, argv[++i], n_texts};
			texts[n_texts++] = inputs[n_inputs++].arg;
		}
		else if (strcmp(argv[i], "--image") == 0 && i + 1 < argc)
		{
			/* --image takes every following argument that is not an option */
			while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
			{
				inputs[n_inputs] = (input) {true, argv[++i], n_images};
				n_images++;
				n_inputs++;
			}
		}
		else
		{
			fprintf(stderr, "crossmodal-encode: unexpected argument \"%s\"\n", argv[i]);
			usage(stderr);
			goto done;
		}
	}
	if (n_inputs == 0)
	{
		usage(stderr);
		goto done;
	}

	for (int i = 0; i < n_inputs; i++)
		if (inputs[i].is_image)
		{
			unsigned char *b = read_whole(inputs[i].arg, &image_lens[inputs[i].index]);

			if (b == NULL)
			{
				fprintf(stderr, "crossmodal-encode: %s: %s\n", inputs[i].arg, strerror(errno));
				goto done;
			}
			images[inputs[i].index] = b;
		}

	model = cm_model_load(argv[1], &lopt, &err);
	if (model == NULL)
	{
		fprintf(stderr, "crossmodal-encode: %s\n", err.message);
		goto done;
	}
	cm_model_get_info(model, &info);
	text_out = malloc(((size_t) n_texts + 1) * info.embed_dim * sizeof(float));
	image_out = malloc(((size_t) n_images + 1) * info.embed_dim * sizeof(float));
	if (text_out == NULL || image_out == NULL)
	{
		fprintf(stderr, "crossmodal-encode: out of memory\n");
		goto done;
	}
	if ((n_texts > 0 && cm_encode_texts(model, NULL, texts, NULL, n_texts, NULL, text_out, &err) != CM_OK) ||
		(n_images > 0 && cm_encode_images(model, NULL, images, image_lens, n_images, NULL, image_out, &err) != CM_OK))
	{
		fprintf(stderr, "crossmodal-encode: %s\n", err.message);
		goto done;
	}

	for (int i = 0; i < n_inputs; i++)
	{
		const float *v = (inputs[i].is_image ? image_out : text_out) + (size_t) inputs[i].index * info.embed_dim;

		putchar('[');
		for (int k = 0; k < info.embed_dim; k++)
		{
			if (k > 0)
				putchar(',');
			print_float(v[k]);
		}
		fputs("]\n", stdout);
	}
	rc = fflush(stdout) == 0 ? 0 : 1;

done:
	for (int i = 0; i < n_images; i++)
		free((void *) images[i]);
	free(inputs);
	free(texts);
	free(images);
	free(image_lens);
	free(text_out);
	free(image_out);
	cm_model_free(model);
	return rc;
}
