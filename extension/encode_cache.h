/*
 * encode_cache.h
 *	  The encodes computed in this transaction, so that a query repeating an
 *	  encoder call with the same model and input pays a lookup, not an encode.
 *
 * The STABLE encoder forms (no model name) are evaluated once per row when
 * they appear in a sequential scan's expressions: ORDER BY emb <=>
 * encode_text('...') without an index, a filter, a distance threshold.
 * Entries are keyed by the model (a loaded CmModelEntry, which the registry
 * keeps for the backend's lifetime), the kind of call, the settings an image
 * is read under and the input's bytes, and hold what the runtime returned; a hit gives back exactly what encoding
 * again would have given.  Memory is bounded by work_mem and released at the
 * end of the transaction.
 */
#ifndef CROSSMODAL_ENCODE_CACHE_H
#define CROSSMODAL_ENCODE_CACHE_H

#include "postgres.h"

#include "model_registry.h"

/*
 * What a key's bytes are.  One text and a text[] are different calls of
 * the runtime (a batch may round differently), so they never share entries.
 */
typedef enum EncodeKind
{
	ENCODE_TEXT,				/* one text's bytes (database encoding) */
	ENCODE_IMAGE,				/* one encoded image's bytes */
	ENCODE_TEXTS,				/* a text[] datum's bytes: n vectors */
	ENCODE_IMAGES				/* a bytea[] datum's bytes: n vectors */
} EncodeKind;

/*
 * What an image's embedding depends on besides the model and its bytes: the
 * crossmodal.image_* settings, and the limits, which decide whether it is
 * encoded at all.  A superuser may change them within a transaction (SET),
 * so they are part of the key.  All zero for texts.
 */
typedef struct EncodeSettings
{
	int			max_image_bytes;
	int			max_image_pixels;
	int			exif_orientation;
	int			background;
	int			decode;
} EncodeSettings;

/* The settings that apply now to an input of this kind. */
extern void EncodeSettingsCurrent(EncodeKind kind, EncodeSettings *settings);

/*
 * The n vectors of model->info.embed_dim floats cached for the key, or NULL.
 * The pointer is valid until the next EncodeCacheStore.
 */
extern const float *EncodeCacheLookup(const CmModelEntry *model, EncodeKind kind,
									  const EncodeSettings *settings,
									  const void *key, Size keylen, int *n);

/* Remembers n vectors for the key (unless the entry would not fit work_mem). */
extern void EncodeCacheStore(const CmModelEntry *model, EncodeKind kind,
							 const EncodeSettings *settings,
							 const void *key, Size keylen, const float *vectors, int n);

#endif							/* CROSSMODAL_ENCODE_CACHE_H */
