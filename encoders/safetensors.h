/*
 * safetensors.h
 *	  Read-only view of a .safetensors file: the JSON header is parsed and every
 *	  tensor's dtype, shape and byte range validated against the file before use.
 */
#ifndef CM_SAFETENSORS_H
#define CM_SAFETENSORS_H

#include "cm_common.h"

#define CM_MAX_DIMS 8

typedef enum cm_dtype
{
	CM_DTYPE_F32,
	CM_DTYPE_F16,
	CM_DTYPE_BF16,
	CM_DTYPE_OTHER				/* present in the file, not usable as weights */
} cm_dtype;

typedef struct cm_tensor_view
{
	const char *name;
	cm_dtype	dtype;
	int			ndim;
	int64_t		shape[CM_MAX_DIMS];
	int64_t		n_elements;
	const void *data;			/* points into the mapping: read-only */
	size_t		nbytes;
	const char *dtype_name;		/* the header's dtype string ("F32", "I64", ...): static */
} cm_tensor_view;

typedef struct cm_safetensors cm_safetensors;

/* mmap the file read-only and validate its header. */
cm_safetensors *cm_safetensors_open(const char *path, cm_error *err);

/*
 * Same validation over a caller-owned buffer that must outlive the result.
 * Tensor data must be aligned to its element size in memory (true of the
 * mapping when the file's offsets are; give a suitably aligned buffer).
 */
cm_safetensors *cm_safetensors_from_memory(const void *buf, size_t len, cm_error *err);

/*
 * A checkpoint sharded as transformers writes it: dir/index_file (such as
 * model.safetensors.index.json) maps every tensor to the file in dir that
 * holds it.  Each shard is opened and validated as above and must hold the
 * tensors mapped to it; the result finds every mapped tensor (tensors a
 * shard holds beyond the map are not seen).
 */
cm_safetensors *cm_safetensors_open_index(const char *dir, const char *index_file, cm_error *err);

void		cm_safetensors_close(cm_safetensors *st);

/*
 * CM_OK unless a mapped file (or shard) was written in place since it was
 * mapped: its size or modification time differ.  Reading the mapping of a
 * file truncated under it raises SIGBUS, and one rewritten in place holds
 * other weights, so its users must stop using it.  A file replaced by a
 * rename is another file: the mapping stays valid and this says nothing.
 */
cm_status	cm_safetensors_check_unchanged(const cm_safetensors *st, cm_error *err);

int			cm_safetensors_count(const cm_safetensors *st);
const cm_tensor_view *cm_safetensors_at(const cm_safetensors *st, int i);
/* NULL when absent. */
const cm_tensor_view *cm_safetensors_find(const cm_safetensors *st, const char *name);

/* "F32", "F16", "BF16" or "other". */
const char *cm_dtype_name(cm_dtype dtype);

/* Widen a tensor's elements to float32 into out[n_elements]. */
cm_status	cm_tensor_to_f32(const cm_tensor_view *t, float *out, cm_error *err);

#endif							/* CM_SAFETENSORS_H */
