/*
 * test_model_hostile.c
 *	  Broken model directories and hostile inputs: each must fail with the
 *	  right status and a message naming the file and the problem, without
 *	  crashing or leaking (run under ASan+UBSan with leak detection).
 *
 * Broken copies of the golden F16 model are written to a temporary
 * directory by the test itself, one defect at a time.
 */
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "crossmodal_encoder.h"
#include "runtime_test_util.h"
#include "safetensors.h"

#define SRC_MODEL "test/golden/tiny-clip-gelu-p16-f16"

static const char *const model_files[] = {
	"config.json", "model.safetensors", "vocab.json", "merges.txt", "preprocessor_config.json"
};
#define N_FILES (sizeof(model_files) / sizeof(model_files[0]))

static char tmpdir[64];
static char *originals[N_FILES];
static size_t original_lens[N_FILES];

static int
file_index(const char *name)
{
	for (size_t i = 0; i < N_FILES; i++)
		if (strcmp(model_files[i], name) == 0)
			return (int) i;
	return -1;
}

static void
tmp_path(char *buf, size_t size, const char *file)
{
	snprintf(buf, size, "%s/%s", tmpdir, file);
}

/* Put every file of the temporary model back to the golden original. */
static void
restore_all(void)
{
	for (size_t i = 0; i < N_FILES; i++)
	{
		char		p[256];

		tmp_path(p, sizeof(p), model_files[i]);
		rt_write_file(p, originals[i], original_lens[i]);
	}
}

static void
write_file(const char *file, const void *data, size_t len)
{
	char		p[256];

	tmp_path(p, sizeof(p), file);
	RT_CHECK(rt_write_file(p, data, len), "write %s", p);
}

/*
 * Load the temporary model and expect failure with status and a message
 * containing the file name and each of up to two phrases.
 */
static void
expect_load_error(const char *what, cm_status want, const char *file, const char *phrase1,
				  const char *phrase2)
{
	cm_error	err = {0};
	cm_model   *m = cm_model_load(tmpdir, NULL, &err);

	RT_CHECK(m == NULL, "%s: load succeeded", what);
	cm_model_free(m);
	RT_CHECK(err.status == want, "%s: status %d (%s), expected %d; message: %s", what, err.status,
			 cm_status_name(err.status), want, err.message);
	RT_CHECK(file == NULL || strstr(err.message, file) != NULL, "%s: message lacks \"%s\": %s", what, file, err.message);
	RT_CHECK(phrase1 == NULL || strstr(err.message, phrase1) != NULL, "%s: message lacks \"%s\": %s", what, phrase1, err.message);
	RT_CHECK(phrase2 == NULL || strstr(err.message, phrase2) != NULL, "%s: message lacks \"%s\": %s", what, phrase2, err.message);
	restore_all();
}

/* ---- safetensors rewriting ---- */

static uint64_t
read_u64le(const unsigned char *p)
{
	uint64_t	v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}


typedef void (*header_edit) (cJSON *header);

/* Rewrite model.safetensors with an edited header (padded to 8 bytes), same data. */
static void
write_edited_safetensors(header_edit edit)
{
	int			fi = file_index("model.safetensors");
	const unsigned char *orig = (const unsigned char *) originals[fi];
	uint64_t	hlen = read_u64le(orig);
	cJSON	   *h = cJSON_ParseWithLength((const char *) orig + 8, (size_t) hlen);
	size_t		len;
	unsigned char *out;

	edit(h);
	out = rt_safetensors_bytes(h, orig + 8 + hlen, original_lens[fi] - 8 - (size_t) hlen, &len);
	RT_CHECK(out != NULL, "out of memory");
	if (out != NULL)
		write_file("model.safetensors", out, len);
	free(out);
	cJSON_Delete(h);
}

static cJSON *
tensor(cJSON *h, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(h, name);
}

static void
set_offsets(cJSON *t, double begin, double end)
{
	cJSON	   *o = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");

	cJSON_SetNumberValue(cJSON_GetArrayItem(o, 0), begin);
	cJSON_SetNumberValue(cJSON_GetArrayItem(o, 1), end);
}

static double
offset_of(cJSON *t, int which)
{
	return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(t, "data_offsets"), which)->valuedouble;
}

#define LN1B "text_model.encoder.layers.0.layer_norm1.bias"
#define LN1W "text_model.encoder.layers.0.layer_norm1.weight"
#define FC1W "text_model.encoder.layers.0.mlp.fc1.weight"

static void
edit_offsets_out_of_range(cJSON *h)
{
	set_offsets(tensor(h, "visual_projection.weight"), 443970 - 2560, 1e9);
}

static void
edit_offsets_huge(cJSON *h)
{
	set_offsets(tensor(h, LN1B), 4503599627370496.0, 4503599627370496.0 + 64);
}

static void
edit_offsets_past_2_53(cJSON *h)
{
	set_offsets(tensor(h, LN1B), 1e300, 1e300);
}

static void
edit_offsets_reversed(cJSON *h)
{
	cJSON	   *t = tensor(h, LN1B);

	set_offsets(t, offset_of(t, 1), offset_of(t, 0));
}

static void
edit_overlap(cJSON *h)
{
	cJSON	   *a = tensor(h, LN1B);

	set_offsets(tensor(h, LN1W), offset_of(a, 0), offset_of(a, 1));
}

static void
edit_misaligned(cJSON *h)
{
	cJSON	   *t = tensor(h, LN1B);

	set_offsets(t, offset_of(t, 0) + 1, offset_of(t, 1) + 1);
}

static void
edit_wrong_dtype(cJSON *h)
{
	cJSON_ReplaceItemInObjectCaseSensitive(tensor(h, LN1B), "dtype", cJSON_CreateString("I16"));
}

static void
edit_unknown_dtype(cJSON *h)
{
	cJSON_ReplaceItemInObjectCaseSensitive(tensor(h, LN1B), "dtype", cJSON_CreateString("Q4_K"));
}

static void
edit_missing_tensor(cJSON *h)
{
	cJSON_DeleteItemFromObjectCaseSensitive(h, "vision_model.post_layernorm.bias");
}

static void
edit_transposed_shape(cJSON *h)
{
	int			dims[2] = {32, 128};

	cJSON_ReplaceItemInObjectCaseSensitive(tensor(h, FC1W), "shape", cJSON_CreateIntArray(dims, 2));
}

static void
edit_shape_vs_bytes(cJSON *h)
{
	int			dims[2] = {128, 33};

	cJSON_ReplaceItemInObjectCaseSensitive(tensor(h, FC1W), "shape", cJSON_CreateIntArray(dims, 2));
}

static void
edit_negative_dim(cJSON *h)
{
	int			dims[2] = {-128, -32};

	cJSON_ReplaceItemInObjectCaseSensitive(tensor(h, FC1W), "shape", cJSON_CreateIntArray(dims, 2));
}

static void
edit_too_many_dims(cJSON *h)
{
	int			dims[9] = {1, 1, 1, 1, 1, 1, 1, 128, 32};

	cJSON_ReplaceItemInObjectCaseSensitive(tensor(h, FC1W), "shape", cJSON_CreateIntArray(dims, 9));
}

static void
edit_duplicate(cJSON *h)
{
	cJSON_AddItemToObject(h, LN1B, cJSON_Duplicate(tensor(h, LN1W), 1));
}

static void
edit_entry_not_object(cJSON *h)
{
	cJSON_ReplaceItemInObjectCaseSensitive(h, LN1B, cJSON_CreateString("oops"));
}

static void
edit_scalar_logit(cJSON *h)
{
	int			dims[2] = {1, 1};

	cJSON_ReplaceItemInObjectCaseSensitive(tensor(h, "logit_scale"), "shape", cJSON_CreateIntArray(dims, 2));
}

static void
check_safetensors_defects(void)
{
	int			fi = file_index("model.safetensors");
	unsigned char *buf = malloc(original_lens[fi]);
	uint64_t	hlen = read_u64le((const unsigned char *) originals[fi]);

	/* Truncated in the data area, inside the header, inside the length. */
	write_file("model.safetensors", originals[fi], original_lens[fi] - 1000);
	expect_load_error("truncated data", CM_ERR_MODEL, "model.safetensors", "outside", NULL);
	write_file("model.safetensors", originals[fi], 8 + (size_t) hlen / 2);
	expect_load_error("truncated header", CM_ERR_MODEL, "model.safetensors", "header length", "exceeds");
	write_file("model.safetensors", originals[fi], 5);
	expect_load_error("5-byte file", CM_ERR_MODEL, "model.safetensors", "too short", NULL);
	write_file("model.safetensors", "", 0);
	expect_load_error("empty file", CM_ERR_MODEL, "model.safetensors", "too short", NULL);

	/* Lying header lengths. */
	memcpy(buf, originals[fi], original_lens[fi]);
	rt_put_u64le(buf, original_lens[fi]);
	write_file("model.safetensors", buf, original_lens[fi]);
	expect_load_error("header length > file", CM_ERR_MODEL, "model.safetensors", "exceeds", NULL);
	rt_put_u64le(buf, UINT64_MAX);
	write_file("model.safetensors", buf, original_lens[fi]);
	expect_load_error("header length 2^64-1", CM_ERR_MODEL, "model.safetensors", "exceeds", NULL);
	rt_put_u64le(buf, hlen - 7);
	write_file("model.safetensors", buf, original_lens[fi]);
	expect_load_error("header length short", CM_ERR_MODEL, "model.safetensors", "not valid JSON", NULL);

	/* Header not JSON / not an object. */
	memcpy(buf, originals[fi], original_lens[fi]);
	memset(buf + 8, 'x', 16);
	write_file("model.safetensors", buf, original_lens[fi]);
	expect_load_error("header garbage", CM_ERR_MODEL, "model.safetensors", "not valid JSON", NULL);
	memcpy(buf, originals[fi], original_lens[fi]);
	buf[8] = '[';
	buf[8 + hlen - 1] = ']';
	{
		/* a well-formed array: replace the object's content with spaces */
		memset(buf + 9, ' ', (size_t) hlen - 2);
	}
	write_file("model.safetensors", buf, original_lens[fi]);
	expect_load_error("header array", CM_ERR_MODEL, "model.safetensors", "not a JSON object", NULL);
	free(buf);

	write_edited_safetensors(edit_offsets_out_of_range);
	expect_load_error("offsets past the data", CM_ERR_MODEL, "visual_projection.weight", "outside", NULL);
	write_edited_safetensors(edit_offsets_huge);
	expect_load_error("offsets 2^52", CM_ERR_MODEL, LN1B, "outside", NULL);
	write_edited_safetensors(edit_offsets_past_2_53);
	expect_load_error("offsets past 2^53", CM_ERR_MODEL, LN1B, "data_offsets", "non-negative integers");
	write_edited_safetensors(edit_offsets_reversed);
	expect_load_error("offsets reversed", CM_ERR_MODEL, LN1B, "outside", NULL);
	write_edited_safetensors(edit_overlap);
	expect_load_error("overlapping tensors", CM_ERR_MODEL, "model.safetensors", "overlap", NULL);
	write_edited_safetensors(edit_misaligned);
	expect_load_error("misaligned tensor", CM_ERR_MODEL, LN1B, "aligned", NULL);
	write_edited_safetensors(edit_wrong_dtype);
	expect_load_error("wrong dtype", CM_ERR_MODEL, LN1B, "dtype I16", NULL);
	write_edited_safetensors(edit_unknown_dtype);
	expect_load_error("unknown dtype", CM_ERR_MODEL, LN1B, "unknown dtype", NULL);
	write_edited_safetensors(edit_missing_tensor);
	expect_load_error("missing tensor", CM_ERR_MODEL, "model.safetensors", "missing tensor \"vision_model.post_layernorm.bias\"", NULL);
	write_edited_safetensors(edit_transposed_shape);
	expect_load_error("transposed shape", CM_ERR_MODEL, FC1W, "[32, 128]", "[128, 32]");
	write_edited_safetensors(edit_shape_vs_bytes);
	expect_load_error("shape vs bytes", CM_ERR_MODEL, FC1W, "bytes for", NULL);
	write_edited_safetensors(edit_negative_dim);
	expect_load_error("negative dim", CM_ERR_MODEL, FC1W, "non-negative", NULL);
	write_edited_safetensors(edit_too_many_dims);
	expect_load_error("9 dims", CM_ERR_MODEL, FC1W, "dimensions", NULL);
	write_edited_safetensors(edit_duplicate);
	expect_load_error("duplicate name", CM_ERR_MODEL, LN1B, "twice", NULL);
	write_edited_safetensors(edit_entry_not_object);
	expect_load_error("entry not object", CM_ERR_MODEL, LN1B, "not an object", NULL);
	write_edited_safetensors(edit_scalar_logit);
	expect_load_error("logit_scale [1,1]", CM_ERR_MODEL, "logit_scale", "scalar", NULL);
}

/* ---- config.json ---- */

static void
write_config_edit(const char *section, const char *key, cJSON *value)
{
	char		path[256];
	char	   *current;
	cJSON	   *root;
	cJSON	   *obj;
	char	   *text;

	/* Edits accumulate on the temporary file until the next restore. */
	tmp_path(path, sizeof(path), "config.json");
	current = rt_read_file(path, NULL);
	root = cJSON_Parse(current);
	free(current);
	obj = section ? cJSON_GetObjectItemCaseSensitive(root, section) : root;
	if (value == NULL)
		cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
	else if (cJSON_GetObjectItemCaseSensitive(obj, key) != NULL)
		cJSON_ReplaceItemInObjectCaseSensitive(obj, key, value);
	else
		cJSON_AddItemToObject(obj, key, value);
	text = cJSON_Print(root);
	write_file("config.json", text, strlen(text));
	free(text);
	cJSON_Delete(root);
}

static void
check_config_defects(void)
{
	static const char *const not_json[] = {"", "{", "{\"text_config\": }", "nul", "{\"a\":1}}", "[1,2]", "42"};

	for (size_t i = 0; i < sizeof(not_json) / sizeof(not_json[0]); i++)
	{
		write_file("config.json", not_json[i], strlen(not_json[i]));
		expect_load_error(not_json[i], CM_ERR_MODEL, "config.json", i < 5 ? "not valid JSON" : "not a JSON object", NULL);
	}
	write_config_edit("text_config", "hidden_size", cJSON_CreateString("32"));
	expect_load_error("hidden_size string", CM_ERR_MODEL, "config.json", "text_config.hidden_size", "must be a number");
	write_config_edit("text_config", "hidden_size", cJSON_CreateNumber(0));
	expect_load_error("hidden_size 0", CM_ERR_MODEL, "config.json", "text_config.hidden_size", "[1, 16384]");
	write_config_edit("text_config", "hidden_size", cJSON_CreateNumber(32.5));
	expect_load_error("hidden_size 32.5", CM_ERR_MODEL, "config.json", "text_config.hidden_size", "integer");
	write_config_edit("vision_config", "num_hidden_layers", cJSON_CreateNumber(1e9));
	expect_load_error("1e9 layers", CM_ERR_MODEL, "config.json", "vision_config.num_hidden_layers", "[1, 256]");
	write_config_edit("vision_config", "intermediate_size", cJSON_CreateNumber(1e300));
	expect_load_error("1e300 intermediate", CM_ERR_MODEL, "config.json", "vision_config.intermediate_size", NULL);
	write_config_edit("text_config", "vocab_size", cJSON_CreateNumber(-5));
	expect_load_error("negative vocab", CM_ERR_MODEL, "config.json", "text_config.vocab_size", NULL);
	write_config_edit("text_config", "num_attention_heads", cJSON_CreateNumber(3));
	expect_load_error("heads not dividing", CM_ERR_MODEL, "config.json", "not divisible", NULL);
	write_config_edit("text_config", "layer_norm_eps", cJSON_CreateNumber(-1));
	expect_load_error("negative eps", CM_ERR_MODEL, "config.json", "layer_norm_eps", NULL);
	/* positive as a double, 0 as the float the kernels use (found by fuzz_config) */
	write_config_edit("vision_config", "layer_norm_eps", cJSON_CreateNumber(1e-50));
	expect_load_error("eps 1e-50", CM_ERR_MODEL, "config.json", "vision_config.layer_norm_eps", NULL);
	write_config_edit("text_config", "hidden_act", cJSON_CreateString("relu"));
	expect_load_error("relu", CM_ERR_UNSUPPORTED, "config.json", "hidden_act", "relu");
	write_config_edit("text_config", "hidden_act", cJSON_CreateNumber(1));
	expect_load_error("hidden_act number", CM_ERR_MODEL, "config.json", "hidden_act", "string");
	write_config_edit(NULL, "text_config", cJSON_CreateArray());
	expect_load_error("text_config array", CM_ERR_MODEL, "config.json", "text_config", "object");
	write_config_edit(NULL, "model_type", cJSON_CreateString("blip"));
	expect_load_error("model_type blip", CM_ERR_UNSUPPORTED, "config.json", "blip", NULL);
	write_config_edit("vision_config", "num_channels", cJSON_CreateNumber(4));
	expect_load_error("4 channels", CM_ERR_UNSUPPORTED, "config.json", "num_channels", NULL);
	write_config_edit("vision_config", "patch_size", cJSON_CreateNumber(128));
	expect_load_error("patch > image", CM_ERR_MODEL, "config.json", "patch_size", NULL);
	write_config_edit("text_config", "eos_token_id", cJSON_CreateNumber(5000));
	expect_load_error("eos outside vocab", CM_ERR_MODEL, "config.json", "eos", NULL);

	/* Valid configs that disagree with the weights. */
	write_config_edit("text_config", "num_hidden_layers", cJSON_CreateNumber(3));
	expect_load_error("3 text layers", CM_ERR_MODEL, "model.safetensors",
					  "missing tensor \"text_model.encoder.layers.2.", NULL);
	write_config_edit("text_config", "hidden_size", cJSON_CreateNumber(64));
	expect_load_error("hidden 64", CM_ERR_MODEL, "model.safetensors", "the config implies", NULL);
	write_config_edit(NULL, "projection_dim", cJSON_CreateNumber(41));
	expect_load_error("projection 41", CM_ERR_MODEL, "text_projection.weight", "[40, 32]", "[41, 32]");
	write_config_edit("vision_config", "image_size", cJSON_CreateNumber(48));
	expect_load_error("image size vs preprocessor", CM_ERR_MODEL, "preprocessor_config.json", "crop_size", NULL);
	/* vocab.json has 2014 entries: a smaller vocab_size cannot hold them. */
	write_config_edit("text_config", "bos_token_id", cJSON_CreateNumber(0));
	write_config_edit("text_config", "eos_token_id", cJSON_CreateNumber(1));
	write_config_edit("text_config", "vocab_size", cJSON_CreateNumber(2000));
	expect_load_error("vocab 2000", CM_ERR_MODEL, "vocab.json", "2014", NULL);
}

static void
check_preprocessor_defects(void)
{
	static const struct
	{
		const char *json;
		cm_status	status;
		const char *phrase;
	}			cases[] = {
		{"{", CM_ERR_MODEL, "not valid JSON"},
		{"[]", CM_ERR_MODEL, "not a JSON object"},
		{"{\"crop_size\": {\"height\": 32, \"width\": 32}, \"size\": {\"shortest_edge\": 64}}", CM_ERR_MODEL, "crop_size 32x32"},
		{"{\"crop_size\": 64, \"size\": 64, \"resample\": 2}", CM_ERR_UNSUPPORTED, "resample"},
		{"{\"crop_size\": 64, \"size\": 64, \"image_std\": [0.2, 0, 0.3]}", CM_ERR_MODEL, "image_std"},
		/* positive as a double, 0 as a float (found by fuzz_config) */
		{"{\"crop_size\": 64, \"size\": 64, \"image_std\": [2, 3e-308, 9]}", CM_ERR_MODEL, "image_std"},
		{"{\"crop_size\": 64, \"size\": 64, \"image_std\": 1e-40}", CM_ERR_MODEL, "image_std"},
		{"{\"crop_size\": 64, \"size\": 64, \"image_mean\": [0.2, 0.3]}", CM_ERR_MODEL, "image_mean"},
		{"{\"crop_size\": 64, \"do_center_crop\": true, \"size\": {\"height\": 64, \"width\": 64}}", CM_ERR_UNSUPPORTED, "centre crop"},
		{"{\"crop_size\": 64, \"size\": \"big\"}", CM_ERR_MODEL, "\"size\""},
		{"{\"crop_size\": 64, \"size\": 64, \"do_resize\": \"yes\"}", CM_ERR_MODEL, "do_resize"},
		{"{\"crop_size\": 64, \"size\": 64, \"do_center_crop\": false}", CM_ERR_UNSUPPORTED, "do_center_crop"},
		{"{\"crop_size\": 64, \"size\": 1e12}", CM_ERR_MODEL, "\"size\""},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		write_file("preprocessor_config.json", cases[i].json, strlen(cases[i].json));
		expect_load_error(cases[i].json, cases[i].status, "preprocessor_config.json", cases[i].phrase, NULL);
	}
}

static void
check_missing_files(void)
{
	cm_error	err = {0};

	for (size_t i = 0; i < N_FILES; i++)
	{
		char		p[256];

		tmp_path(p, sizeof(p), model_files[i]);
		unlink(p);
		/* Without model.safetensors the loader looks for a sharded checkpoint's index. */
		expect_load_error(model_files[i], CM_ERR_IO, model_files[i],
						  strcmp(model_files[i], "model.safetensors") == 0 ?
						  "and no model.safetensors.index.json" : "cannot open", NULL);
	}
	RT_CHECK(cm_model_load("/nonexistent/model", NULL, &err) == NULL && err.status == CM_ERR_IO &&
			 strstr(err.message, "/nonexistent/model/config.json") != NULL,
			 "nonexistent directory: %s", err.message);
	RT_CHECK(cm_model_load(NULL, NULL, &err) == NULL && err.status == CM_ERR_INPUT, "NULL directory");
	/* A directory where a file should be. */
	{
		char		p[256];

		tmp_path(p, sizeof(p), "model.safetensors");
		unlink(p);
		mkdir(p, 0700);
		expect_load_error("directory as weights", CM_ERR_IO, "model.safetensors", "regular file", NULL);
		rmdir(p);
		restore_all();
	}
}

/* ---- safetensors from memory, directly ---- */

static void
expect_st_error(const char *what, const void *buf, size_t len, const char *phrase)
{
	cm_error	err = {0};
	cm_safetensors *st = cm_safetensors_from_memory(buf, len, &err);

	RT_CHECK(st == NULL && err.status == CM_ERR_MODEL && strstr(err.message, phrase) != NULL,
			 "%s: status %d, message %s", what, err.status, err.message);
	cm_safetensors_close(st);
}

static void
check_safetensors_memory(void)
{
	static const char ok_json[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
		"\"__metadata__\":{\"format\":\"pt\"},\"e\":{\"dtype\":\"BF16\",\"shape\":[0],\"data_offsets\":[8,8]}}";
	_Alignas(8) unsigned char buf[256];
	size_t		jl = sizeof(ok_json) - 1;
	size_t		hl = (jl + 7) / 8 * 8;
	cm_error	err = {0};
	cm_safetensors *st;
	float		vals[2] = {1.5f, -2.0f},
				back[2];

	memset(buf, ' ', sizeof(buf));
	rt_put_u64le(buf, hl);
	memcpy(buf + 8, ok_json, jl);
	memcpy(buf + 8 + hl, vals, sizeof(vals));
	st = cm_safetensors_from_memory(buf, 8 + hl + 8, &err);
	RT_CHECK(st != NULL, "minimal file: %s", err.message);
	if (st != NULL)
	{
		const cm_tensor_view *a = cm_safetensors_find(st, "a");

		RT_CHECK(cm_safetensors_count(st) == 2, "count %d", cm_safetensors_count(st));
		RT_CHECK(a != NULL && a->ndim == 1 && a->shape[0] == 2 && a->nbytes == 8, "tensor a");
		RT_CHECK(a != NULL && cm_tensor_to_f32(a, back, &err) == CM_OK && back[0] == 1.5f && back[1] == -2.0f,
				 "tensor a values");
		RT_CHECK(cm_safetensors_find(st, "__metadata__") == NULL, "metadata is not a tensor");
		RT_CHECK(cm_safetensors_find(st, "e") != NULL && cm_safetensors_find(st, "e")->n_elements == 0, "empty tensor");
		RT_CHECK(cm_safetensors_at(st, 2) == NULL && cm_safetensors_at(st, -1) == NULL, "at out of range");
		cm_safetensors_close(st);
	}
	/* Trailing bytes past the last tensor are tolerated; a short data area is not. */
	expect_st_error("data short", buf, 8 + hl + 4, "outside");
	expect_st_error("no header", buf, 7, "too short");
	rt_put_u64le(buf, 1);
	expect_st_error("header 1 byte", buf, 8 + hl + 8, "cannot hold");
	rt_put_u64le(buf, (uint64_t) 1 << 62);
	expect_st_error("header 2^62", buf, 8 + hl + 8, "exceeds");

	/* F16 and BF16 widening, specials included. */
	{
		static const char j16[] = "{\"h\":{\"dtype\":\"F16\",\"shape\":[6],\"data_offsets\":[0,12]},"
			"\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[12,16]}}";
		const uint16_t halves[8] = {0x3c00, 0xc000, 0x0001, 0x7c00, 0x8000, 0x7bff, 0x3fc0, 0xc080};
		const float want[8] = {1.0f, -2.0f, 5.9604645e-08f, INFINITY, -0.0f, 65504.0f, 1.5f, -4.0f};
		float		got[8];
		size_t		l16 = sizeof(j16) - 1,
					h16 = (l16 + 7) / 8 * 8;

		memset(buf, ' ', sizeof(buf));
		rt_put_u64le(buf, h16);
		memcpy(buf + 8, j16, l16);
		memcpy(buf + 8 + h16, halves, sizeof(halves));
		st = cm_safetensors_from_memory(buf, 8 + h16 + 16, &err);
		RT_CHECK(st != NULL, "f16 file: %s", err.message);
		if (st != NULL)
		{
			RT_CHECK(cm_tensor_to_f32(cm_safetensors_find(st, "h"), got, &err) == CM_OK &&
					 cm_tensor_to_f32(cm_safetensors_find(st, "b"), got + 6, &err) == CM_OK, "widen");
			for (int i = 0; i < 8; i++)
				RT_CHECK(got[i] == want[i] && signbit(got[i]) == signbit(want[i]),
						 "widened %d: %g, expected %g", i, got[i], want[i]);
			cm_safetensors_close(st);
		}
	}
}

/* ---- hostile inputs to a good model ---- */

static void
check_hostile_inputs(void)
{
	cm_error	err = {0};
	cm_model   *m = cm_model_load(SRC_MODEL, NULL, &err);
	float		out[64];
	cm_status	s;

	RT_CHECK(m != NULL, "load golden: %s", err.message);
	if (m == NULL)
		return;
	{
		const int32_t bad_id[] = {2012, 2014, 2013};
		const int32_t neg_id[] = {2012, -1, 2013};
		const int32_t *rows[] = {bad_id};
		int			n3[] = {3},
					n0[] = {0},
					n78[] = {78};
		int32_t		long_ids[78] = {0};
		const int32_t *long_rows[] = {long_ids};

		s = cm_encode_token_ids(m, NULL, rows, n3, 1, NULL, out, NULL, &err);
		RT_CHECK(s == CM_ERR_INPUT && strstr(err.message, "2014"), "id = vocab: %d %s", s, err.message);
		rows[0] = neg_id;
		s = cm_encode_token_ids(m, NULL, rows, n3, 1, NULL, out, NULL, &err);
		RT_CHECK(s == CM_ERR_INPUT && strstr(err.message, "-1"), "negative id: %d %s", s, err.message);
		s = cm_encode_token_ids(m, NULL, rows, n0, 1, NULL, out, NULL, &err);
		RT_CHECK(s == CM_ERR_INPUT, "0 ids: %d %s", s, err.message);
		s = cm_encode_token_ids(m, NULL, long_rows, n78, 1, NULL, out, NULL, &err);
		RT_CHECK(s == CM_ERR_INPUT && strstr(err.message, "78"), "78 ids: %d %s", s, err.message);
		s = cm_encode_token_ids(m, NULL, NULL, n3, 1, NULL, out, NULL, &err);
		RT_CHECK(s == CM_ERR_INPUT, "NULL ids: %d", s);
	}
	{
		const char *texts[] = {"ok", "bad \xff\xfe utf-8", "also ok"};

		s = cm_encode_texts(m, NULL, texts, NULL, 3, NULL, out, &err);
		RT_CHECK(s == CM_ERR_INPUT && strstr(err.message, "text 1"), "invalid UTF-8: %d %s", s, err.message);
		s = cm_encode_texts(m, NULL, texts, NULL, 0, NULL, out, &err);
		RT_CHECK(s == CM_OK, "zero texts: %d", s);
	}
	{
		static const unsigned char garbage[] = "this is not an image at all, not even close";
		static const unsigned char png_sig[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13};
		size_t		len = 0;
		unsigned char *png = (unsigned char *) rt_read_file("test/golden/images/landscape_320x240.png", &len);
		const unsigned char *imgs[1];
		size_t		lens[1];
		cm_run_options opt = {0};

		imgs[0] = garbage;
		lens[0] = sizeof(garbage);
		s = cm_encode_images(m, NULL, imgs, lens, 1, NULL, out, &err);
		RT_CHECK(s == CM_ERR_INPUT && strstr(err.message, "image 0"), "garbage image: %d %s", s, err.message);
		lens[0] = 0;
		s = cm_encode_images(m, NULL, imgs, lens, 1, NULL, out, &err);
		RT_CHECK(s == CM_ERR_INPUT, "zero-byte image: %d %s", s, err.message);
		imgs[0] = png_sig;
		lens[0] = sizeof(png_sig);
		s = cm_encode_images(m, NULL, imgs, lens, 1, NULL, out, &err);
		RT_CHECK(s == CM_ERR_INPUT, "truncated PNG: %d %s", s, err.message);
		RT_CHECK(png != NULL, "read golden PNG");
		if (png != NULL)
		{
			imgs[0] = png;
			lens[0] = len / 2;
			s = cm_encode_images(m, NULL, imgs, lens, 1, NULL, out, &err);
			RT_CHECK(s == CM_ERR_INPUT, "half a PNG: %d %s", s, err.message);
			lens[0] = len;
			opt.max_image_bytes = len - 1;
			s = cm_encode_images(m, NULL, imgs, lens, 1, &opt, out, &err);
			RT_CHECK(s == CM_ERR_LIMIT && strstr(err.message, "limit"), "bytes limit: %d %s", s, err.message);
			opt.max_image_bytes = 0;
			opt.max_image_pixels = 320 * 240 - 1;
			s = cm_encode_images(m, NULL, imgs, lens, 1, &opt, out, &err);
			RT_CHECK(s == CM_ERR_LIMIT, "pixel limit: %d %s", s, err.message);
			opt.max_image_pixels = 320 * 240;
			s = cm_encode_images(m, NULL, imgs, lens, 1, &opt, out, &err);
			RT_CHECK(s == CM_OK, "at the pixel limit: %d %s", s, err.message);
			free(png);
		}
	}
	cm_model_free(m);
}

static void
check_config_parser_direct(void)
{
	cm_config	cfg;
	cm_error	err = {0};
	static const char legacy[] = "{\"text_config\": {\"hidden_size\": 64}, \"text_config_dict\": {\"hidden_size\": 128,"
		" \"num_attention_heads\": 4, \"eos_token_id\": 2}, \"vision_config\": null}";

	/* Defaults: an empty object is openai/clip-vit-base-patch32. */
	RT_CHECK(cm_config_parse("{}", 2, "c.json", &cfg, &err) == CM_OK, "empty config: %s", err.message);
	RT_CHECK(cfg.text.t.hidden_size == 512 && cfg.text.t.num_layers == 12 && cfg.text.t.num_heads == 8 &&
			 cfg.text.vocab_size == 49408 && cfg.text.eos_token_id == 49407 &&
			 cfg.vision.t.hidden_size == 768 && cfg.vision.patch_size == 32 && cfg.vision.grid == 7 &&
			 cfg.vision.n_positions == 50 && cfg.projection_dim == 512 &&
			 cfg.text.t.act == CM_ACT_QUICK_GELU, "CLIPConfig defaults");
	RT_CHECK(strstr(cfg.defaulted, "projection_dim") && strstr(cfg.defaulted, "text_config.*"),
			 "defaulted keys listed: %s", cfg.defaulted);
	/* The legacy *_config_dict wins over *_config. */
	RT_CHECK(cm_config_parse(legacy, sizeof(legacy) - 1, "c.json", &cfg, &err) == CM_OK, "legacy: %s", err.message);
	RT_CHECK(cfg.text.t.hidden_size == 128 && cfg.text.t.num_heads == 4 && cfg.text.eos_token_id == 2,
			 "text_config_dict overlay");
}

int
main(void)
{
	char		p[256];

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/cm_hostile_XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
	{
		RT_CHECK(0, "mkdtemp");
		return rt_summary("test_model_hostile");
	}
	for (size_t i = 0; i < N_FILES; i++)
	{
		snprintf(p, sizeof(p), SRC_MODEL "/%s", model_files[i]);
		originals[i] = rt_read_file(p, &original_lens[i]);
		RT_CHECK(originals[i] != NULL, "read %s (run from the repository root)", p);
		if (originals[i] == NULL)
			return rt_summary("test_model_hostile");
	}
	restore_all();

	/* The untouched copy loads. */
	{
		cm_error	err = {0};
		cm_model   *m = cm_model_load(tmpdir, NULL, &err);

		RT_CHECK(m != NULL, "pristine copy loads: %s", err.message);
		cm_model_free(m);
	}
	check_safetensors_memory();
	check_config_parser_direct();
	check_safetensors_defects();
	check_config_defects();
	check_preprocessor_defects();
	check_missing_files();
	check_hostile_inputs();

	for (size_t i = 0; i < N_FILES; i++)
	{
		tmp_path(p, sizeof(p), model_files[i]);
		unlink(p);
		free(originals[i]);
	}
	rmdir(tmpdir);
	return rt_summary("test_model_hostile");
}
