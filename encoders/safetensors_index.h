/*
 * safetensors_index.h
 *	  The weight map of a sharded checkpoint's index file, as transformers
 *	  writes it (model.safetensors.index.json): {"weight_map": {tensor name:
 *	  shard file name, ...}, "metadata": {...}}.
 */
#ifndef CM_SAFETENSORS_INDEX_H
#define CM_SAFETENSORS_INDEX_H

#include "cm_common.h"

#define CM_INDEX_MAX_SHARDS 1024
#define CM_INDEX_MAX_TENSORS 1000000
#define CM_INDEX_MAX_NAME 1024	/* bytes of a tensor name */
#define CM_INDEX_MAX_FILE_NAME 255	/* bytes of a shard file name */

typedef struct cm_weight_map
{
	int			n_tensors;
	const char **tensor;		/* [n_tensors], sorted, unique */
	int		   *shard;			/* [n_tensors]: index into shard_file */
	int			n_shards;
	const char **shard_file;	/* [n_shards], sorted, unique */
	char	   *storage;		/* every string above */
} cm_weight_map;

/*
 * Parse and check an index file's text (len bytes, no NUL needed); label
 * names the file in messages.  Shard file names must be plain names within
 * the model directory: letters, digits, '.', '_' and '-', not starting with
 * '.'.  On success *map owns its strings (cm_weight_map_free); on failure
 * *map is empty.
 */
cm_status	cm_weight_map_parse(const char *text, size_t len, const char *label,
								cm_weight_map *map, cm_error *err);

void		cm_weight_map_free(cm_weight_map *map);

#endif							/* CM_SAFETENSORS_INDEX_H */
