/*
 * fuzz_index.c
 *	  libFuzzer target: arbitrary bytes as a sharded checkpoint's index
 *	  (model.safetensors.index.json).  A map that parses must be sorted,
 *	  unique, within its bounds, and name only plain shard files.
 */
#include <stdlib.h>
#include <string.h>

#include "safetensors_index.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cm_weight_map map;
	cm_error	err;

	err.message[0] = '\0';
	if (cm_weight_map_parse((const char *) data, size, "index.json", &map, &err) != CM_OK)
	{
		if (err.message[0] == '\0' || map.n_tensors != 0 || map.storage != NULL)
			abort();
		return 0;
	}
	if (map.n_tensors < 1 || map.n_tensors > CM_INDEX_MAX_TENSORS ||
		map.n_shards < 1 || map.n_shards > CM_INDEX_MAX_SHARDS || map.n_shards > map.n_tensors)
		abort();
	for (int i = 0; i < map.n_tensors; i++)
	{
		if (map.shard[i] < 0 || map.shard[i] >= map.n_shards || map.tensor[i][0] == '\0')
			abort();
		if (i > 0 && strcmp(map.tensor[i - 1], map.tensor[i]) >= 0)
			abort();
	}
	for (int i = 0; i < map.n_shards; i++)
	{
		const char *f = map.shard_file[i];

		if (f[0] == '\0' || f[0] == '.' || strchr(f, '/') != NULL || strlen(f) > CM_INDEX_MAX_FILE_NAME)
			abort();
		if (i > 0 && strcmp(map.shard_file[i - 1], f) >= 0)
			abort();
	}
	cm_weight_map_free(&map);
	return 0;
}
