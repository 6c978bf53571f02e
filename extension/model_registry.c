/*
 * model_registry.c
 *	  Encoder settings, model-directory resolution, the per-backend cache of
 *	  loaded models and the translation of runtime failures into errors.
 */
#include "postgres.h"

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "model_registry.h"

char	   *cm_model_path = NULL;
char	   *cm_default_model = NULL;
int			cm_threads = 1;
int			cm_max_image_bytes = 32 * 1024 * 1024;
int			cm_max_image_pixels = 40000000;
bool		cm_orientation_setting = true;
int			cm_background_setting = CM_BACKGROUND_NONE;
int			cm_decode_setting = CM_DECODE_REDUCED;
int			cm_precision_setting = CM_PRECISION_F32;

static const struct config_enum_entry image_background_options[] = {
	{"none", CM_BACKGROUND_NONE, false},
	{"white", CM_BACKGROUND_WHITE, false},
	{"black", CM_BACKGROUND_BLACK, false},
	{NULL, 0, false}
};

static const struct config_enum_entry precision_options[] = {
	{"f32", CM_PRECISION_F32, false},
	{"bf16", CM_PRECISION_BF16, false},
	{NULL, 0, false}
};

static const struct config_enum_entry image_decode_options[] = {
	{"reduced", CM_DECODE_REDUCED, false},
	{"exact", CM_DECODE_EXACT, false},
	{NULL, 0, false}
};

/* The installed models folder; the boot value of crossmodal.model_path. */
static char default_model_path[MAXPGPATH];

/* Models loaded in this backend, most recently loaded first. */
static CmModelEntry *loaded_models = NULL;

/* Activation buffers, shared by every model (they are sized per call). */
static cm_state *backend_state = NULL;

#define MODEL_FILES_HINT "A model directory holds config.json, preprocessor_config.json, model.safetensors " \
	"(or model.safetensors.index.json and the shards it names) and its tokenizer: vocab.json and merges.txt, " \
	"tokenizer.json, or spiece.model (SigLIP); or, as open_clip saves it, open_clip_config.json, " \
	"open_clip_model.safetensors and its BPE merges file."

/* Why name is not a valid model name, or NULL when it is. */
static const char *
ModelNameProblem(const char *name)
{
	size_t		len = strlen(name);

	if (len == 0)
		return "It is empty.";
	if (len > CM_MAX_MODEL_NAME)
		return "It is too long.";
	if (name[0] == '.')
		return "It starts with \".\".";
	for (const char *p = name; *p; p++)
	{
		char		c = *p;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '.' || c == '_' || c == '-'))
			return "Only letters, digits, \".\", \"_\" and \"-\" may appear in it.";
	}
	return NULL;
}

void
CmCheckModelName(const char *name)
{
	const char *problem = ModelNameProblem(name);

	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid model name \"%s\"", name),
				 errdetail("%s", problem),
				 errhint("A model name is the name of a model directory on crossmodal.model_path.")));
}

static bool
check_default_model(char **newval, void **extra, GucSource source)
{
	const char *problem = ModelNameProblem(*newval);

	if (problem != NULL)
	{
		GUC_check_errdetail("%s", problem);
		return false;
	}
	return true;
}

void
EncoderRegistryInit(void)
{
	char		share_path[MAXPGPATH];

	get_share_path(my_exec_path, share_path);
	snprintf(default_model_path, sizeof(default_model_path), "%s/%s",
			 share_path, CM_MODELS_SHARE_SUBDIR);

	/*
	 * Superuser only: the setting decides which files the server reads and
	 * maps into every backend.
	 */
	DefineCustomStringVariable("crossmodal.model_path",
							   "Directories searched for encoder models, separated by \":\".",
							   "Each model is a sub-directory (Hugging Face layout) named after the model.",
							   &cm_model_path,
							   default_model_path,
							   PGC_SUSET, 0,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("crossmodal.default_model",
							   "Model used by encode_text(text), encode_image(bytea) and the other forms without a model name.",
							   NULL,
							   &cm_default_model,
							   CM_SHIPPED_MODEL_NAME,
							   PGC_USERSET, 0,
							   check_default_model, NULL, NULL);
	DefineCustomIntVariable("crossmodal.threads",
							"Threads one backend uses to run an encoder.",
							"The thread count of OpenBLAS, which is process-wide.",
							&cm_threads,
							1, 1, 64,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("crossmodal.max_image_bytes",
							"Largest encoded image accepted by the encoders, in bytes.",
							NULL,
							&cm_max_image_bytes,
							32 * 1024 * 1024, 1, MaxAllocSize,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);
	DefineCustomIntVariable("crossmodal.max_image_pixels",
							"Largest image accepted by the encoders, in pixels (width times height).",
							"Checked from the image header, before anything is decoded.",
							&cm_max_image_pixels,
							40000000, 1, INT_MAX,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	/*
	 * How image bytes become pixels.  Superuser only, like the model files:
	 * the IMMUTABLE encoder forms depend on them, so they are meant to be
	 * set server-wide, not to differ between sessions that fill one index.
	 */
	DefineCustomBoolVariable("crossmodal.image_exif_orientation",
							 "Turns images upright by their EXIF orientation before encoding them.",
							 "As transformers' load_image does (PIL's ImageOps.exif_transpose).",
							 &cm_orientation_setting,
							 true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomEnumVariable("crossmodal.image_background",
							 "Background that transparent images are composited onto before encoding.",
							 "none drops alpha, as PIL's convert(\"RGB\") does.",
							 &cm_background_setting,
							 CM_BACKGROUND_NONE, image_background_options,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomEnumVariable("crossmodal.image_decode",
							 "How large JPEG and WebP photos are decoded.",
							 "reduced decodes them at 1/2, 1/4 or 1/8 scale when they are much larger than the model's input; exact decodes every pixel, as PIL does.",
							 &cm_decode_setting,
							 CM_DECODE_REDUCED, image_decode_options,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	/*
	 * The arithmetic of the encoders' matrix products.  Superuser only, for
	 * the same reason: embeddings computed at bf16 differ from f32's in
	 * their last digits (cosine about 0.99997 to f32's).
	 */
	DefineCustomEnumVariable("crossmodal.precision",
							 "Arithmetic of the encoders' matrix products.",
							 "f32: float32 throughout, weights shared between backends through the page cache. "
							 "bf16: bfloat16 weights times bfloat16-rounded activations summed in float32 "
							 "(AVX512_BF16 where the CPU has it); weights not stored as BF16 are converted "
							 "once per backend.",
							 &cm_precision_setting,
							 CM_PRECISION_F32, precision_options,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
}

/*
 * Path entries of crossmodal.model_path: a palloc'd list of palloc'd
 * strings, empty entries skipped.
 */
static List *
ModelPathEntries(void)
{
	List	   *entries = NIL;
	const char *p = cm_model_path ? cm_model_path : "";

	while (*p)
	{
		const char *end = strchr(p, ':');
		size_t		len = end ? (size_t) (end - p) : strlen(p);

		if (len > 0)
			entries = lappend(entries, pnstrdup(p, len));
		p += len;
		if (*p == ':')
			p++;
	}
	return entries;
}

/* Whether dir/name holds a model (the runtime says what one looks like). */
static bool
HoldsModel(const char *dir, const char *name, char *model_dir)
{
	if (snprintf(model_dir, MAXPGPATH, "%s/%s", dir, name) >= MAXPGPATH)
		return false;
	return cm_model_dir_has_config(model_dir);
}

/* The directory of the first model called name on the path, or NULL. */
static char *
ResolveModel(const char *name)
{
	List	   *entries = ModelPathEntries();
	ListCell   *lc;
	char		model_dir[MAXPGPATH];

	foreach(lc, entries)
	{
		if (HoldsModel((const char *) lfirst(lc), name, model_dir))
			return pstrdup(model_dir);
	}
	return NULL;
}

static int
CompareListingNames(const ListCell *a, const ListCell *b)
{
	const CmModelListing *x = lfirst(a);
	const CmModelListing *y = lfirst(b);

	return strcmp(x->name, y->name);
}

/*
 * Every model directory on the path (first occurrence of a name wins),
 * sorted by name, with only name and directory filled in.
 */
static List *
ScanModels(void)
{
	List	   *entries = ModelPathEntries();
	List	   *found = NIL;
	ListCell   *lc;

	foreach(lc, entries)
	{
		const char *dir = lfirst(lc);
		DIR		   *d = AllocateDir(dir);
		struct dirent *de;

		if (d == NULL)
			continue;			/* a path entry that does not exist is skipped */
		while ((de = ReadDirExtended(d, dir, DEBUG1)) != NULL)
		{
			char		model_dir[MAXPGPATH];
			bool		seen = false;
			ListCell   *fc;
			CmModelListing *m;

			if (ModelNameProblem(de->d_name) != NULL ||
				!HoldsModel(dir, de->d_name, model_dir))
				continue;
			foreach(fc, found)
			{
				if (strcmp(((CmModelListing *) lfirst(fc))->name, de->d_name) == 0)
					seen = true;
			}
			if (seen)
				continue;
			m = palloc0(sizeof(CmModelListing));
			m->name = pstrdup(de->d_name);
			m->directory = pstrdup(model_dir);
			found = lappend(found, m);
		}
		FreeDir(d);
	}
	list_sort(found, CompareListingNames);
	return found;
}

/* Most model names a hint lists. */
#define CM_HINT_MAX_NAMES 20

/* "a, b, c" of the models on the path, for hints. */
static char *
AvailableModelNames(void)
{
	List	   *models = ScanModels();
	StringInfoData buf;
	ListCell   *lc;
	int			shown = 0;

	initStringInfo(&buf);
	foreach(lc, models)
	{
		if (shown == CM_HINT_MAX_NAMES)
		{
			appendStringInfo(&buf, " and %d more", list_length(models) - shown);
			break;
		}
		if (buf.len > 0)
			appendStringInfoString(&buf, ", ");
		appendStringInfoString(&buf, ((CmModelListing *) lfirst(lc))->name);
		shown++;
	}
	return buf.data;
}

/* The model in directory loaded at the current crossmodal.precision, if any. */
static CmModelEntry *
FindLoaded(const char *directory)
{
	for (CmModelEntry *e = loaded_models; e != NULL; e = e->next)
	{
		if (strcmp(e->directory, directory) == 0 && e->precision == cm_precision_setting)
			return e;
	}
	return NULL;
}

/* Takes an entry out of the cache (without freeing it: see CmGetModel). */
static void
ForgetLoaded(CmModelEntry *entry)
{
	for (CmModelEntry **p = &loaded_models; *p != NULL; p = &(*p)->next)
	{
		if (*p == entry)
		{
			*p = entry->next;
			entry->next = NULL;
			return;
		}
	}
}

/* The runtime's log messages are kept in the CmRun and emitted afterwards. */
static void
CaptureLog(void *ctx, int level, const char *message)
{
	CmRun	   *run = (CmRun *) ctx;
	int			i = run->n_log++;

	if (i < CM_RUN_LOG_SLOTS)
	{
		run->log_level[i] = level;
		strlcpy(run->log_text[i], message, sizeof(run->log_text[i]));
	}
}

static void
EmitCapturedLog(CmRun *run)
{
	int			n = Min(run->n_log, CM_RUN_LOG_SLOTS);

	for (int i = 0; i < n; i++)
	{
		int			elevel = run->log_level[i] >= CM_LOG_WARNING ? WARNING :
			run->log_level[i] >= CM_LOG_INFO ? LOG : DEBUG1;

		elog(elevel, "crossmodal: %s", run->log_text[i]);
	}
	if (run->n_log > CM_RUN_LOG_SLOTS)
		elog(DEBUG1, "crossmodal: %d further encoder messages dropped",
			 run->n_log - CM_RUN_LOG_SLOTS);
	run->n_log = 0;
}

/*
 * SQLSTATE for a runtime failure that concerns the model rather than the
 * caller's input.
 *
 * - A file that is present but cannot be read or mapped: 58030 (io_error),
 *   the class PostgreSQL uses for failing system calls on files.
 * - A file that is read but malformed or inconsistent: F0000
 *   (config_file_error).  A model directory is configuration the
 *   administrator installed; it is neither the SQL input (class 22) nor the
 *   database's own data, whose corruption XX001 (data_corrupted) signals and
 *   which monitoring rightly treats as an alarm about the cluster itself.
 * - A valid model using something the runtime lacks: 0A000.
 */
static int
ModelErrcode(cm_status status)
{
	switch (status)
	{
		case CM_ERR_IO:
			return ERRCODE_IO_ERROR;
		case CM_ERR_MODEL:
			return ERRCODE_CONFIG_FILE_ERROR;
		case CM_ERR_UNSUPPORTED:
			return ERRCODE_FEATURE_NOT_SUPPORTED;
		case CM_ERR_NOMEM:
			return ERRCODE_OUT_OF_MEMORY;
		case CM_ERR_LIMIT:
			return ERRCODE_PROGRAM_LIMIT_EXCEEDED;
		default:
			return ERRCODE_INTERNAL_ERROR;
	}
}

/*
 * Load the model in directory; on success it joins the cache.  On failure
 * nothing is kept: the runtime frees what it allocated, and the entry is
 * freed before the error is raised.
 */
static CmModelEntry *
LoadModel(const char *name, const char *directory)
{
	CmModelEntry *entry;
	cm_load_options options = {0};
	CmRun		capture;

	entry = MemoryContextAllocZero(TopMemoryContext, sizeof(CmModelEntry));
	entry->name = MemoryContextStrdup(TopMemoryContext, name);
	entry->directory = MemoryContextStrdup(TopMemoryContext, directory);

	memset(&capture, 0, sizeof(capture));
	options.log = CaptureLog;
	options.log_ctx = &capture;
	options.precision = (cm_precision) cm_precision_setting;
	entry->precision = options.precision;
	entry->model = cm_model_load(directory, &options, &capture.err);
	if (entry->model == NULL)
	{
		pfree(entry->name);
		pfree(entry->directory);
		pfree(entry);
		EmitCapturedLog(&capture);
		/* a missing file is worth its own SQLSTATE (58P01) */
		if (capture.err.missing_file[0] != '\0')
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FILE),
					 errmsg("could not load model \"%s\": could not stat file \"%s\": No such file or directory",
							name, capture.err.missing_file),
					 errdetail("%s", capture.err.message),
					 errhint(MODEL_FILES_HINT)));
		ereport(ERROR,
				(errcode(ModelErrcode(capture.err.status)),
				 errmsg("could not load model \"%s\": %s", name, capture.err.message)));
	}
	cm_model_get_info(entry->model, &entry->info);
	entry->next = loaded_models;
	loaded_models = entry;
	/* Only now that the cache owns the model may anything raise. */
	EmitCapturedLog(&capture);
	elog(DEBUG1, "crossmodal: loaded model \"%s\" from \"%s\" (%lld parameters, %s weights, "
		 "%s products on %s, %lld bytes of weights private to this backend)",
		 name, directory, (long long) entry->info.n_params, entry->info.weight_dtype,
		 entry->info.precision == CM_PRECISION_BF16 ? "bf16" : "f32", entry->info.kernels,
		 (long long) entry->info.private_weight_bytes);
	return entry;
}

CmModelEntry *
CmGetModel(const char *name)
{
	char	   *directory;
	CmModelEntry *entry;

	CmCheckModelName(name);
	directory = ResolveModel(name);
	if (directory == NULL)
	{
		char	   *available = AvailableModelNames();

		if (available[0] != '\0')
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("model \"%s\" does not exist", name),
					 errhint("Models on crossmodal.model_path: %s.", available)));
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist", name),
				 errhint("No model was found on crossmodal.model_path.")));
	}
	entry = FindLoaded(directory);
	if (entry != NULL)
	{
		cm_error	err = {0};

		if (cm_model_check_files(entry->model, &err) != CM_OK)
		{
			/*
			 * A weights file was written in place under our mapping: reading
			 * it could raise SIGBUS (truncated) or give other weights.  The
			 * entry is never handed out again and its files are loaded anew;
			 * it is not freed, as callers up the stack may still point into
			 * it (a rare administrator's mistake leaks one mapping).
			 */
			ereport(WARNING,
					(errcode(ERRCODE_CONFIG_FILE_ERROR),
					 errmsg("model \"%s\" changed on disk after this session loaded it; loading it again", name),
					 errdetail("%s", err.message),
					 errhint("Replace a model's files by renaming new files into place, never by writing over them.")));
			ForgetLoaded(entry);
			entry = NULL;
		}
	}
	if (entry == NULL)
		entry = LoadModel(name, directory);
	pfree(directory);
	return entry;
}

cm_state *
CmGetState(void)
{
	if (backend_state == NULL)
	{
		cm_error	err = {0};

		backend_state = cm_state_new(NULL, &err);
		if (backend_state == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory"),
					 errdetail("%s", err.message)));
	}
	return backend_state;
}

/*
 * The runtime polls this between layers.  It reports only interrupts that
 * CHECK_FOR_INTERRUPTS would act upon now, so that a stopped call is always
 * followed by the proper error.
 */
static bool
CancelRequested(void *ctx)
{
	if (!InterruptPending || InterruptHoldoffCount != 0 || CritSectionCount != 0)
		return false;
	return ProcDiePending || (QueryCancelPending && QueryCancelHoldoffCount == 0);
}

void
CmRunBegin(CmRun *run)
{
	memset(run, 0, sizeof(*run));
	run->options.cancel = CancelRequested;
	run->options.cancel_ctx = NULL;
	run->options.log = CaptureLog;
	run->options.log_ctx = run;
	run->options.max_image_bytes = (size_t) cm_max_image_bytes;
	run->options.max_image_pixels = (uint64_t) cm_max_image_pixels;
	run->options.ignore_orientation = !cm_orientation_setting;
	run->options.image_background = (cm_image_background) cm_background_setting;
	run->options.image_decode = (cm_image_decode_mode) cm_decode_setting;

	/* Process-wide in OpenBLAS: set only when it differs (it is not free). */
	if (cm_get_num_threads() != cm_threads)
		cm_set_num_threads(cm_threads);

	CHECK_FOR_INTERRUPTS();
}

void
CmRunEnd(CmRun *run, cm_status status, const CmModelEntry *entry, const char *what,
		 int element)
{
	const char *msg = run->err.message;

	EmitCapturedLog(run);
	if (status == CM_OK)
		return;

	if (status == CM_ERR_CANCELLED)
	{
		CHECK_FOR_INTERRUPTS();
		/* Only reached if the interrupt was consumed elsewhere meanwhile. */
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("canceling statement due to an interrupt during encoding")));
	}

	switch (status)
	{
		case CM_ERR_INPUT:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("could not encode %s: %s", what, msg),
					 element > 0 ? errdetail("The %s is array element %d.", what, element) : 0));
			break;
		case CM_ERR_LIMIT:
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("could not encode %s: %s", what, msg),
					 element > 0 ? errdetail("The %s is array element %d.", what, element) : 0,
					 run->err.limit == CM_LIMIT_IMAGE_SIDE ?
					 errhint("No image larger than that on a side is decoded.") :
					 run->err.limit == CM_LIMIT_IMAGE_PIXELS ?
					 errhint("The limit is crossmodal.max_image_pixels (%d).", cm_max_image_pixels) :
					 run->err.limit == CM_LIMIT_IMAGE_BYTES ?
					 errhint("The limit is crossmodal.max_image_bytes (%d).", cm_max_image_bytes) : 0));
			break;
		case CM_ERR_UNSUPPORTED:
			/* a valid input of a kind the runtime does not read */
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("could not encode %s: %s", what, msg),
					 element > 0 ? errdetail("The %s is array element %d.", what, element) : 0));
			break;
		default:
			ereport(ERROR,
					(errcode(ModelErrcode(status)),
					 errmsg("could not encode %s with model \"%s\": %s",
							what, entry ? entry->name : "?", msg)));
	}
}

List *
CmListModels(void)
{
	List	   *models = ScanModels();
	ListCell   *lc;

	foreach(lc, models)
	{
		CmModelListing *m = lfirst(lc);
		CmModelEntry *entry = FindLoaded(m->directory);
		cm_model   *temporary = NULL;
		cm_model_info info;
		char		dtype[32],
					family[32],
					tokenizer[64];

		if (entry != NULL)
		{
			m->loaded = true;
			info = entry->info;
		}
		else
		{
			/*
			 * Loaded only to describe it, then freed: float32 weights are
			 * just mapped, so this is cheap for them.
			 */
			cm_load_options options = {0};
			cm_error	err = {0};

			CHECK_FOR_INTERRUPTS();
			temporary = cm_model_load(m->directory, &options, &err);
			if (temporary == NULL)
			{
				m->problem = pstrdup(err.message);
				continue;
			}
			cm_model_get_info(temporary, &info);
		}
		/* Copied before the temporary model goes: nothing may raise here. */
		strlcpy(dtype, info.weight_dtype ? info.weight_dtype : "", sizeof(dtype));
		strlcpy(family, info.family ? info.family : "", sizeof(family));
		strlcpy(tokenizer, info.tokenizer_kind ? info.tokenizer_kind : "", sizeof(tokenizer));
		cm_model_free(temporary);
		m->have_info = true;
		m->info = info;
		m->info.weight_dtype = NULL;	/* may belong to the freed model */
		m->info.family = NULL;
		m->info.tokenizer_kind = NULL;
		m->weight_dtype = pstrdup(dtype);
		m->family = pstrdup(family);
		m->tokenizer = pstrdup(tokenizer);
	}
	return models;
}
