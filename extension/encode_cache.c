/*
 * encode_cache.c
 *	  Transaction-lifetime cache of encoder results (see encode_cache.h).
 *
 * A chained hash table in a memory context under TopTransactionContext: the
 * transaction's end deletes the context, and a reset callback forgets the
 * table.  When an entry would take the cache past work_mem, the whole cache
 * is dropped and starts again (inputs that do not repeat would only fill an
 * LRU list with entries nobody asks for again).
 */
#include "postgres.h"

#include <limits.h>

#include "common/hashfn.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "encode_cache.h"

typedef struct EncodeCacheEntry
{
	struct EncodeCacheEntry *next;	/* in its bucket */
	uint64		hash;
	const CmModelEntry *model;
	EncodeKind	kind;
	EncodeSettings settings;
	int			n;				/* number of vectors */
	Size		keylen;
	float	   *vectors;		/* [n][embed_dim], stored after the key */
	char		key[FLEXIBLE_ARRAY_MEMBER];
} EncodeCacheEntry;

static MemoryContext cache_cxt = NULL;
static EncodeCacheEntry **buckets = NULL;
static int	nbuckets = 0;
static int	nentries = 0;
static Size used = 0;			/* bytes taken by entries */

#define ENCODE_CACHE_MIN_BUCKETS 64

static void
ForgetCache(void *arg)
{
	cache_cxt = NULL;
	buckets = NULL;
	nbuckets = 0;
	nentries = 0;
	used = 0;
}

static void
CreateCache(void)
{
	MemoryContextCallback *forget;

	cache_cxt = AllocSetContextCreate(TopTransactionContext, "crossmodal encode cache",
									  ALLOCSET_DEFAULT_SIZES);
	forget = MemoryContextAlloc(cache_cxt, sizeof(MemoryContextCallback));
	forget->func = ForgetCache;
	forget->arg = NULL;
	MemoryContextRegisterResetCallback(cache_cxt, forget);
	buckets = MemoryContextAllocZero(cache_cxt,
									 sizeof(EncodeCacheEntry *) * ENCODE_CACHE_MIN_BUCKETS);
	nbuckets = ENCODE_CACHE_MIN_BUCKETS;
}

void
EncodeSettingsCurrent(EncodeKind kind, EncodeSettings *settings)
{
	/* Zeroed whole, padding included: entries compare them with memcmp. */
	memset(settings, 0, sizeof(EncodeSettings));
	if (kind == ENCODE_IMAGE || kind == ENCODE_IMAGES)
	{
		settings->max_image_bytes = cm_max_image_bytes;
		settings->max_image_pixels = cm_max_image_pixels;
		settings->exif_orientation = cm_orientation_setting;
		settings->background = cm_background_setting;
		settings->decode = cm_decode_setting;
	}
}

static uint64
KeyHash(const CmModelEntry *model, EncodeKind kind, const EncodeSettings *settings,
		const void *key, Size keylen)
{
	uint64		seed = (uint64) (uintptr_t) model * UINT64CONST(0x9E3779B97F4A7C15) + (uint64) kind;

	seed = DatumGetUInt64(hash_any_extended((const unsigned char *) settings,
											sizeof(EncodeSettings), seed));
	return DatumGetUInt64(hash_any_extended((const unsigned char *) key, (int) keylen, seed));
}

const float *
EncodeCacheLookup(const CmModelEntry *model, EncodeKind kind, const EncodeSettings *settings,
				  const void *key, Size keylen, int *n)
{
	uint64		hash;

	if (cache_cxt == NULL || keylen > (Size) INT_MAX)
		return NULL;
	hash = KeyHash(model, kind, settings, key, keylen);
	for (EncodeCacheEntry *e = buckets[hash & (nbuckets - 1)]; e != NULL; e = e->next)
	{
		if (e->hash == hash && e->model == model && e->kind == kind &&
			memcmp(&e->settings, settings, sizeof(EncodeSettings)) == 0 &&
			e->keylen == keylen && memcmp(e->key, key, keylen) == 0)
		{
			*n = e->n;
			return e->vectors;
		}
	}
	return NULL;
}

/* Doubles the bucket array (allocated before anything is moved). */
static void
GrowBuckets(void)
{
	int			grown = nbuckets * 2;
	EncodeCacheEntry **b = MemoryContextAllocZero(cache_cxt, sizeof(EncodeCacheEntry *) * grown);

	for (int i = 0; i < nbuckets; i++)
	{
		EncodeCacheEntry *e = buckets[i];

		while (e != NULL)
		{
			EncodeCacheEntry *next = e->next;

			e->next = b[e->hash & (grown - 1)];
			b[e->hash & (grown - 1)] = e;
			e = next;
		}
	}
	pfree(buckets);
	buckets = b;
	nbuckets = grown;
}

void
EncodeCacheStore(const CmModelEntry *model, EncodeKind kind, const EncodeSettings *settings,
				 const void *key, Size keylen, const float *vectors, int n)
{
	Size		budget = (Size) work_mem * 1024;
	Size		head = MAXALIGN(add_size(offsetof(EncodeCacheEntry, key), keylen));
	Size		vecbytes = mul_size(mul_size(sizeof(float), model->info.embed_dim), n);
	Size		size = add_size(head, vecbytes);
	EncodeCacheEntry *e;
	int			dummy;

	/* An entry larger than a quarter of the budget would evict too much. */
	if (size > budget / 4 || keylen > (Size) INT_MAX)
		return;
	if (cache_cxt != NULL && used + size > budget)
		MemoryContextDelete(cache_cxt);	/* ForgetCache resets the table */
	if (cache_cxt == NULL)
		CreateCache();
	else if (EncodeCacheLookup(model, kind, settings, key, keylen, &dummy) != NULL)
		return;
	if (nentries >= nbuckets)
		GrowBuckets();

	e = MemoryContextAlloc(cache_cxt, size);
	e->hash = KeyHash(model, kind, settings, key, keylen);
	e->model = model;
	e->kind = kind;
	e->settings = *settings;
	e->n = n;
	e->keylen = keylen;
	memcpy(e->key, key, keylen);
	e->vectors = (float *) ((char *) e + head);
	memcpy(e->vectors, vectors, vecbytes);
	e->next = buckets[e->hash & (nbuckets - 1)];
	buckets[e->hash & (nbuckets - 1)] = e;
	nentries++;
	used += GetMemoryChunkSpace(e);
}
