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
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/tuplestore.h"

#include "crossmodal.h"
#include "embedding.h"
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

static Datum
EncodeOneText(const char *model_name, text *input)
{
	CmModelEntry *entry = CmGetModel(model_name);
	int			dim = entry->info.embed_dim;
	float	   *out = palloc(sizeof(float) * dim);
	size_t		len;
	const char *utf8 = TextToUtf8(input, &len);

	EncodeTexts(entry, &utf8, &len, 1, out);
	PG_RETURN_EMBEDDING_P(EmbeddingFromFloats(out, dim));
}

static Datum
EncodeOneImage(const char *model_name, bytea *input)
{
	CmModelEntry *entry;
	const unsigned char *bytes = (const unsigned char *) VARDATA_ANY(input);
	size_t		len = VARSIZE_ANY_EXHDR(input);
	float	   *out;

	CheckImageBytes(len, 0);
	entry = CmGetModel(model_name);
	out = palloc(sizeof(float) * entry->info.embed_dim);
	EncodeImages(entry, &bytes, &len, 1, out, false);
	PG_RETURN_EMBEDDING_P(EmbeddingFromFloats(out, entry->info.embed_dim));
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

static Datum
EncodeTextArray(FunctionCallInfo fcinfo, const char *model_name, ArrayType *input)
{
	Datum	   *elems;
	int			n;
	const char **texts;
	size_t	   *lens;
	CmModelEntry *entry;
	float	   *out;

	DeconstructInputs(input, TEXTOID, "texts", &elems, &n);
	entry = CmGetModel(model_name);
	texts = palloc(sizeof(char *) * Max(n, 1));
	lens = palloc(sizeof(size_t) * Max(n, 1));
	for (int i = 0; i < n; i++)
		texts[i] = TextToUtf8((text *) DatumGetPointer(elems[i]), &lens[i]);
	out = palloc(mul_size(sizeof(float) * entry->info.embed_dim, Max(n, 1)));
	if (n > 0)
		EncodeTexts(entry, texts, lens, n, out);
	PG_RETURN_ARRAYTYPE_P(EmbeddingArray(fcinfo, out, n, entry->info.embed_dim));
}

static Datum
EncodeImageArray(FunctionCallInfo fcinfo, const char *model_name, ArrayType *input)
{
	Datum	   *elems;
	int			n;
	const unsigned char **images;
	size_t	   *lens;
	CmModelEntry *entry;
	float	   *out;

	DeconstructInputs(input, BYTEAOID, "images", &elems, &n);
	images = palloc(sizeof(char *) * Max(n, 1));
	lens = palloc(sizeof(size_t) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		bytea	   *b = (bytea *) DatumGetPointer(elems[i]);

		images[i] = (const unsigned char *) VARDATA_ANY(b);
		lens[i] = VARSIZE_ANY_EXHDR(b);
		CheckImageBytes(lens[i], i + 1);
	}
	entry = CmGetModel(model_name);
	out = palloc(mul_size(sizeof(float) * entry->info.embed_dim, Max(n, 1)));
	if (n > 0)
		EncodeImages(entry, images, lens, n, out, true);
	PG_RETURN_ARRAYTYPE_P(EmbeddingArray(fcinfo, out, n, entry->info.embed_dim));
}

CROSSMODAL_FUNCTION(crossmodal_encode_text);
Datum
crossmodal_encode_text(PG_FUNCTION_ARGS)
{
	return EncodeOneText(DefaultModelName(), PG_GETARG_TEXT_PP(0));
}

CROSSMODAL_FUNCTION(crossmodal_encode_text_model);
Datum
crossmodal_encode_text_model(PG_FUNCTION_ARGS)
{
	return EncodeOneText(text_to_cstring(PG_GETARG_TEXT_PP(0)), PG_GETARG_TEXT_PP(1));
}

CROSSMODAL_FUNCTION(crossmodal_encode_image);
Datum
crossmodal_encode_image(PG_FUNCTION_ARGS)
{
	return EncodeOneImage(DefaultModelName(), PG_GETARG_BYTEA_PP(0));
}

CROSSMODAL_FUNCTION(crossmodal_encode_image_model);
Datum
crossmodal_encode_image_model(PG_FUNCTION_ARGS)
{
	return EncodeOneImage(text_to_cstring(PG_GETARG_TEXT_PP(0)), PG_GETARG_BYTEA_PP(1));
}

CROSSMODAL_FUNCTION(crossmodal_encode_texts);
Datum
crossmodal_encode_texts(PG_FUNCTION_ARGS)
{
	return EncodeTextArray(fcinfo, DefaultModelName(), PG_GETARG_ARRAYTYPE_P(0));
}

CROSSMODAL_FUNCTION(crossmodal_encode_texts_model);
Datum
crossmodal_encode_texts_model(PG_FUNCTION_ARGS)
{
	return EncodeTextArray(fcinfo, text_to_cstring(PG_GETARG_TEXT_PP(0)),
						   PG_GETARG_ARRAYTYPE_P(1));
}

CROSSMODAL_FUNCTION(crossmodal_encode_images);
Datum
crossmodal_encode_images(PG_FUNCTION_ARGS)
{
	return EncodeImageArray(fcinfo, DefaultModelName(), PG_GETARG_ARRAYTYPE_P(0));
}

CROSSMODAL_FUNCTION(crossmodal_encode_images_model);
Datum
crossmodal_encode_images_model(PG_FUNCTION_ARGS)
{
	return EncodeImageArray(fcinfo, text_to_cstring(PG_GETARG_TEXT_PP(0)),
							PG_GETARG_ARRAYTYPE_P(1));
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
ImageLabels(FunctionCallInfo fcinfo, const char *model_name, bytea *image,
			ArrayType *labels, int k)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum	   *elems;
	int			n;
	CmModelEntry *entry;
	int			dim;
	const unsigned char *bytes = (const unsigned char *) VARDATA_ANY(image);
	size_t		image_len = VARSIZE_ANY_EXHDR(image);
	float	   *image_emb;
	float	   *label_embs;
	const char **texts;
	size_t	   *lens;
	LabelScore *scores;
	double		max_logit = -INFINITY,
				sum = 0;

	if (k < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("k must be at least 1, not %d", k)));
	InitMaterializedSRF(fcinfo, 0);
	DeconstructInputs(labels, TEXTOID, "labels", &elems, &n);
	if (n == 0)
		return (Datum) 0;
	CheckImageBytes(image_len, 0);

	entry = CmGetModel(model_name);
	dim = entry->info.embed_dim;
	image_emb = palloc(sizeof(float) * dim);
	label_embs = palloc(mul_size(sizeof(float) * dim, n));
	texts = palloc(sizeof(char *) * n);
	lens = palloc(sizeof(size_t) * n);
	for (int i = 0; i < n; i++)
		texts[i] = TextToUtf8((text *) DatumGetPointer(elems[i]), &lens[i]);

	EncodeImages(entry, &bytes, &image_len, 1, image_emb, false);
	EncodeTexts(entry, texts, lens, n, label_embs);

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
	return ImageLabels(fcinfo, DefaultModelName(), PG_GETARG_BYTEA_PP(0),
					   PG_GETARG_ARRAYTYPE_P(1), PG_GETARG_INT32(2));
}

CROSSMODAL_FUNCTION(crossmodal_image_labels_model);
Datum
crossmodal_image_labels_model(PG_FUNCTION_ARGS)
{
	return ImageLabels(fcinfo, text_to_cstring(PG_GETARG_TEXT_PP(0)), PG_GETARG_BYTEA_PP(1),
					   PG_GETARG_ARRAYTYPE_P(2), PG_GETARG_INT32(3));
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
