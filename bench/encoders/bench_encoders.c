/*
 * bench_encoders.c: speed and memory of the encoder runtime on a ViT-B/32-shaped model.
 *
 * Loads a model directory through the public API (crossmodal_encoder.h) and times, at each OpenBLAS thread
 * count, what torch_clip.py times on the same inputs: images/s at batch 1 and 32 (cm_encode_pixels on
 * normalised pixel tensors), texts/s at batch 1 and 32 (cm_encode_token_ids on 10-token captions), and the
 * latency of one image and one caption; plus, as extras, one image from PNG bytes (decode + resize + forward)
 * and one caption from a string (tokenizer + forward). Achieved GFLOP/s are computed from the config's
 * FLOP count (2mnk per GEMM plus attention). Inputs come from a fixed integer hash that torch_clip.py
 * reproduces, so --dump writes raw features that torch_clip.py --compare checks against PyTorch.
 *
 * --rss runs a second process (this program with --rss-child) that loads the same model while this one
 * holds it, and reports both processes' resident memory from /proc: with F32 weights mapped read-only,
 * the second process's weight pages are shared page-cache pages (Shared_Clean), not private copies.
 *
 * Output: "RESULT key value" lines on stdout (read by run.sh / report.py), readable notes on stderr.
 * --precision bf16 loads the model at CM_PRECISION_BF16 and prefixes the keys "cbf16_" instead of "c_".
 *
 * usage: bench_encoders MODEL_DIR [--threads 1,2] [--repeats 5] [--rss] [--dump FILE] [--image PNG]
 *                       [--precision f32|bf16]
 *                       [--only image_b1|image_b32|text_b1|text_b32|png_b1|string_b1]   (e.g. for perf)
 */
#include "crossmodal_encoder.h"
#include "bench_inputs.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Caption length of CLIP-style models: BOS, 8 ordinary ids, EOS. */
#define CLIP_CAPTION_TOKENS 10
#define MAX_CASES_RUNS 64

/* The precision models are loaded at, and the prefix of the RESULT keys (set once from the arguments). */
static cm_precision precision = CM_PRECISION_F32;
static const char *prefix = "c";

typedef struct Bench
{
	const char *model_dir;
	cm_model   *model;
	cm_state   *state;
	cm_model_info info;
	int			text_intermediate;
	int			vision_intermediate;
	float	   *pixels;			/* [32][3][S][S] */
	int			caption_tokens; /* 10, or every position for models that pad (SigLIP: 64) */
	int32_t    *ids;			/* [32][caption_tokens] */
	float	   *out;			/* [32][embed_dim] */
} Bench;

/* Report a failure (the runtime's status and message, or errno) and stop. */
static void
die(const char *what, const cm_error *err)
{
	if (err)
		fprintf(stderr, "bench_encoders: %s: %s: %s\n", what, cm_status_name(err->status), err->message);
	else
		fprintf(stderr, "bench_encoders: %s: %s\n", what, errno ? strerror(errno) : "failed");
	exit(1);
}

/*
 * Pixels uniform in [-2, 2] (the range of normalised images).  Captions: BOS, 8 ordinary ids, EOS; or, for
 * a model that pads every text (empty is the ids of the empty text, n_empty > 2), 8 ordinary ids below the
 * vocabulary size followed by the empty text's ids (SigLIP: EOS, then padding) up to every position.
 */
static void
make_inputs(Bench *b, const int32_t *empty, int n_empty)
{
	size_t		per_image = (size_t) 3 * b->info.image_size * b->info.image_size;
	bool		padded = n_empty > 2;
	uint32_t	ordinary = padded ? (uint32_t) b->info.vocab_size
		: (uint32_t) (empty[0] < empty[1] ? empty[0] : empty[1]);
	int			n = b->caption_tokens = padded ? n_empty : CLIP_CAPTION_TOKENS;

	b->pixels = malloc(32 * per_image * sizeof(float));
	b->ids = malloc((size_t) 32 * n * sizeof(int32_t));
	b->out = malloc((size_t) 32 * b->info.embed_dim * sizeof(float));
	if (!b->pixels || !b->ids || !b->out)
		die("out of memory", NULL);
	fill_pixels(b->pixels, 32 * per_image);
	for (int s = 0; s < 32; s++)
		fill_caption(b->ids + s * n, s, n, padded, empty, ordinary);
}

/* intermediate_size of both towers, which cm_model_info does not carry, from config.json. */
static void
read_intermediate_sizes(Bench *b)
{
	char		path[4096];
	FILE	   *f;
	char	   *text;
	long		len;
	cJSON	   *root;
	cJSON	   *t, *v;

	snprintf(path, sizeof(path), "%s/config.json", b->model_dir);
	f = fopen(path, "rb");
	if (!f || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
		die(path, NULL);
	text = malloc((size_t) len + 1);
	if (!text || fread(text, 1, (size_t) len, f) != (size_t) len)
		die(path, NULL);
	text[len] = '\0';
	fclose(f);
	root = cJSON_Parse(text);
	t = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "text_config"), "intermediate_size");
	v = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "vision_config"), "intermediate_size");
	b->text_intermediate = cJSON_IsNumber(t) ? t->valueint : 4 * b->info.text_hidden;
	b->vision_intermediate = cJSON_IsNumber(v) ? v->valueint : 4 * b->info.vision_hidden;
	cJSON_Delete(root);
	free(text);
}

/*
 * FLOPs of one transformer pass over `tokens` positions: 2mnk for q, k, v, out, fc1 and fc2, plus the
 * attention scores (QK^T) and the weighted sum of values (PV), each 2 * tokens^2 * width. Elementwise
 * work (layer norms, softmax, activation) is not counted. The text tower's causal mask could skip half
 * of the attention products; they are counted in full, as the GEMMs compute them.
 */
static double
tower_flops(double tokens, double width, double intermediate, int layers)
{
	double		per_layer = 2.0 * tokens * width * width * 4.0 +
		2.0 * tokens * width * intermediate * 2.0 +
		2.0 * tokens * tokens * width * 2.0;

	return per_layer * layers;
}

static double
image_flops(const Bench *b)
{
	double		grid = b->info.image_size / b->info.patch_size;
	double		patch_in = 3.0 * b->info.patch_size * b->info.patch_size;
	double		d = b->info.vision_hidden;

	if (strcmp(b->info.family, "siglip") == 0)
	{
		/* no class token; the attention-pooling head: k, v over every patch, q, out, MLP for one */
		return 2.0 * grid * grid * patch_in * d +
			tower_flops(grid * grid, d, b->vision_intermediate, b->info.vision_layers) +
			2.0 * grid * grid * d * d * 2.0 + 2.0 * d * d * 2.0 + 2.0 * d * b->vision_intermediate * 2.0;
	}
	return 2.0 * grid * grid * patch_in * d +
		tower_flops(grid * grid + 1, d, b->vision_intermediate, b->info.vision_layers) +
		2.0 * d * b->info.embed_dim;
}

static double
caption_flops(const Bench *b, int tokens)
{
	return tower_flops(tokens, b->info.text_hidden, b->text_intermediate, b->info.text_layers) +
		2.0 * b->info.text_hidden * b->info.embed_dim;
}

typedef enum CaseKind
{
	CASE_PIXELS,
	CASE_TOKEN_IDS,
	CASE_PNG,
	CASE_STRING
} CaseKind;

typedef struct Case
{
	const char *key;
	CaseKind	kind;
	int			batch;
	int			warmup;
	double		budget_s;		/* stop after this much timed work once 3 runs are in */
} Case;

typedef struct Extras
{
	const unsigned char *png;
	size_t		png_len;
	const char *caption;
} Extras;

static void
run_case(Bench *b, const Case *c, const Extras *x)
{
	cm_run_options opts = {0};
	cm_error	err = {0};
	cm_status	st = CM_OK;
	const int32_t *id_rows[32];
	int			n_ids[32];
	const unsigned char *images[1] = {x->png};
	size_t		image_lens[1] = {x->png_len};
	const char *texts[1] = {x->caption};

	opts.batch_size = c->batch;
	for (int i = 0; i < c->batch; i++)
	{
		id_rows[i] = b->ids + i * b->caption_tokens;
		n_ids[i] = b->caption_tokens;
	}
	switch (c->kind)
	{
		case CASE_PIXELS:
			st = cm_encode_pixels(b->model, b->state, b->pixels, c->batch, &opts, b->out, &err);
			break;
		case CASE_TOKEN_IDS:
			st = cm_encode_token_ids(b->model, b->state, id_rows, n_ids, c->batch, &opts, b->out,
									 NULL, &err);
			break;
		case CASE_PNG:
			st = cm_encode_images(b->model, b->state, images, image_lens, 1, &opts, b->out, &err);
			break;
		case CASE_STRING:
			st = cm_encode_texts(b->model, b->state, texts, NULL, 1, &opts, b->out, &err);
			break;
	}
	if (st != CM_OK)
		die(c->key, &err);
}

/* Median seconds of one call after warm-up. */
static double
time_case(Bench *b, const Case *c, const Extras *x, int repeats, int *runs)
{
	double		times[MAX_CASES_RUNS];
	double		total = 0.0;
	int			n = 0;

	for (int i = 0; i < c->warmup; i++)
		run_case(b, c, x);
	while (n < repeats && n < MAX_CASES_RUNS)
	{
		double		t0 = now_seconds();

		run_case(b, c, x);
		times[n] = now_seconds() - t0;
		total += times[n++];
		if (total > c->budget_s && n >= 3)
			break;
	}
	qsort(times, n, sizeof(double), compare_double);
	*runs = n;
	return n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
}

static void
check_finite(const Bench *b, const char *what, int n)
{
	for (size_t i = 0; i < (size_t) n * b->info.embed_dim; i++)
		if (!(b->out[i] == b->out[i]) || b->out[i] > 1e30f || b->out[i] < -1e30f)
		{
			fprintf(stderr, "bench_encoders: non-finite output in %s\n", what);
			exit(1);
		}
}

/* Raw (unnormalised) features of image 0 and caption 0, for torch_clip.py --compare. */
static void
dump_features(Bench *b, const char *path)
{
	cm_run_options opts = {0};
	cm_error	err = {0};
	const int32_t *rows[1] = {b->ids};
	int			n_ids[1] = {b->caption_tokens};
	FILE	   *f;
	size_t		d = (size_t) b->info.embed_dim;

	opts.raw_features = true;
	f = fopen(path, "wb");
	if (!f)
		die(path, NULL);
	if (cm_encode_pixels(b->model, b->state, b->pixels, 1, &opts, b->out, &err) != CM_OK)
		die("dump image", &err);
	if (cm_encode_token_ids(b->model, b->state, rows, n_ids, 1, &opts, b->out + d, NULL, &err) != CM_OK)
		die("dump caption", &err);
	if (fwrite(b->out, sizeof(float), 2 * d, f) != 2 * d || fclose(f) != 0)
		die(path, NULL);
	fprintf(stderr, "raw features of image 0 and caption 0 written to %s\n", path);
}

static void
load_model(Bench *b)
{
	cm_error	err = {0};
	cm_load_options opt = {.precision = precision};

	b->model = cm_model_load(b->model_dir, &opt, &err);
	if (!b->model)
		die(b->model_dir, &err);
	cm_model_get_info(b->model, &b->info);
	b->state = cm_state_new(b->model, &err);
	if (!b->state)
		die("cm_state_new", &err);
}

/*
 * The ids of the empty text, from the tokenizer (no hard-coded ids): BOS and EOS, or, for a model that pads
 * every text, EOS and the padding up to every position.  Returns the count.
 */
static int
empty_text_ids(Bench *b, int32_t *ids, int max)
{
	int			n = 0;
	cm_error	err = {0};

	if (cm_tokenize(b->model, "", 0, ids, max, &n, &err) != CM_OK || n < 2 ||
		(n > 2 && n <= CONTENT_TOKENS))
		die("tokenize empty string", &err);
	return n;
}

/* The whole file, or NULL when it cannot be opened. */
static unsigned char *
read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	struct stat sb;
	unsigned char *buf;

	if (!f)
		return NULL;
	if (fstat(fileno(f), &sb) != 0)
		die(path, NULL);
	buf = malloc(sb.st_size ? (size_t) sb.st_size : 1);
	if (!buf || fread(buf, 1, (size_t) sb.st_size, f) != (size_t) sb.st_size)
		die(path, NULL);
	fclose(f);
	*len = (size_t) sb.st_size;
	return buf;
}

/* ---- resident memory ---- */

typedef struct MemStats
{
	long		vmrss, rss_anon, rss_file;	/* /proc/self/status, kB */
	long		pss, shared_clean, private_clean, private_dirty;	/* /proc/self/smaps_rollup, kB */
	long		map_rss, map_pss, map_shared_clean, map_private;	/* the model.safetensors mapping(s) */
} MemStats;

static long
field_kb(const char *line, const char *name)
{
	size_t		n = strlen(name);

	if (strncmp(line, name, n) == 0 && line[n] == ':')
		return strtol(line + n + 1, NULL, 10);
	return -1;
}

static void
read_mem_stats(MemStats *m)
{
	char		line[4096];
	FILE	   *f;
	int			in_model_map = 0;
	long		v;

	memset(m, 0, sizeof(*m));
	if ((f = fopen("/proc/self/status", "r")) != NULL)
	{
		while (fgets(line, sizeof(line), f))
		{
			if ((v = field_kb(line, "VmRSS")) >= 0)
				m->vmrss = v;
			else if ((v = field_kb(line, "RssAnon")) >= 0)
				m->rss_anon = v;
			else if ((v = field_kb(line, "RssFile")) >= 0)
				m->rss_file = v;
		}
		fclose(f);
	}
	if ((f = fopen("/proc/self/smaps_rollup", "r")) != NULL)
	{
		while (fgets(line, sizeof(line), f))
		{
			if ((v = field_kb(line, "Pss")) >= 0)
				m->pss = v;
			else if ((v = field_kb(line, "Shared_Clean")) >= 0)
				m->shared_clean = v;
			else if ((v = field_kb(line, "Private_Clean")) >= 0)
				m->private_clean = v;
			else if ((v = field_kb(line, "Private_Dirty")) >= 0)
				m->private_dirty = v;
		}
		fclose(f);
	}
	/* per-mapping figures for model.safetensors: a mapping header line has an address range first */
	if ((f = fopen("/proc/self/smaps", "r")) != NULL)
	{
		while (fgets(line, sizeof(line), f))
		{
			size_t		first_token = strcspn(line, " ");

			/* "start-end perms offset dev inode path" heads each mapping; field lines are "Name: value" */
			if (first_token > 0 && line[first_token - 1] != ':' && memchr(line, '-', first_token) != NULL)
			{
				in_model_map = strstr(line, "/model.safetensors\n") != NULL;
				continue;
			}
			if (!in_model_map)
				continue;
			if ((v = field_kb(line, "Rss")) >= 0)
				m->map_rss += v;
			else if ((v = field_kb(line, "Pss")) >= 0)
				m->map_pss += v;
			else if ((v = field_kb(line, "Shared_Clean")) >= 0)
				m->map_shared_clean += v;
			else if ((v = field_kb(line, "Private_Clean")) >= 0 || (v = field_kb(line, "Private_Dirty")) >= 0)
				m->map_private += v;
		}
		fclose(f);
	}
}

/* "rss", or "rssbf16" for a --precision bf16 run. */
static const char *
rss_prefix(void)
{
	return precision == CM_PRECISION_BF16 ? "rssbf16" : "rss";
}

static void
print_mem_stats(const char *who, const MemStats *m, double load_ms)
{
	printf("RESULT %s_%s_vmrss_kb %ld\n", rss_prefix(), who, m->vmrss);
	printf("RESULT %s_%s_rssanon_kb %ld\n", rss_prefix(), who, m->rss_anon);
	printf("RESULT %s_%s_rssfile_kb %ld\n", rss_prefix(), who, m->rss_file);
	printf("RESULT %s_%s_pss_kb %ld\n", rss_prefix(), who, m->pss);
	printf("RESULT %s_%s_shared_clean_kb %ld\n", rss_prefix(), who, m->shared_clean);
	printf("RESULT %s_%s_private_kb %ld\n", rss_prefix(), who, m->private_clean + m->private_dirty);
	printf("RESULT %s_%s_model_map_rss_kb %ld\n", rss_prefix(), who, m->map_rss);
	printf("RESULT %s_%s_model_map_pss_kb %ld\n", rss_prefix(), who, m->map_pss);
	printf("RESULT %s_%s_model_map_shared_clean_kb %ld\n", rss_prefix(), who, m->map_shared_clean);
	printf("RESULT %s_%s_model_map_private_kb %ld\n", rss_prefix(), who, m->map_private);
	printf("RESULT %s_%s_load_ms %.1f\n", rss_prefix(), who, load_ms);
	fprintf(stderr, "%-6s process: VmRSS %ld MiB (RssAnon %ld, RssFile %ld), Pss %ld MiB, Shared_Clean %ld MiB; "
			"model.safetensors mapping: Rss %ld MiB, Pss %ld MiB, Shared_Clean %ld MiB, private %ld MiB; "
			"load %.1f ms\n", who, m->vmrss >> 10, m->rss_anon >> 10, m->rss_file >> 10, m->pss >> 10,
			m->shared_clean >> 10, m->map_rss >> 10, m->map_pss >> 10, m->map_shared_clean >> 10,
			m->map_private >> 10, load_ms);
	fflush(stdout);
}

/* Load, encode one image and one caption (touching the weights a real call touches), report memory. */
static double
load_and_touch(Bench *b)
{
	double		t0 = now_seconds(), load_ms;
	int32_t		empty[1024];
	cm_error	err = {0};
	const int32_t *rows[1];
	int			n_ids[1];

	load_model(b);
	load_ms = (now_seconds() - t0) * 1e3;
	read_intermediate_sizes(b);
	make_inputs(b, empty, empty_text_ids(b, empty, 1024));
	rows[0] = b->ids;
	n_ids[0] = b->caption_tokens;
	if (cm_encode_pixels(b->model, b->state, b->pixels, 1, NULL, b->out, &err) != CM_OK ||
		cm_encode_token_ids(b->model, b->state, rows, n_ids, 1, NULL, b->out, NULL, &err) != CM_OK)
		die("encode", &err);
	return load_ms;
}

static int
rss_child(const char *model_dir)
{
	Bench		b = {.model_dir = model_dir};
	MemStats	m;
	double		load_ms;

	cm_set_num_threads(1);
	load_ms = load_and_touch(&b);
	read_mem_stats(&m);
	print_mem_stats("child", &m, load_ms);
	return 0;
}

static void
rss_pair(Bench *b, const char *self)
{
	MemStats	m;
	char		path[4096];
	struct stat sb;
	pid_t		pid;
	int			status;

	snprintf(path, sizeof(path), "%s/model.safetensors", b->model_dir);
	if (stat(path, &sb) == 0)
		printf("RESULT %s_model_file_bytes %lld\n", rss_prefix(), (long long) sb.st_size);
	read_mem_stats(&m);
	print_mem_stats("first", &m, -1.0);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		die("fork", NULL);
	if (pid == 0)
	{
		execl(self, self, "--precision", precision == CM_PRECISION_BF16 ? "bf16" : "f32", "--rss-child",
			  b->model_dir, (char *) NULL);
		fprintf(stderr, "bench_encoders: exec %s: %s\n", self, strerror(errno));
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("second process failed", NULL);
}

int
main(int argc, char **argv)
{
	Bench		b = {0};
	const char *thread_list = "1,2";
	const char *dump = NULL;
	const char *png_path = "test/golden/images/landscape_320x240.png";
	const char *only = NULL;
	int			repeats = 5;
	int			rss = 0;
	double		load_ms;
	Extras		x = {0};
	size_t		caption_len = 0;
	int			n_caption = 0;
	int32_t		caption_ids[80];
	cm_error	err = {0};

	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--rss-child") == 0 && i + 1 < argc)
			return rss_child(argv[i + 1]);
		else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
			thread_list = argv[++i];
		else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc)
			repeats = atoi(argv[++i]);
		else if (strcmp(argv[i], "--dump") == 0 && i + 1 < argc)
			dump = argv[++i];
		else if (strcmp(argv[i], "--image") == 0 && i + 1 < argc)
			png_path = argv[++i];
		else if (strcmp(argv[i], "--precision") == 0 && i + 1 < argc && strcmp(argv[i + 1], "f32") == 0)
			precision = CM_PRECISION_F32, prefix = "c", i++;
		else if (strcmp(argv[i], "--precision") == 0 && i + 1 < argc && strcmp(argv[i + 1], "bf16") == 0)
			precision = CM_PRECISION_BF16, prefix = "cbf16", i++;
		else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
			only = argv[++i];
		else if (strcmp(argv[i], "--rss") == 0)
			rss = 1;
		else if (argv[i][0] != '-' && b.model_dir == NULL)
			b.model_dir = argv[i];
		else
		{
			fprintf(stderr, "usage: %s MODEL_DIR [--threads 1,2] [--repeats N] [--rss] [--dump FILE] "
					"[--image PNG] [--only CASE]\n", argv[0]);
			return 2;
		}
	}
	if (b.model_dir == NULL || repeats < 1)
	{
		fprintf(stderr, "usage: %s MODEL_DIR [--threads 1,2] [--repeats N] [--rss] [--dump FILE]\n", argv[0]);
		return 2;
	}

	cm_set_num_threads(1);
	load_ms = load_and_touch(&b);
	printf("RESULT %s_load_ms %.1f\n", prefix, load_ms);
	printf("RESULT %s_model %s %s %lld params\n", prefix, b.model_dir, b.info.weight_dtype,
		   (long long) b.info.n_params);
	printf("RESULT %s_kernels %s\n", prefix, b.info.kernels);
	printf("RESULT %s_private_weight_bytes %lld\n", prefix, (long long) b.info.private_weight_bytes);
	printf("RESULT %s_flops_per_image %.0f\n", prefix, image_flops(&b));
	printf("RESULT %s_flops_per_caption %.0f\n", prefix, caption_flops(&b, b.caption_tokens));
	printf("RESULT %s_caption_tokens %d\n", prefix, b.caption_tokens);
	fprintf(stderr, "model %s: %s, %lld parameters, loaded in %.1f ms; %.3f GFLOP per image, "
			"%.3f GFLOP per %d-token caption\n", b.model_dir, b.info.weight_dtype,
			(long long) b.info.n_params, load_ms, image_flops(&b) / 1e9,
			caption_flops(&b, b.caption_tokens) / 1e9, b.caption_tokens);

	if (rss)
		rss_pair(&b, "/proc/self/exe");
	if (dump)
		dump_features(&b, dump);

	x.png = read_file(png_path, &x.png_len);
	if (x.png == NULL)
		fprintf(stderr, "bench_encoders: %s: %s; skipping the PNG case (give --image FILE)\n",
				png_path, strerror(errno));
	x.caption = "a photo of a dog on the beach";
	caption_len = strlen(x.caption);
	if (cm_tokenize(b.model, x.caption, caption_len, caption_ids, 80, &n_caption, &err) != CM_OK)
		die("tokenize caption", &err);
	printf("RESULT %s_string_caption_tokens %d\n", prefix, n_caption);

	for (const char *p = thread_list; *p;)
	{
		char	   *end;
		int			threads = (int) strtol(p, &end, 10);
		const Case	cases[] = {
			{"image_b1", CASE_PIXELS, 1, 2, 30.0},
			{"image_b32", CASE_PIXELS, 32, 1, 60.0},
			{"text_b1", CASE_TOKEN_IDS, 1, 3, 20.0},
			{"text_b32", CASE_TOKEN_IDS, 32, 2, 30.0},
			{"png_b1", CASE_PNG, 1, 1, 20.0},
			{"string_b1", CASE_STRING, 1, 2, 20.0},
		};

		if (end == p || threads < 1)
		{
			fprintf(stderr, "bench_encoders: bad --threads list \"%s\"\n", thread_list);
			return 2;
		}
		p = (*end == ',') ? end + 1 : end;
		cm_set_num_threads(threads);
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		{
			const Case *c = &cases[i];
			int			runs;
			double		med;
			double		flops = c->kind == CASE_PIXELS ? image_flops(&b) :
				c->kind == CASE_TOKEN_IDS ? caption_flops(&b, b.caption_tokens) : 0.0;

			if ((only != NULL && strcmp(only, c->key) != 0) || (c->kind == CASE_PNG && x.png == NULL))
				continue;
			run_case(&b, c, &x);
			check_finite(&b, c->key, c->batch);
			med = time_case(&b, c, &x, repeats, &runs);
			printf("RESULT %s_%s_t%d_ms %.2f\n", prefix, c->key, threads, med * 1e3);
			printf("RESULT %s_%s_t%d_per_s %.3f\n", prefix, c->key, threads, c->batch / med);
			if (flops > 0)
				printf("RESULT %s_%s_t%d_gflops %.1f\n", prefix, c->key, threads, flops * c->batch / med / 1e9);
			fprintf(stderr, "C threads %d %-9s: median %8.1f ms of %d runs, %7.2f items/s", threads, c->key,
					med * 1e3, runs, c->batch / med);
			if (flops > 0)
				fprintf(stderr, ", %.1f GFLOP/s", flops * c->batch / med / 1e9);
			fprintf(stderr, "\n");
			fflush(stdout);
		}
	}
	cm_state_free(b.state);
	cm_model_free(b.model);
	free(b.pixels);
	free(b.ids);
	free(b.out);
	free((void *) x.png);
	return 0;
}
