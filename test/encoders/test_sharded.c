/*
 * test_sharded.c
 *	  Checkpoints saved in shards (model.safetensors.index.json plus the shard
 *	  files it names, as transformers' save_pretrained writes a large model):
 *	  each golden model is split into three shards by the test itself, and the
 *	  sharded copy must give the same embeddings; then broken indexes and
 *	  shards, each failing with the right status and a message naming the
 *	  problem, without crashing or leaking (run under ASan+UBSan too).
 */
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crossmodal_encoder.h"
#include "runtime_test_util.h"
#include "safetensors.h"

#define GOLDEN "test/golden"
#define N_SHARDS 3
#define INDEX "model.safetensors.index.json"

static const char *const side_files[] = {
	"config.json", "vocab.json", "merges.txt", "preprocessor_config.json"
};

static char tmpdir[64];

static void
path_in(char *buf, size_t size, const char *dir, const char *file)
{
	snprintf(buf, size, "%s/%s", dir, file);
}

static void
write_tmp(const char *file, const void *data, size_t len)
{
	char		p[256];

	path_in(p, sizeof(p), tmpdir, file);
	RT_CHECK(rt_write_file(p, data, len), "write %s", p);
}

static void
remove_tmp(const char *file)
{
	char		p[256];

	path_in(p, sizeof(p), tmpdir, file);
	unlink(p);
}

static void
shard_name(char *buf, size_t size, int shard)
{
	snprintf(buf, size, "model-%05d-of-%05d.safetensors", shard + 1, N_SHARDS);
}

/*
 * Write shard `shard` of st: every tensor i with i % N_SHARDS == shard, in
 * the order of the source, behind a header padded with spaces to 8 bytes.
 */
static void
write_shard(const cm_safetensors *st, int shard)
{
	cJSON	   *header = cJSON_CreateObject();
	size_t		data_len = 0,
				len;
	unsigned char *data,
			   *file;
	char		name[64];

	for (int i = shard; i < cm_safetensors_count(st); i += N_SHARDS)
	{
		const cm_tensor_view *t = cm_safetensors_at(st, i);
		cJSON	   *entry = cJSON_AddObjectToObject(header, t->name);
		cJSON	   *shape = cJSON_AddArrayToObject(entry, "shape");
		double		offsets[2] = {(double) data_len, (double) (data_len + t->nbytes)};

		cJSON_AddStringToObject(entry, "dtype", t->dtype_name);
		for (int d = 0; d < t->ndim; d++)
			cJSON_AddItemToArray(shape, cJSON_CreateNumber((double) t->shape[d]));
		cJSON_AddItemToObject(entry, "data_offsets", cJSON_CreateDoubleArray(offsets, 2));
		data_len += t->nbytes;
	}
	data = malloc(data_len > 0 ? data_len : 1);
	data_len = 0;
	for (int i = shard; data != NULL && i < cm_safetensors_count(st); i += N_SHARDS)
	{
		const cm_tensor_view *t = cm_safetensors_at(st, i);

		memcpy(data + data_len, t->data, t->nbytes);
		data_len += t->nbytes;
	}
	file = data ? rt_safetensors_bytes(header, data, data_len, &len) : NULL;
	RT_CHECK(file != NULL, "out of memory");
	shard_name(name, sizeof(name), shard);
	if (file != NULL)
		write_tmp(name, file, len);
	free(file);
	free(data);
	cJSON_Delete(header);
}

/* The index transformers writes for those shards, as a JSON tree to edit. */
static cJSON *
make_index(const cm_safetensors *st)
{
	cJSON	   *index = cJSON_CreateObject();
	cJSON	   *meta = cJSON_AddObjectToObject(index, "metadata");
	cJSON	   *map = cJSON_AddObjectToObject(index, "weight_map");
	double		total = 0;

	for (int i = 0; i < cm_safetensors_count(st); i++)
	{
		const cm_tensor_view *t = cm_safetensors_at(st, i);
		char		name[64];

		shard_name(name, sizeof(name), i % N_SHARDS);
		cJSON_AddStringToObject(map, t->name, name);
		total += (double) t->nbytes;
	}
	cJSON_AddNumberToObject(meta, "total_size", total);
	return index;
}

static void
write_index(const cJSON *index)
{
	char	   *text = cJSON_Print(index);

	write_tmp(INDEX, text, strlen(text));
	free(text);
}

/* Copy a golden model's side files into tmpdir and split its weights there. */
static cm_safetensors *
make_sharded_copy(const char *model)
{
	char		src[256];
	cm_error	err = {0};
	cm_safetensors *st;
	cJSON	   *index;

	for (size_t i = 0; i < sizeof(side_files) / sizeof(side_files[0]); i++)
	{
		size_t		len;
		char	   *data;

		snprintf(src, sizeof(src), GOLDEN "/%s/%s", model, side_files[i]);
		data = rt_read_file(src, &len);
		RT_CHECK(data != NULL, "read %s", src);
		if (data != NULL)
			write_tmp(side_files[i], data, len);
		free(data);
	}
	snprintf(src, sizeof(src), GOLDEN "/%s/model.safetensors", model);
	st = cm_safetensors_open(src, &err);
	RT_CHECK(st != NULL, "open %s: %s", src, err.message);
	if (st == NULL)
		return NULL;
	for (int s = 0; s < N_SHARDS; s++)
		write_shard(st, s);
	index = make_index(st);
	write_index(index);
	cJSON_Delete(index);
	return st;
}

/* Embeddings of a few texts and a synthetic image; NULL on failure. */
static float *
embed(const char *dir, int *n_floats)
{
	static const char *const texts[] = {"a photo of a cat", "two dogs on a beach", "x"};
	cm_error	err = {0};
	cm_model   *m = cm_model_load(dir, NULL, &err);
	cm_model_info info;
	float	   *out = NULL,
			   *pixels = NULL;
	size_t		per;

	RT_CHECK(m != NULL, "load %s: %s", dir, err.message);
	if (m == NULL)
		return NULL;
	cm_model_get_info(m, &info);
	per = (size_t) 3 * info.image_size * info.image_size;
	out = malloc((size_t) 4 * info.embed_dim * sizeof(float));
	pixels = malloc(per * sizeof(float));
	for (size_t i = 0; i < per; i++)
		pixels[i] = (float) ((i * 7919) % 255) / 127.0f - 1.0f;
	RT_CHECK(cm_encode_texts(m, NULL, texts, NULL, 3, NULL, out, &err) == CM_OK,
			 "texts through %s: %s", dir, err.message);
	RT_CHECK(cm_encode_pixels(m, NULL, pixels, 1, NULL, out + 3 * info.embed_dim, &err) == CM_OK,
			 "image through %s: %s", dir, err.message);
	*n_floats = 4 * info.embed_dim;
	free(pixels);
	cm_model_free(m);
	return out;
}

static void
check_same_embeddings(const char *model)
{
	char		src[256];
	int			n_ref = 0,
				n_sharded = 0;
	float	   *ref,
			   *sharded;

	snprintf(src, sizeof(src), GOLDEN "/%s", model);
	ref = embed(src, &n_ref);
	sharded = embed(tmpdir, &n_sharded);
	RT_CHECK(ref != NULL && sharded != NULL && n_ref == n_sharded && n_ref > 0,
			 "%s: no embeddings to compare", model);
	if (ref != NULL && sharded != NULL && n_ref == n_sharded && n_ref > 0)
	{
		/*
		 * The same weights, but F32 ones are read in place, and where a
		 * tensor sits within a cache line decides how the AVX-512 kernel
		 * splits its first columns: the sums may differ in the last bits.
		 */
		int			dim = n_ref / 4;

		for (int i = 0; i < 4; i++)
		{
			double		cos = rt_cosine(ref + i * dim, sharded + i * dim, dim);
			double		rel = rt_rel_max_err(sharded + i * dim, ref + i * dim, dim);

			RT_CHECK(cos > 0.9999999 && rel < 1e-5,
					 "%s: embedding %d of the sharded copy: cosine %.9f, max error %.2e of the max",
					 model, i, cos, rel);
		}
	}
	free(ref);
	free(sharded);
}

static void
expect_load_error(const char *what, cm_status want, const char *phrase1, const char *phrase2)
{
	cm_error	err = {0};
	cm_model   *m = cm_model_load(tmpdir, NULL, &err);

	RT_CHECK(m == NULL, "%s: load succeeded", what);
	cm_model_free(m);
	RT_CHECK(err.status == want, "%s: status %s, expected %s; message: %s", what,
			 cm_status_name(err.status), cm_status_name(want), err.message);
	RT_CHECK(phrase1 == NULL || strstr(err.message, phrase1) != NULL, "%s: message lacks \"%s\": %s",
			 what, phrase1, err.message);
	RT_CHECK(phrase2 == NULL || strstr(err.message, phrase2) != NULL, "%s: message lacks \"%s\": %s",
			 what, phrase2, err.message);
}

/* Write the index with map entry `tensor` set to `file` (a string, or a number when file is NULL). */
static void
write_index_with(const cm_safetensors *st, const char *tensor, const char *file)
{
	cJSON	   *index = make_index(st);
	cJSON	   *map = cJSON_GetObjectItemCaseSensitive(index, "weight_map");

	cJSON_ReplaceItemInObjectCaseSensitive(map, tensor, file ? cJSON_CreateString(file) : cJSON_CreateNumber(1));
	write_index(index);
	cJSON_Delete(index);
}

static void
check_hostile(const cm_safetensors *st)
{
	const char *some = cm_safetensors_at(st, 4)->name;	/* in shard 2 (4 % 3 = 1 -> 00002) */
	cJSON	   *index;
	char		shard1[64];

	shard_name(shard1, sizeof(shard1), 0);

	write_tmp(INDEX, "{\"weight_map\": {\"a\": ", 20);
	expect_load_error("index not JSON", CM_ERR_MODEL, INDEX, "not valid JSON");
	write_tmp(INDEX, "{\"metadata\": {}}", 16);
	expect_load_error("no weight_map", CM_ERR_MODEL, INDEX, "no \"weight_map\" object");
	write_tmp(INDEX, "[1, 2]", 6);
	expect_load_error("index not an object", CM_ERR_MODEL, INDEX, "no \"weight_map\" object");
	write_tmp(INDEX, "{\"weight_map\": {}}", 18);
	expect_load_error("empty weight_map", CM_ERR_MODEL, INDEX, "weight_map is empty");

	write_index_with(st, some, "../tiny-clip-gelu-p16-f16/model.safetensors");
	expect_load_error("shard outside the directory", CM_ERR_MODEL, some, "must be a file name");
	write_index_with(st, some, "/etc/passwd");
	expect_load_error("absolute shard path", CM_ERR_MODEL, some, "must be a file name");
	write_index_with(st, some, ".hidden.safetensors");
	expect_load_error("hidden shard name", CM_ERR_MODEL, some, "must be a file name");
	write_index_with(st, some, "");
	expect_load_error("empty shard name", CM_ERR_MODEL, some, "must be a file name");
	write_index_with(st, some, NULL);
	expect_load_error("shard not a string", CM_ERR_MODEL, some, "must be a file name");

	write_index_with(st, some, "model-00009-of-00009.safetensors");
	expect_load_error("missing shard file", CM_ERR_IO, "model-00009-of-00009.safetensors", "cannot open");
	write_index_with(st, some, shard1);
	expect_load_error("tensor mapped to the wrong shard", CM_ERR_MODEL, some, "which does not hold it");

	/* A duplicate key, which cJSON keeps: the text is written by hand. */
	index = make_index(st);
	{
		char	   *text = cJSON_PrintUnformatted(index);
		char	   *dup = malloc(strlen(text) + 256);
		char		shard2[64];

		shard_name(shard2, sizeof(shard2), 1);
		/* text ends with "}}": insert one more entry for `some` before them */
		memcpy(dup, text, strlen(text) - 2);
		sprintf(dup + strlen(text) - 2, ",\"%s\":\"%s\"}}", some, shard2);
		write_tmp(INDEX, dup, strlen(dup));
		free(dup);
		free(text);
	}
	expect_load_error("tensor twice in the map", CM_ERR_MODEL, some, "appears twice");

	/* A tensor the model needs that the map leaves out. */
	cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(index, "weight_map"),
											"vision_model.post_layernorm.bias");
	write_index(index);
	cJSON_Delete(index);
	expect_load_error("tensor left out of the map", CM_ERR_MODEL,
					  "missing tensor \"vision_model.post_layernorm.bias\"", NULL);

	/* A shard that is not a safetensors file. */
	index = make_index(st);
	write_index(index);
	cJSON_Delete(index);
	write_tmp(shard1, "not a safetensors file", 22);
	expect_load_error("broken shard", CM_ERR_MODEL, shard1, NULL);
	write_shard(st, 0);

	/* Neither form of checkpoint. */
	remove_tmp(INDEX);
	expect_load_error("no weights at all", CM_ERR_IO, "no model.safetensors and no " INDEX, NULL);
}

/* With both, model.safetensors is the one read: a broken index beside it is not looked at. */
static void
check_single_file_first(const char *model)
{
	char		src[256],
				dst[256];
	size_t		len;
	char	   *data;
	int			n = 0;
	float	   *out;

	snprintf(src, sizeof(src), GOLDEN "/%s/model.safetensors", model);
	path_in(dst, sizeof(dst), tmpdir, "model.safetensors");
	data = rt_read_file(src, &len);
	RT_CHECK(data != NULL && rt_write_file(dst, data, len), "copy %s", src);
	free(data);
	write_tmp(INDEX, "not json", 8);
	out = embed(tmpdir, &n);
	RT_CHECK(out != NULL && n > 0, "model.safetensors beside a broken index does not load");
	free(out);
	unlink(dst);
	remove_tmp(INDEX);
}

static void
remove_tmpdir(void)
{
	char		name[64];

	for (size_t i = 0; i < sizeof(side_files) / sizeof(side_files[0]); i++)
		remove_tmp(side_files[i]);
	for (int s = 0; s < N_SHARDS; s++)
	{
		shard_name(name, sizeof(name), s);
		remove_tmp(name);
	}
	remove_tmp(INDEX);
	rmdir(tmpdir);
}

int
main(void)
{
	static const char *const models[] = {"tiny-clip-quickgelu-f32", "tiny-clip-gelu-p16-f16"};

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/cm-sharded-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
	{
		fprintf(stderr, "cannot make a temporary directory\n");
		return 1;
	}
	for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++)
	{
		cm_safetensors *st = make_sharded_copy(models[i]);

		if (st == NULL)
			continue;
		check_same_embeddings(models[i]);
		if (i == 1)
		{
			check_hostile(st);
			check_single_file_first(models[i]);
		}
		cm_safetensors_close(st);
	}
	remove_tmpdir();
	return rt_summary("test_sharded");
}
