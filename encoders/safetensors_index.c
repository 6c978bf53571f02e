/*
 * safetensors_index.c
 *	  Parser of a sharded checkpoint's index file.  Nothing in it is trusted:
 *	  the counts are bounded, every tensor is named once, and a shard file
 *	  name cannot leave the model directory (no '/', no leading '.').
 */
#include "safetensors_index.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

typedef struct map_entry
{
	const char *tensor;			/* in the parsed JSON */
	const char *file;
} map_entry;

static int
compare_entries(const void *a, const void *b)
{
	return strcmp(((const map_entry *) a)->tensor, ((const map_entry *) b)->tensor);
}

static int
compare_strings(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

static bool
valid_shard_file_name(const char *name)
{
	size_t		len = strlen(name);

	if (len == 0 || len > CM_INDEX_MAX_FILE_NAME || name[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++)
	{
		char		c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* Index of file in the sorted, unique files[n] (present by construction). */
static int
find_file(const char *const *files, int n, const char *file)
{
	int			lo = 0,
				hi = n - 1;

	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (strcmp(files[mid], file) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Copy the entries' strings into map (entries sorted by tensor, files sorted and unique). */
static cm_status
fill_map(cm_weight_map *map, const map_entry *entries, int n, const char **files, int n_files,
		 const char *label, cm_error *err)
{
	size_t		bytes = 0;
	char	   *dst;

	for (int i = 0; i < n; i++)
		bytes += strlen(entries[i].tensor) + 1;
	for (int i = 0; i < n_files; i++)
		bytes += strlen(files[i]) + 1;
	map->storage = malloc(bytes);
	map->tensor = malloc((size_t) n * sizeof(*map->tensor));
	map->shard = malloc((size_t) n * sizeof(*map->shard));
	map->shard_file = malloc((size_t) n_files * sizeof(*map->shard_file));
	if (map->storage == NULL || map->tensor == NULL || map->shard == NULL || map->shard_file == NULL)
		return cm_set_error(err, CM_ERR_NOMEM, "%s: out of memory for the weight map", label);
	dst = map->storage;
	for (int i = 0; i < n_files; i++)
	{
		size_t		len = strlen(files[i]) + 1;

		memcpy(dst, files[i], len);
		map->shard_file[i] = dst;
		dst += len;
	}
	map->n_shards = n_files;
	for (int i = 0; i < n; i++)
	{
		size_t		len = strlen(entries[i].tensor) + 1;

		memcpy(dst, entries[i].tensor, len);
		map->tensor[i] = dst;
		map->shard[i] = find_file(files, n_files, entries[i].file);
		dst += len;
	}
	map->n_tensors = n;
	return CM_OK;
}

cm_status
cm_weight_map_parse(const char *text, size_t len, const char *label, cm_weight_map *map,
					cm_error *err)
{
	cJSON	   *root;
	const cJSON *weight_map,
			   *item;
	map_entry  *entries = NULL;
	const char **files = NULL;
	int			n = 0,
				n_files = 0;
	cm_status	status = CM_OK;

	memset(map, 0, sizeof(*map));
	if (text == NULL)
		return cm_set_error(err, CM_ERR_MODEL, "%s: no index text", label);
	root = cJSON_ParseWithLength(text, len);
	if (root == NULL)
		return cm_set_error(err, CM_ERR_MODEL, "%s: not valid JSON", label);
	weight_map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
	if (!cJSON_IsObject(root) || !cJSON_IsObject(weight_map))
	{
		status = cm_set_error(err, CM_ERR_MODEL, "%s: no \"weight_map\" object", label);
		goto done;
	}
	cJSON_ArrayForEach(item, weight_map)
	{
		if (++n > CM_INDEX_MAX_TENSORS)
		{
			status = cm_set_error(err, CM_ERR_MODEL, "%s: weight_map has more than %d tensors",
								  label, CM_INDEX_MAX_TENSORS);
			goto done;
		}
	}
	if (n == 0)
	{
		status = cm_set_error(err, CM_ERR_MODEL, "%s: weight_map is empty", label);
		goto done;
	}
	entries = malloc((size_t) n * sizeof(*entries));
	files = malloc((size_t) n * sizeof(*files));
	if (entries == NULL || files == NULL)
	{
		status = cm_set_error(err, CM_ERR_NOMEM, "%s: out of memory for %d weight_map entries", label, n);
		goto done;
	}
	n = 0;
	cJSON_ArrayForEach(item, weight_map)
	{
		const char *name = item->string;

		if (name == NULL || name[0] == '\0' || strlen(name) > CM_INDEX_MAX_NAME)
		{
			status = cm_set_error(err, CM_ERR_MODEL, "%s: weight_map has an empty or over-long tensor name",
								  label);
			goto done;
		}
		if (!cJSON_IsString(item) || !valid_shard_file_name(item->valuestring))
		{
			status = cm_set_error(err, CM_ERR_MODEL,
								  "%s: tensor \"%.200s\": the shard must be a file name in the model directory "
								  "(letters, digits, '.', '_', '-'; not starting with '.')", label, name);
			goto done;
		}
		entries[n].tensor = name;
		entries[n].file = item->valuestring;
		files[n] = item->valuestring;
		n++;
	}
	qsort(entries, (size_t) n, sizeof(*entries), compare_entries);
	for (int i = 1; i < n; i++)
		if (strcmp(entries[i - 1].tensor, entries[i].tensor) == 0)
		{
			status = cm_set_error(err, CM_ERR_MODEL, "%s: tensor \"%.200s\" appears twice in weight_map",
								  label, entries[i].tensor);
			goto done;
		}
	qsort(files, (size_t) n, sizeof(*files), compare_strings);
	for (int i = 0; i < n; i++)
		if (n_files == 0 || strcmp(files[n_files - 1], files[i]) != 0)
			files[n_files++] = files[i];
	if (n_files > CM_INDEX_MAX_SHARDS)
	{
		status = cm_set_error(err, CM_ERR_MODEL, "%s: weight_map names %d shard files, more than %d",
							  label, n_files, CM_INDEX_MAX_SHARDS);
		goto done;
	}
	status = fill_map(map, entries, n, files, n_files, label, err);

done:
	if (status != CM_OK)
		cm_weight_map_free(map);
	free(entries);
	free(files);
	cJSON_Delete(root);
	return status;
}

void
cm_weight_map_free(cm_weight_map *map)
{
	if (map == NULL)
		return;
	free(map->tensor);
	free(map->shard);
	free(map->shard_file);
	free(map->storage);
	memset(map, 0, sizeof(*map));
}
