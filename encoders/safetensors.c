/*
 * safetensors.c
 *	  Read-only, validating reader of the .safetensors format: an 8-byte
 *	  little-endian header length, a JSON header, then the raw tensor bytes.
 *
 * Nothing in the header is trusted: the header length is checked against the
 * file, every tensor's dtype, shape and [begin, end) byte range are checked
 * (overflow included) against the data area, tensor ranges must not overlap,
 * names must be unique, and each tensor's data must be aligned for its
 * element type so that callers may read float32 weights in place.
 */
#include "safetensors.h"

#include "config.h"
#include "safetensors_index.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The reference implementation refuses headers above 100 MB; so do we. */
#define CM_ST_MAX_HEADER ((uint64_t) 100 * 1000 * 1000)
/* Integers in the header come through a double: stay where it is exact. */
#define CM_ST_MAX_JSON_INT ((double) (1ULL << 53))

struct cm_safetensors
{
	const unsigned char *base;	/* whole file (mapping or caller buffer) */
	size_t		len;
	bool		mapped;			/* base came from mmap and is ours to unmap */
	int			fd;				/* the mapped file, kept open to notice it change; else -1 */
	off_t		mapped_size;	/* its size and modification time when mapped */
	struct timespec mapped_mtime;
	const char *label;			/* file name for messages */
	char	   *label_owned;
	int			n_tensors;
	cm_tensor_view *tensors;	/* sorted by name */
	char	   *names;			/* all names, NUL-separated */
	cm_safetensors **shards;	/* of a sharded checkpoint: the views point into these */
	int			n_shards;
};

typedef struct dtype_info
{
	const char *name;
	cm_dtype	dtype;
	size_t		size;
} dtype_info;

/* Every dtype the format defines; only the first three are usable weights. */
static const dtype_info dtype_table[] = {
	{"F32", CM_DTYPE_F32, 4},
	{"F16", CM_DTYPE_F16, 2},
	{"BF16", CM_DTYPE_BF16, 2},
	{"F64", CM_DTYPE_OTHER, 8},
	{"I64", CM_DTYPE_OTHER, 8},
	{"U64", CM_DTYPE_OTHER, 8},
	{"I32", CM_DTYPE_OTHER, 4},
	{"U32", CM_DTYPE_OTHER, 4},
	{"I16", CM_DTYPE_OTHER, 2},
	{"U16", CM_DTYPE_OTHER, 2},
	{"I8", CM_DTYPE_OTHER, 1},
	{"U8", CM_DTYPE_OTHER, 1},
	{"BOOL", CM_DTYPE_OTHER, 1},
	{"F8_E4M3", CM_DTYPE_OTHER, 1},
	{"F8_E5M2", CM_DTYPE_OTHER, 1},
};

const char *
cm_dtype_name(cm_dtype dtype)
{
	switch (dtype)
	{
		case CM_DTYPE_F32:
			return "F32";
		case CM_DTYPE_F16:
			return "F16";
		case CM_DTYPE_BF16:
			return "BF16";
		case CM_DTYPE_OTHER:
			break;
	}
	return "other";
}

static const dtype_info *
lookup_dtype(const char *name)
{
	for (size_t i = 0; i < sizeof(dtype_table) / sizeof(dtype_table[0]); i++)
		if (strcmp(dtype_table[i].name, name) == 0)
			return &dtype_table[i];
	return NULL;
}

/* A JSON number that is an exact integer in [0, 2^53]. */
static bool
json_get_index(const cJSON *item, uint64_t *out)
{
	double		v;

	if (!cJSON_IsNumber(item))
		return false;
	v = item->valuedouble;
	if (!(v >= 0.0 && v <= CM_ST_MAX_JSON_INT) || floor(v) != v)
		return false;
	*out = (uint64_t) v;
	return true;
}

static int
compare_by_name(const void *a, const void *b)
{
	return strcmp(((const cm_tensor_view *) a)->name,
				  ((const cm_tensor_view *) b)->name);
}

static int
compare_by_offset(const void *a, const void *b)
{
	const cm_tensor_view *ta = *(const cm_tensor_view *const *) a;
	const cm_tensor_view *tb = *(const cm_tensor_view *const *) b;
	const unsigned char *pa = ta->data;
	const unsigned char *pb = tb->data;

	if (pa != pb)
		return pa < pb ? -1 : 1;
	if (ta->nbytes != tb->nbytes)
		return ta->nbytes < tb->nbytes ? -1 : 1;
	return 0;
}

/* Parse one tensor entry of the header into *t (name filled by caller). */
static cm_status
parse_tensor_entry(const cm_safetensors *st, const cJSON *entry,
				   const unsigned char *data, size_t data_len,
				   cm_tensor_view *t, cm_error *err)
{
	const cJSON *jdtype = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
	const cJSON *jshape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
	const cJSON *joffs = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
	const dtype_info *di;
	uint64_t	begin,
				end,
				n_elements = 1;
	size_t		nbytes;
	int			ndim;

	if (!cJSON_IsObject(entry))
		return cm_set_error(err, CM_ERR_MODEL, "%s: tensor \"%s\": header entry is not an object",
							st->label, t->name);
	if (!cJSON_IsString(jdtype))
		return cm_set_error(err, CM_ERR_MODEL, "%s: tensor \"%s\": missing or non-string \"dtype\"",
							st->label, t->name);
	di = lookup_dtype(jdtype->valuestring);
	if (di == NULL)
		return cm_set_error(err, CM_ERR_MODEL, "%s: tensor \"%s\": unknown dtype \"%.32s\"",
							st->label, t->name, jdtype->valuestring);
	t->dtype = di->dtype;
	t->dtype_name = di->name;

	if (!cJSON_IsArray(jshape))
		return cm_set_error(err, CM_ERR_MODEL, "%s: tensor \"%s\": missing or non-array \"shape\"",
							st->label, t->name);
	ndim = cJSON_GetArraySize(jshape);
	if (ndim > CM_MAX_DIMS)
		return cm_set_error(err, CM_ERR_MODEL, "%s: tensor \"%s\": %d dimensions, at most %d supported",
							st->label, t->name, ndim, CM_MAX_DIMS);
	t->ndim = ndim;
	for (int i = 0; i < ndim; i++)
	{
		uint64_t	dim;

		if (!json_get_index(cJSON_GetArrayItem(jshape, i), &dim))
			return cm_set_error(err, CM_ERR_MODEL, "%s: tensor \"%s\": shape entry %d is not a non-negative integer",
								st->label, t->name, i);
		t->shape[i] = (int64_t) dim;
		if (__builtin_mul_overflow(n_elements, dim, &n_elements) || n_elements > (uint64_t) INT64_MAX)
			return cm_set_error(err, CM_ERR_MODEL, "%s: tensor \"%s\": element count overflows",
								st->label, t->name);
	}
	for (int i = ndim; i < CM_MAX_DIMS; i++)
		t->shape[i] = 0;
	t->n_elements = (int64_t) n_elements;

	if (!cJSON_IsArray(joffs) || cJSON_GetArraySize(joffs) != 2 ||
		!json_get_index(cJSON_GetArrayItem(joffs, 0), &begin) ||
		!json_get_index(cJSON_GetArrayItem(joffs, 1), &end))
		return cm_set_error(err, CM_ERR_MODEL, "%s: tensor \"%s\": \"data_offsets\" is not a pair of non-negative integers",
							st->label, t->name);
	if (begin > end || end > data_len)
		return cm_set_error(err, CM_ERR_MODEL,
							"%s: tensor \"%s\": data_offsets [%llu, %llu) outside the %zu-byte data area",
							st->label, t->name, (unsigned long long) begin,
							(unsigned long long) end, data_len);
	if (!cm_mul_size((size_t) n_elements, di->size, &nbytes) || nbytes != end - begin)
		return cm_set_error(err, CM_ERR_MODEL,
							"%s: tensor \"%s\": %llu bytes for %llu elements of %s",
							st->label, t->name, (unsigned long long) (end - begin),
							(unsigned long long) n_elements, di->name);
	t->data = data + begin;
	t->nbytes = nbytes;
	if (((uintptr_t) t->data) % di->size != 0)
		return cm_set_error(err, CM_ERR_MODEL,
							"%s: tensor \"%s\": data at offset %llu is not aligned to its %zu-byte elements",
							st->label, t->name, (unsigned long long) begin, di->size);
	return CM_OK;
}

static cm_status
parse_header(cm_safetensors *st, cm_error *err)
{
	uint64_t	header_len = 0;
	const char *header;
	const unsigned char *data;
	size_t		data_len;
	cJSON	   *root;
	const cJSON *entry;
	size_t		names_bytes = 0;
	int			n = 0;
	char	   *name_dst;
	cm_tensor_view **by_offset = NULL;
	cm_status	status = CM_OK;

	if (st->len < 8)
		return cm_set_error(err, CM_ERR_MODEL, "%s: file is %zu bytes, too short for a safetensors header",
							st->label, st->len);
	for (int i = 7; i >= 0; i--)
		header_len = (header_len << 8) | st->base[i];
	if (header_len > st->len - 8)
		return cm_set_error(err, CM_ERR_MODEL,
							"%s: header length %llu exceeds the %zu bytes left in the file",
							st->label, (unsigned long long) header_len, st->len - 8);
	if (header_len > CM_ST_MAX_HEADER)
		return cm_set_error(err, CM_ERR_MODEL, "%s: header length %llu exceeds the %llu-byte limit",
							st->label, (unsigned long long) header_len,
							(unsigned long long) CM_ST_MAX_HEADER);
	if (header_len < 2)
		return cm_set_error(err, CM_ERR_MODEL, "%s: header of %llu bytes cannot hold a JSON object",
							st->label, (unsigned long long) header_len);
	header = (const char *) st->base + 8;
	data = st->base + 8 + header_len;
	data_len = st->len - 8 - (size_t) header_len;

	/* The format pads the header with spaces; anything else after it is invalid. */
	{
		const char *end = NULL;

		root = cJSON_ParseWithLengthOpts(header, (size_t) header_len, &end, false);
		for (; root != NULL && end != NULL && end < header + header_len; end++)
			if (*end != ' ')
			{
				cJSON_Delete(root);
				root = NULL;
			}
	}
	if (root == NULL)
		return cm_set_error(err, CM_ERR_MODEL, "%s: header is not valid JSON", st->label);
	if (!cJSON_IsObject(root))
	{
		cJSON_Delete(root);
		return cm_set_error(err, CM_ERR_MODEL, "%s: header is not a JSON object", st->label);
	}

	/* First pass: count tensors and the bytes their names need. */
	cJSON_ArrayForEach(entry, root)
	{
		size_t		nl;

		if (entry->string == NULL)
		{
			status = cm_set_error(err, CM_ERR_MODEL, "%s: header entry without a name", st->label);
			goto done;
		}
		if (strcmp(entry->string, "__metadata__") == 0)
		{
			if (!cJSON_IsObject(entry))
			{
				status = cm_set_error(err, CM_ERR_MODEL, "%s: \"__metadata__\" is not an object", st->label);
				goto done;
			}
			continue;
		}
		nl = strlen(entry->string);
		if (nl == 0)
		{
			status = cm_set_error(err, CM_ERR_MODEL, "%s: tensor with an empty name", st->label);
			goto done;
		}
		names_bytes += nl + 1;	/* bounded by the header length */
		n++;
	}

	st->tensors = calloc(n > 0 ? (size_t) n : 1, sizeof(cm_tensor_view));
	st->names = malloc(names_bytes > 0 ? names_bytes : 1);
	by_offset = calloc(n > 0 ? (size_t) n : 1, sizeof(cm_tensor_view *));
	if (st->tensors == NULL || st->names == NULL || by_offset == NULL)
	{
		status = cm_set_error(err, CM_ERR_NOMEM, "%s: out of memory reading the header", st->label);
		goto done;
	}

	name_dst = st->names;
	cJSON_ArrayForEach(entry, root)
	{
		cm_tensor_view *t;
		size_t		nl;

		if (strcmp(entry->string, "__metadata__") == 0)
			continue;
		t = &st->tensors[st->n_tensors];
		nl = strlen(entry->string);
		memcpy(name_dst, entry->string, nl + 1);
		t->name = name_dst;
		name_dst += nl + 1;
		status = parse_tensor_entry(st, entry, data, data_len, t, err);
		if (status != CM_OK)
			goto done;
		st->n_tensors++;
	}

	/* Unique names (sorted for binary search by cm_safetensors_find). */
	qsort(st->tensors, (size_t) st->n_tensors, sizeof(cm_tensor_view), compare_by_name);
	for (int i = 1; i < st->n_tensors; i++)
		if (strcmp(st->tensors[i - 1].name, st->tensors[i].name) == 0)
		{
			status = cm_set_error(err, CM_ERR_MODEL, "%s: tensor \"%s\" appears twice in the header",
								  st->label, st->tensors[i].name);
			goto done;
		}

	/* Non-empty byte ranges must not overlap. */
	for (int i = 0; i < st->n_tensors; i++)
		by_offset[i] = &st->tensors[i];
	qsort(by_offset, (size_t) st->n_tensors, sizeof(cm_tensor_view *), compare_by_offset);
	{
		const unsigned char *prev_end = data;
		const char *prev_name = NULL;

		for (int i = 0; i < st->n_tensors; i++)
		{
			const cm_tensor_view *t = by_offset[i];
			const unsigned char *p = t->data;

			if (t->nbytes == 0)
				continue;
			if (p < prev_end)
			{
				status = cm_set_error(err, CM_ERR_MODEL,
									  "%s: tensors \"%s\" and \"%s\" overlap in the data area",
									  st->label, prev_name, t->name);
				goto done;
			}
			prev_end = p + t->nbytes;
			prev_name = t->name;
		}
	}

done:
	free(by_offset);
	cJSON_Delete(root);
	return status;
}

static cm_safetensors *
new_reader(const char *label, cm_error *err)
{
	cm_safetensors *st = calloc(1, sizeof(*st));

	if (st == NULL)
	{
		cm_set_error(err, CM_ERR_NOMEM, "out of memory opening %s", label);
		return NULL;
	}
	st->label_owned = strdup(label);
	if (st->label_owned == NULL)
	{
		free(st);
		cm_set_error(err, CM_ERR_NOMEM, "out of memory opening %s", label);
		return NULL;
	}
	st->label = st->label_owned;
	st->fd = -1;
	return st;
}

cm_safetensors *
cm_safetensors_open(const char *path, cm_error *err)
{
	cm_safetensors *st;
	struct stat sb;
	int			fd;
	void	   *map;
	int			map_errno;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
	{
		int			e = errno;

		cm_set_error(err, CM_ERR_IO, "%s: cannot open: %s", path, strerror(e));
		if (e == ENOENT)
			cm_error_set_missing(err, path);
		return NULL;
	}
	if (fstat(fd, &sb) != 0)
	{
		cm_set_error(err, CM_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	if (!S_ISREG(sb.st_mode))
	{
		cm_set_error(err, CM_ERR_IO, "%s: not a regular file", path);
		close(fd);
		return NULL;
	}
	if (sb.st_size < 8)
	{
		close(fd);
		cm_set_error(err, CM_ERR_MODEL, "%s: file is %lld bytes, too short for a safetensors header",
					 path, (long long) sb.st_size);
		return NULL;
	}
	if ((uint64_t) sb.st_size > SIZE_MAX)
	{
		close(fd);
		cm_set_error(err, CM_ERR_MODEL, "%s: file too large to map", path);
		return NULL;
	}
	map = mmap(NULL, (size_t) sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	map_errno = errno;
	if (map == MAP_FAILED)
	{
		int			e = map_errno;

		close(fd);

		/* ENOMEM: the address space is short (RLIMIT_AS, overcommit), not the file */
		cm_set_error(err, e == ENOMEM ? CM_ERR_NOMEM : CM_ERR_IO, "%s: cannot map: %s",
					 path, strerror(e));
		return NULL;
	}
	st = new_reader(path, err);
	if (st == NULL)
	{
		munmap(map, (size_t) sb.st_size);
		close(fd);
		return NULL;
	}
	st->base = map;
	st->len = (size_t) sb.st_size;
	st->mapped = true;
	st->fd = fd;
	st->mapped_size = sb.st_size;
	st->mapped_mtime = sb.st_mtim;
	if (parse_header(st, err) != CM_OK)
	{
		cm_safetensors_close(st);
		return NULL;
	}
	return st;
}

cm_safetensors *
cm_safetensors_from_memory(const void *buf, size_t len, cm_error *err)
{
	cm_safetensors *st = new_reader("safetensors buffer", err);

	if (st == NULL)
		return NULL;
	st->base = buf;
	st->len = len;
	if (buf == NULL && len > 0)
	{
		cm_set_error(err, CM_ERR_INPUT, "safetensors buffer: NULL data");
		cm_safetensors_close(st);
		return NULL;
	}
	if (parse_header(st, err) != CM_OK)
	{
		cm_safetensors_close(st);
		return NULL;
	}
	return st;
}

/*
 * The views of map's tensors, each found in its shard (already open in
 * st->shards), into st->tensors, sorted by name as the map is.
 */
static cm_status
gather_sharded_views(cm_safetensors *st, const cm_weight_map *map, cm_error *err)
{
	st->tensors = malloc((size_t) map->n_tensors * sizeof(*st->tensors));
	if (st->tensors == NULL)
		return cm_set_error(err, CM_ERR_NOMEM, "%s: out of memory for %d tensors", st->label,
							map->n_tensors);
	for (int i = 0; i < map->n_tensors; i++)
	{
		const cm_safetensors *shard = st->shards[map->shard[i]];
		const cm_tensor_view *t = cm_safetensors_find(shard, map->tensor[i]);

		if (t == NULL)
			return cm_set_error(err, CM_ERR_MODEL, "%s: tensor \"%.200s\" is mapped to %s, which does not hold it",
								st->label, map->tensor[i], shard->label);
		st->tensors[i] = *t;	/* the name points into the shard */
	}
	st->n_tensors = map->n_tensors;
	return CM_OK;
}

cm_safetensors *
cm_safetensors_open_index(const char *dir, const char *index_file, cm_error *err)
{
	char		path[CM_MAX_PATH];
	char	   *text = NULL;
	size_t		len;
	cm_weight_map map;
	cm_safetensors *st = NULL;

	if (cm_join_path(path, dir, index_file, err) != CM_OK ||
		cm_read_file(path, CM_CONFIG_MAX_FILE_BYTES, &text, &len, err) != CM_OK)
		return NULL;
	if (cm_weight_map_parse(text, len, path, &map, err) != CM_OK)
	{
		free(text);
		return NULL;
	}
	free(text);
	st = new_reader(path, err);
	if (st == NULL)
		goto fail;
	st->shards = calloc((size_t) map.n_shards, sizeof(*st->shards));
	if (st->shards == NULL)
	{
		cm_set_error(err, CM_ERR_NOMEM, "%s: out of memory for %d shards", path, map.n_shards);
		goto fail;
	}
	for (int i = 0; i < map.n_shards; i++)
	{
		char		shard_path[CM_MAX_PATH];

		if (cm_join_path(shard_path, dir, map.shard_file[i], err) != CM_OK)
			goto fail;
		st->shards[i] = cm_safetensors_open(shard_path, err);
		if (st->shards[i] == NULL)
			goto fail;
		st->n_shards = i + 1;
	}
	if (gather_sharded_views(st, &map, err) != CM_OK)
		goto fail;
	cm_weight_map_free(&map);
	return st;

fail:
	cm_weight_map_free(&map);
	cm_safetensors_close(st);
	return NULL;
}

void
cm_safetensors_close(cm_safetensors *st)
{
	if (st == NULL)
		return;
	if (st->mapped)
		munmap((void *) st->base, st->len);
	if (st->fd >= 0)
		close(st->fd);
	for (int i = 0; i < st->n_shards; i++)
		cm_safetensors_close(st->shards[i]);
	free(st->shards);
	free(st->tensors);
	free(st->names);
	free(st->label_owned);
	free(st);
}

cm_status
cm_safetensors_check_unchanged(const cm_safetensors *st, cm_error *err)
{
	struct stat sb;

	if (st == NULL)
		return CM_OK;
	if (st->fd >= 0)
	{
		if (fstat(st->fd, &sb) != 0)
			return cm_set_error(err, CM_ERR_IO, "%s: cannot stat: %s", st->label, strerror(errno));
		if (sb.st_size != st->mapped_size || sb.st_mtim.tv_sec != st->mapped_mtime.tv_sec ||
			sb.st_mtim.tv_nsec != st->mapped_mtime.tv_nsec)
			return cm_set_error(err, CM_ERR_MODEL,
								"%s was written in place after it was mapped (%lld bytes then, %lld now)",
								st->label, (long long) st->mapped_size, (long long) sb.st_size);
	}
	for (int i = 0; i < st->n_shards; i++)
	{
		cm_status	s = cm_safetensors_check_unchanged(st->shards[i], err);

		if (s != CM_OK)
			return s;
	}
	return CM_OK;
}

int
cm_safetensors_count(const cm_safetensors *st)
{
	return st->n_tensors;
}

const cm_tensor_view *
cm_safetensors_at(const cm_safetensors *st, int i)
{
	if (i < 0 || i >= st->n_tensors)
		return NULL;
	return &st->tensors[i];
}

const cm_tensor_view *
cm_safetensors_find(const cm_safetensors *st, const char *name)
{
	int			lo = 0,
				hi = st->n_tensors - 1;

	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;
		int			c = strcmp(name, st->tensors[mid].name);

		if (c == 0)
			return &st->tensors[mid];
		if (c < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* IEEE half to float, exact for every input (subnormals, inf, NaN included). */
static float
half_to_float(uint16_t h)
{
	uint32_t	sign = (uint32_t) (h & 0x8000) << 16;
	uint32_t	exp = (h >> 10) & 0x1f;
	uint32_t	mant = h & 0x3ff;
	uint32_t	bits;
	float		f;

	if (exp == 0x1f)
		bits = sign | 0x7f800000u | (mant << 13);
	else if (exp != 0)
		bits = sign | ((exp + 112) << 23) | (mant << 13);
	else if (mant == 0)
		bits = sign;
	else
	{
		/* Subnormal half: value = mant * 2^-24, exact in float. */
		f = ldexpf((float) mant, -24);
		return sign ? -f : f;
	}
	memcpy(&f, &bits, sizeof(f));
	return f;
}

cm_status
cm_tensor_to_f32(const cm_tensor_view *t, float *out, cm_error *err)
{
	const unsigned char *src = t->data;
	size_t		n = (size_t) t->n_elements;

	switch (t->dtype)
	{
		case CM_DTYPE_F32:
			memcpy(out, src, n * sizeof(float));
			return CM_OK;
		case CM_DTYPE_F16:
			for (size_t i = 0; i < n; i++)
			{
				uint16_t	h;

				memcpy(&h, src + 2 * i, 2);
				out[i] = half_to_float(h);
			}
			return CM_OK;
		case CM_DTYPE_BF16:
			for (size_t i = 0; i < n; i++)
			{
				uint16_t	h;
				uint32_t	bits;

				memcpy(&h, src + 2 * i, 2);
				bits = (uint32_t) h << 16;
				memcpy(&out[i], &bits, sizeof(float));
			}
			return CM_OK;
		case CM_DTYPE_OTHER:
			break;
	}
	return cm_set_error(err, CM_ERR_UNSUPPORTED, "tensor \"%s\": dtype %s cannot be read as float32",
						t->name, t->dtype_name ? t->dtype_name : "other");
}
