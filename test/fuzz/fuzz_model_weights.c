/*
 * fuzz_model_weights.c
 *	  libFuzzer target: arbitrary bytes as the JSON header of a model's
 *	  model.safetensors, loaded through the public API with the golden tiny
 *	  CLIP's config and tokenizer (test/golden/tiny-clip-gelu-p16-f16).  The
 *	  harness writes 8 length bytes, the input, then the golden file's own
 *	  tensor data, so that offsets in a mutated header point at real bytes.
 *	  A model that loads must encode a text and an image without reading
 *	  outside its tensors (ASan): the binding checks every dtype and shape
 *	  against the config, and this is what would find a check it lacks.
 *	  A model that does not load says why.  Run from the repository root.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crossmodal_encoder.h"

#define GOLDEN "test/golden/tiny-clip-gelu-p16-f16"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[PATH_MAX];
static char weights[PATH_MAX + 32];
static unsigned char *golden_data;
static size_t golden_data_len;

static void
require(int cond, const char *what)
{
	if (!cond)
	{
		fprintf(stderr, "fuzz_model_weights: invariant broken: %s\n", what);
		abort();
	}
}

static void
cleanup(void)
{
	static const char *files[] = {"config.json", "vocab.json", "merges.txt",
	"preprocessor_config.json", "model.safetensors"};
	char		path[PATH_MAX + 32];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
	{
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
}

/* A model directory in TMPDIR linking the golden files, and the golden tensor data. */
static void
setup(void)
{
	static const char *files[] = {"config.json", "vocab.json", "merges.txt", "preprocessor_config.json"};
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char		src[PATH_MAX],
				dst[PATH_MAX + 32];
	FILE	   *f;
	long		flen;
	uint64_t	hlen = 0;

	snprintf(dir, sizeof(dir), "%s/fuzz_model_weights.XXXXXX", tmp);
	require(mkdtemp(dir) != NULL, "mkdtemp");
	atexit(cleanup);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
	{
		snprintf(dst, sizeof(dst), "%s/%s", GOLDEN, files[i]);
		require(realpath(dst, src) != NULL, "the golden model is found (run from the repository root)");
		snprintf(dst, sizeof(dst), "%s/%s", dir, files[i]);
		require(symlink(src, dst) == 0, "symlink");
	}
	snprintf(weights, sizeof(weights), "%s/model.safetensors", dir);

	f = fopen(GOLDEN "/model.safetensors", "rb");
	require(f != NULL && fseek(f, 0, SEEK_END) == 0, "the golden weights open");
	flen = ftell(f);
	rewind(f);
	for (int i = 0; i < 8; i++)
		hlen |= (uint64_t) fgetc(f) << (8 * i);
	require(hlen + 8 <= (uint64_t) flen, "the golden header fits");
	golden_data_len = (size_t) flen - 8 - hlen;
	golden_data = malloc(golden_data_len);
	require(fseek(f, (long) (8 + hlen), SEEK_SET) == 0 &&
			fread(golden_data, 1, golden_data_len, f) == golden_data_len, "the golden data reads");
	fclose(f);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char len8[8];
	int			fd;
	cm_error	err = {0};
	cm_model   *model;

	if (golden_data == NULL)
		setup();
	for (int i = 0; i < 8; i++)
		len8[i] = (unsigned char) ((uint64_t) size >> (8 * i));
	fd = open(weights, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	require(fd >= 0, "the weights file opens");
	require(write(fd, len8, 8) == 8 && write(fd, data, size) == (ssize_t) size &&
			write(fd, golden_data, golden_data_len) == (ssize_t) golden_data_len,
			"the weights file is written");
	close(fd);

	model = cm_model_load(dir, NULL, &err);
	if (model == NULL)
	{
		require(err.message[0] != '\0', "a model that does not load says why");
		return 0;
	}
	{
		cm_model_info info;
		const char *text = "a photo of a cat";
		float	   *out,
				   *pixels;

		cm_model_get_info(model, &info);
		out = malloc(sizeof(float) * (size_t) info.embed_dim);
		pixels = calloc((size_t) 3 * info.image_size * info.image_size, sizeof(float));
		require(cm_encode_texts(model, NULL, &text, NULL, 1, NULL, out, &err) == CM_OK,
				"a loaded model encodes a text");
		require(cm_encode_pixels(model, NULL, pixels, 1, NULL, out, &err) == CM_OK,
				"a loaded model encodes an image");
		free(pixels);
		free(out);
	}
	cm_model_free(model);
	return 0;
}
