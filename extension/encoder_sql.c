/*
 * encoder_sql.c
 *	  SQL-callable encoders: encode_text, encode_image, their batch forms,
 *	  zero-shot image_labels and the crossmodal_models() listing.
 *
 * Forms without a model name use crossmodal.default_model (STABLE); forms
 * with one are IMMUTABLE so they can serve in generated columns and
 * expression indexes.  Every runtime call goes through CmRunBegin/CmRunEnd
 * (model_registry.c), which own cancellation and error reporting.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/primnodes.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/tuplestore.h"

#include "crossmodal.h"
#include "embedding.h"
#include "encode_cache.h"
#include "model_registry.h"

/* An embedding holding the runtime's output vector. */
static Embedding *
EmbeddingFromFloats(const float *v, int dim)
{
	Embedding  *e;

	EmbeddingCheckDim(dim);
	e = EmbeddingNew(dim);
	for (int i = 0; i < dim; i++)
	{
		EmbeddingCheckElement(v[i], i);
		e->x[i] = v[i];
	}
	return e;
}

/* The UTF-8 bytes of a text value (converted from the database encoding). */
static const char *
TextToUtf8(text *t, size_t *len)
{
	char	   *src = VARDATA_ANY(t);
	int			src_len = VARSIZE_ANY_EXHDR(t);
	char	   *utf8 = pg_server_to_any(src, src_len, PG_UTF8);

	*len = (utf8 == src) ? (size_t) src_len : strlen(utf8);
	return utf8;
}

/* Raises 54000 unless an encoded image is within crossmodal.max_image_bytes. */
static inline void
CheckImageBytes(size_t len, int element)
{
	if (len > (size_t) cm_max_image_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("image of %zu bytes exceeds crossmodal.max_image_bytes (%d bytes)",
						len, cm_max_image_bytes),
				 element > 0 ? errdetail("The image is array element %d.", element) : 0));
}

/* Raises 54000 when a batch has more inputs than one call accepts. */
static inline void
CheckBatchSize(int n, const char *what)
{
	if (n > CM_MAX_BATCH_INPUTS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many %s in one call: %d", what, n),
				 errdetail("At most %d inputs are encoded in one call.", CM_MAX_BATCH_INPUTS),
				 errhint("Split the array into several calls.")));
}

static const char *
DefaultModelName(void)
{
	return cm_default_model ? cm_default_model : CM_SHIPPED_MODEL_NAME;
}

/* Encode n UTF-8 texts into out[n * dim] (normalised). */
static void
EncodeTexts(CmModelEntry *entry, const char *const *texts, const size_t *lens, int n,
			float *out)
{
	CmRun		run;
	cm_status	s;
	cm_state   *state = CmGetState();

	/* Counted by test/sql/encode_cache.sql: one line per runtime call. */
	elog(DEBUG1, "crossmodal: encoding %d text%s with model \"%s\"", n, n == 1 ? "" : "s",
		 entry->name);
	CmRunBegin(&run);
	s = cm_encode_texts(entry->model, state, texts, lens, n, &run.options, out, &run.err);
	CmRunEnd(&run, s, entry, "text", 0);
}

/*
 * Encode n encoded images into out[n * dim] (normalised).  Images are
 * decoded one at a time, with interrupts served between them, then encoded
 * CM_DEFAULT_BATCH at a time by the runtime (which polls for cancellation
 * once per layer).
 */
static void
EncodeImages(CmModelEntry *entry, const unsigned char *const *images, const size_t *lens,
			 int n, float *out, bool batch)
{
	int			chunk = Min(n, CM_DEFAULT_BATCH);
	int			dim = entry->info.embed_dim;
	size_t		per_image = mul_size(mul_size(3, entry->info.image_size), entry->info.image_size);
	float	   *pixels;
	cm_state   *state = CmGetState();

	if (n <= 0)
		return;
	elog(DEBUG1, "crossmodal: encoding %d image%s with model \"%s\"", n, n == 1 ? "" : "s",
		 entry->name);
	pixels = palloc(mul_size(mul_size(per_image, sizeof(float)), chunk));
	for (int i = 0; i < n; i += chunk)
	{
		int			c = Min(chunk, n - i);
		CmRun		run;
		cm_status	s;

		for (int j = 0; j < c; j++)
		{
			CmRunBegin(&run);
			s = cm_preprocess_image(entry->model, images[i + j], lens[i + j], &run.options,
									pixels + (size_t) j * per_image, &run.err);
			CmRunEnd(&run, s, entry, "image", batch ? i + j + 1 : 0);
		}
		CmRunBegin(&run);
		s = cm_encode_pixels(entry->model, state, pixels, c, &run.options,
							 out + (size_t) i * dim, &run.err);
		CmRunEnd(&run, s, entry, "image", 0);
	}
	pfree(pixels);
}

/*
 * Elements of a text[] or bytea[] argument: NULL elements are an error
 * (22004), like a NULL argument to a strict function would have been.
 */
static void
DeconstructInputs(ArrayType *array, Oid elemtype, const char *what, Datum **elems, int *n)
{
	bool	   *nulls;

	deconstruct_array(array, elemtype, -1, false, TYPALIGN_INT, elems, &nulls, n);
	CheckBatchSize(*n, what);
	for (int i = 0; i < *n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("array element %d is null", i + 1),
					 errdetail("Every element of an array of %s to encode must be non-null.", what)));
	}
}

/* An embedding[] of n vectors of dim floats; elemtype from the call. */
static ArrayType *
EmbeddingArray(FunctionCallInfo fcinfo, const float *v, int n, int dim)
{
	Oid			elemtype = get_element_type(get_fn_expr_rettype(fcinfo->flinfo));
	Datum	   *datums;

	if (!OidIsValid(elemtype))
		elog(ERROR, "could not determine the embedding type of the result");
	if (n == 0)
		return construct_empty_array(elemtype);
	datums = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
		datums[i] = PointerGetDatum(EmbeddingFromFloats(v + (size_t) i * dim, dim));
	return construct_array(datums, n, elemtype, -1, false, TYPALIGN_INT);
}

/*
 * One encoder call's input: its kind, the settings it is read under, the
 * bytes that identify it (a text's or an image's bytes, or a whole flat
 * array's), and once checked, its elements (the argument itself for the
 * single forms).
 */
typedef struct EncodeInput
{
	EncodeKind	kind;
	EncodeSettings settings;
	Datum		arg;			/* detoasted */
	const void *key;
	Size		keylen;
	Datum	   *elems;
	int			n;
} EncodeInput;

static void
InputKey(EncodeInput *in, EncodeKind kind, Datum arg)
{
	in->kind = kind;
	EncodeSettingsCurrent(kind, &in->settings);
	in->elems = NULL;
	in->n = 0;
	if (kind == ENCODE_TEXT || kind == ENCODE_IMAGE)
	{
		struct varlena *v = PG_DETOAST_DATUM_PACKED(arg);

		in->arg = PointerGetDatum(v);
		in->key = VARDATA_ANY(v);
		in->keylen = VARSIZE_ANY_EXHDR(v);
	}
	else
	{
		/* A flat array's bytes: same bytes, same elements and bounds. */
		ArrayType  *a = DatumGetArrayTypeP(arg);

		in->arg = PointerGetDatum(a);
		in->key = VARDATA(a);
		in->keylen = VARSIZE(a) - VARHDRSZ;
	}
}

/*
 * Checks an input (the errors do not depend on the model, so they come
 * before it is resolved) and takes its elements; what names an array's
 * elements in messages.
 */
static void
CheckInput(EncodeInput *in, const char *what)
{
	switch (in->kind)
	{
		case ENCODE_TEXT:
		case ENCODE_IMAGE:
			in->elems = palloc(sizeof(Datum));
			in->elems[0] = in->arg;
			in->n = 1;
			if (in->kind == ENCODE_IMAGE)
				CheckImageBytes(in->keylen, 0);
			break;
		case ENCODE_TEXTS:
		case ENCODE_IMAGES:
			DeconstructInputs(DatumGetArrayTypeP(in->arg),
							  in->kind == ENCODE_TEXTS ? TEXTOID : BYTEAOID, what,
							  &in->elems, &in->n);
			if (in->kind == ENCODE_IMAGES)
				for (int i = 0; i < in->n; i++)
					CheckImageBytes(VARSIZE_ANY_EXHDR(DatumGetPointer(in->elems[i])), i + 1);
			break;
	}
}

/*
 * The checked input's n vectors of the model's dimension, palloc'd: from
 * this transaction's encode cache, or encoded now and remembered there.
 */
static float *
EncodeCached(CmModelEntry *entry, const EncodeInput *in)
{
	int			dim = entry->info.embed_dim;
	Size		bytes = mul_size(mul_size(sizeof(float), dim), Max(in->n, 1));
	float	   *out = palloc(bytes);
	const float *cached;
	int			n;

	cached = EncodeCacheLookup(entry, in->kind, &in->settings, in->key, in->keylen, &n);
	if (cached != NULL && n == in->n)
	{
		memcpy(out, cached, mul_size(mul_size(sizeof(float), dim), n));
		return out;
	}
	if (in->n == 0)
		return out;
	if (in->kind == ENCODE_TEXT || in->kind == ENCODE_TEXTS)
	{
		const char **texts = palloc(sizeof(char *) * in->n);
		size_t	   *lens = palloc(sizeof(size_t) * in->n);

		for (int i = 0; i < in->n; i++)
			texts[i] = TextToUtf8((text *) DatumGetPointer(in->elems[i]), &lens[i]);
		EncodeTexts(entry, texts, lens, in->n, out);
	}
	else
	{
		const unsigned char **images = palloc(sizeof(char *) * in->n);
		size_t	   *lens = palloc(sizeof(size_t) * in->n);

		for (int i = 0; i < in->n; i++)
		{
			bytea	   *b = (bytea *) DatumGetPointer(in->elems[i]);

			images[i] = (const unsigned char *) VARDATA_ANY(b);
			lens[i] = VARSIZE_ANY_EXHDR(b);
		}
		EncodeImages(entry, images, lens, in->n, out, in->kind == ENCODE_IMAGES);
	}
	EncodeCacheStore(entry, in->kind, &in->settings, in->key, in->keylen, out, in->n);
	return out;
}

/*
 * What one call site of an encoder (its FmgrInfo, which lives as long as
 * the query's expression state) remembers of its last call: the model it
 * named and what that resolved to, the settings, the input and the result.
 * A call with the same model, settings and input returns that result again:
 * when every argument is a constant without comparing the input, otherwise
 * after comparing the input's bytes (a query parameter is not enough: PL/pgSQL evaluates one
 * expression state with its variables' changing values).  Inputs that
 * repeat but not on consecutive calls are found in the encode cache.
 */
typedef struct EncodeCallSite
{
	bool		args_const;
	char	   *model_name;		/* of the last call, or NULL */
	CmModelEntry *entry;		/* what it resolved to */
	EncodeSettings settings;	/* of the last call */
	char	   *input;			/* the last input's key bytes */
	Size		inputlen;
	Datum		result;			/* the last result, or 0 */
} EncodeCallSite;

static EncodeCallSite *
CallSite(FunctionCallInfo fcinfo)
{
	FmgrInfo   *flinfo = fcinfo->flinfo;

	if (flinfo == NULL)
		return NULL;
	if (flinfo->fn_extra == NULL)
	{
		EncodeCallSite *site = MemoryContextAllocZero(flinfo->fn_mcxt, sizeof(EncodeCallSite));
		List	   *args = NIL;

		if (flinfo->fn_expr != NULL && IsA(flinfo->fn_expr, FuncExpr))
			args = ((FuncExpr *) flinfo->fn_expr)->args;
		site->args_const = args != NIL;
		for (int i = 0; i < list_length(args); i++)
			site->args_const = site->args_const && IsA(list_nth(args, i), Const);
		flinfo->fn_extra = site;
	}
	return (EncodeCallSite *) flinfo->fn_extra;
}

/* Forgets the call site's last result. */
static void
CallSiteForget(EncodeCallSite *site)
{
	if (site->input != NULL)
		pfree(site->input);
	if (site->result != (Datum) 0)
		pfree(DatumGetPointer(site->result));
	site->input = NULL;
	site->inputlen = 0;
	site->result = (Datum) 0;
}

/* The model named, resolved once per call site while the name stays. */
static CmModelEntry *
CallSiteModel(FunctionCallInfo fcinfo, EncodeCallSite *site, const char *model_name)
{
	CmModelEntry *entry;

	if (site != NULL && site->model_name != NULL && strcmp(site->model_name, model_name) == 0)
	{
		cm_error	err = {0};

		/* as CmGetModel does: a weights file written over under us is not read again */
		if (cm_model_check_files(site->entry->model, &err) == CM_OK)
			return site->entry;
	}
	entry = CmGetModel(model_name);
	if (site != NULL)
	{
		CallSiteForget(site);
		if (site->model_name != NULL)
			pfree(site->model_name);
		site->model_name = MemoryContextStrdup(fcinfo->flinfo->fn_mcxt, model_name);
		site->entry = entry;
	}
	return entry;
}

/*
 * encode_text, encode_image, encode_texts, encode_images: an embedding, or
 * an embedding[] for the batch kinds.
 */
static Datum
EncodeCall(FunctionCallInfo fcinfo, const char *model_name, EncodeKind kind, Datum arg)
{
	EncodeCallSite *site = CallSite(fcinfo);
	EncodeSettings settings;
	bool		same;
	EncodeInput in;
	CmModelEntry *entry;
	float	   *v;
	Datum		result;

	EncodeSettingsCurrent(kind, &settings);
	same = site != NULL && site->result != (Datum) 0 &&
		strcmp(site->model_name, model_name) == 0 &&
		memcmp(&site->settings, &settings, sizeof(EncodeSettings)) == 0;
	if (same && site->args_const)
		return datumCopy(site->result, false, -1);
	InputKey(&in, kind, arg);
	if (same && site->inputlen == in.keylen && memcmp(site->input, in.key, in.keylen) == 0)
		return datumCopy(site->result, false, -1);

	CheckInput(&in, kind == ENCODE_TEXTS ? "texts" : "images");
	entry = CallSiteModel(fcinfo, site, model_name);
	v = EncodeCached(entry, &in);
	if (kind == ENCODE_TEXT || kind == ENCODE_IMAGE)
		result = PointerGetDatum(EmbeddingFromFloats(v, entry->info.embed_dim));
	else
		result = PointerGetDatum(EmbeddingArray(fcinfo, v, in.n, entry->info.embed_dim));

	if (site != NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

		CallSiteForget(site);
		site->input = palloc(Max(in.keylen, 1));
		memcpy(site->input, in.key, in.keylen);
		site->inputlen = in.keylen;
		site->settings = in.settings;
		site->result = datumCopy(result, false, -1);
		MemoryContextSwitchTo(old);
	}
	return result;
}

CROSSMODAL_FUNCTION(crossmodal_encode_text);
Datum
crossmodal_encode_text(PG_FUNCTION_ARGS)
{
	return EncodeCall(fcinfo, DefaultModelName(), ENCODE_TEXT, PG_GETARG_DATUM(0));
}

CROSSMODAL_FUNCTION(crossmodal_encode_text_model);
Datum
crossmodal_encode_text_model(PG_FUNCTION_ARGS)
{
	return EncodeCall(fcinfo, text_to_cstring(PG_GETARG_TEXT_PP(0)), ENCODE_TEXT,
					  PG_GETARG_DATUM(1));
}

CROSSMODAL_FUNCTION(crossmodal_encode_image);
Datum
crossmodal_encode_image(PG_FUNCTION_ARGS)
{
	return EncodeCall(fcinfo, DefaultModelName(), ENCODE_IMAGE, PG_GETARG_DATUM(0));
}

CROSSMODAL_FUNCTION(crossmodal_encode_image_model);
Datum
crossmodal_encode_image_model(PG_FUNCTION_ARGS)
{
	return EncodeCall(fcinfo, text_to_cstring(PG_GETARG_TEXT_PP(0)), ENCODE_IMAGE,
					  PG_GETARG_DATUM(1));
}

CROSSMODAL_FUNCTION(crossmodal_encode_texts);
Datum
crossmodal_encode_texts(PG_FUNCTION_ARGS)
{
	return EncodeCall(fcinfo, DefaultModelName(), ENCODE_TEXTS, PG_GETARG_DATUM(0));
}

CROSSMODAL_FUNCTION(crossmodal_encode_texts_model);
Datum
crossmodal_encode_texts_model(PG_FUNCTION_ARGS)
{
	return EncodeCall(fcinfo, text_to_cstring(PG_GETARG_TEXT_PP(0)), ENCODE_TEXTS,
					  PG_GETARG_DATUM(1));
}

CROSSMODAL_FUNCTION(crossmodal_encode_images);
Datum
crossmodal_encode_images(PG_FUNCTION_ARGS)
{
	return EncodeCall(fcinfo, DefaultModelName(), ENCODE_IMAGES, PG_GETARG_DATUM(0));
}

CROSSMODAL_FUNCTION(crossmodal_encode_images_model);
Datum
crossmodal_encode_images_model(PG_FUNCTION_ARGS)
{
	return EncodeCall(fcinfo, text_to_cstring(PG_GETARG_TEXT_PP(0)), ENCODE_IMAGES,
					  PG_GETARG_DATUM(1));
}

/* Labels ordered by score, highest first; ties keep the labels' order. */
typedef struct LabelScore
{
	int			index;
	double		score;
} LabelScore;

static int
CompareLabelScores(const void *a, const void *b)
{
	const LabelScore *x = a;
	const LabelScore *y = b;

	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return x->index - y->index;
}

/*
 * Zero-shot labelling the model family's way: for SigLIP a probability per
 * label, sigmoid(logit_scale x cosine + logit_bias) (labels are scored
 * independently); for CLIP the softmax over the labels of logit_scale x
 * cosine(image, label).  The k best rows are returned.
 */
static Datum
ImageLabels(FunctionCallInfo fcinfo, const char *model_name, Datum image, Datum labels, int k)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	EncodeInput label_in;
	EncodeInput image_in;
	Datum	   *elems;
	int			n;
	CmModelEntry *entry;
	int			dim;
	float	   *image_emb;
	float	   *label_embs;
	LabelScore *scores;
	double		max_logit = -INFINITY,
				sum = 0;

	if (k < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("k must be at least 1, not %d", k)));
	InitMaterializedSRF(fcinfo, 0);
	InputKey(&label_in, ENCODE_TEXTS, labels);
	CheckInput(&label_in, "labels");
	elems = label_in.elems;
	n = label_in.n;
	if (n == 0)
		return (Datum) 0;
	InputKey(&image_in, ENCODE_IMAGE, image);
	CheckInput(&image_in, NULL);

	/* Both encodes go through the cache: labels repeat from row to row. */
	entry = CallSiteModel(fcinfo, CallSite(fcinfo), model_name);
	dim = entry->info.embed_dim;
	image_emb = EncodeCached(entry, &image_in);
	label_embs = EncodeCached(entry, &label_in);

	/* Both sides are L2-normalised: the dot product is the cosine. */
	scores = palloc(sizeof(LabelScore) * n);
	for (int i = 0; i < n; i++)
	{
		double		dot = 0;
		const float *l = label_embs + (size_t) i * dim;

		for (int j = 0; j < dim; j++)
			dot += (double) image_emb[j] * l[j];
		scores[i].index = i;
		scores[i].score = entry->info.logit_scale * dot +
			(entry->info.has_logit_bias ? entry->info.logit_bias : 0.0);
		max_logit = Max(max_logit, scores[i].score);
	}
	if (entry->info.has_logit_bias)
	{
		for (int i = 0; i < n; i++)
			scores[i].score = 1.0 / (1.0 + exp(-scores[i].score));
	}
	else
	{
		for (int i = 0; i < n; i++)
		{
			scores[i].score = exp(scores[i].score - max_logit);
			sum += scores[i].score;
		}
		for (int i = 0; i < n; i++)
			scores[i].score /= sum;
	}
	qsort(scores, n, sizeof(LabelScore), CompareLabelScores);

	for (int i = 0; i < Min(k, n); i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = elems[scores[i].index];
		values[1] = Float4GetDatum((float4) scores[i].score);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

CROSSMODAL_FUNCTION(crossmodal_image_labels);
Datum
crossmodal_image_labels(PG_FUNCTION_ARGS)
{
	return ImageLabels(fcinfo, DefaultModelName(), PG_GETARG_DATUM(0), PG_GETARG_DATUM(1),
					   PG_GETARG_INT32(2));
}

CROSSMODAL_FUNCTION(crossmodal_image_labels_model);
Datum
crossmodal_image_labels_model(PG_FUNCTION_ARGS)
{
	return ImageLabels(fcinfo, text_to_cstring(PG_GETARG_TEXT_PP(0)), PG_GETARG_DATUM(1),
					   PG_GETARG_DATUM(2), PG_GETARG_INT32(3));
}

CROSSMODAL_FUNCTION(crossmodal_models);
Datum
crossmodal_models(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	List	   *models;
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);
	models = CmListModels();
	foreach(lc, models)
	{
		CmModelListing *m = lfirst(lc);
		Datum		values[10];
		bool		nulls[10] = {0};

		values[0] = CStringGetTextDatum(m->name);
		values[1] = CStringGetTextDatum(m->directory);
		if (m->have_info)
		{
			values[2] = CStringGetTextDatum(m->family);
			values[3] = CStringGetTextDatum(m->tokenizer);
			values[4] = Int32GetDatum(m->info.embed_dim);
			values[5] = Int32GetDatum(m->info.image_size);
			values[6] = Int64GetDatum(m->info.n_params);
			values[7] = CStringGetTextDatum(m->weight_dtype);
		}
		else
			nulls[2] = nulls[3] = nulls[4] = nulls[5] = nulls[6] = nulls[7] = true;
		values[8] = BoolGetDatum(m->loaded);
		if (m->problem != NULL)
			values[9] = CStringGetTextDatum(m->problem);
		else
			nulls[9] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
