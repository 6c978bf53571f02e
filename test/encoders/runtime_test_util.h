/*
 * runtime_test_util.h
 *	  Small helpers for the encoder runtime's tests: check macros with a
 *	  pass/fail tally, file reading, JSON access and vector comparisons.
 *	  Header-only (static functions) so that it links into no other test.
 */
#ifndef RUNTIME_TEST_UTIL_H
#define RUNTIME_TEST_UTIL_H

#include <cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int	rt_passed;
static int	rt_failed;

#define RT_CHECK(cond, ...) \
	do { \
		if (cond) \
			rt_passed++; \
		else \
		{ \
			rt_failed++; \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__); \
			fputc('\n', stderr); \
		} \
	} while (0)

static inline int
rt_summary(const char *name)
{
	printf("%s: %d passed, %d failed\n", name, rt_passed, rt_failed);
	return rt_failed == 0 ? 0 : 1;
}

/* Whole file into a malloc'd, NUL-terminated buffer; NULL on failure. */
static inline char *
rt_read_file(const char *path, size_t *len_out)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf = NULL;
	long		len;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
		(buf = malloc((size_t) len + 1)) != NULL)
	{
		if (fread(buf, 1, (size_t) len, f) != (size_t) len)
		{
			free(buf);
			buf = NULL;
		}
		else
		{
			buf[len] = '\0';
			if (len_out)
				*len_out = (size_t) len;
		}
	}
	fclose(f);
	return buf;
}

static inline int
rt_write_file(const char *path, const void *data, size_t len)
{
	FILE	   *f = fopen(path, "wb");
	int			ok;

	if (f == NULL)
		return 0;
	ok = fwrite(data, 1, len, f) == len;
	return fclose(f) == 0 && ok;
}

static inline void
rt_put_u64le(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char) (v >> (8 * i));
}

/*
 * The bytes of a safetensors file: header's JSON, padded with spaces to a
 * multiple of 8 bytes as the reference writer does, then data_len bytes of
 * data; *len_out gets the size.  NULL when out of memory.
 */
static inline unsigned char *
rt_safetensors_bytes(const cJSON *header, const void *data, size_t data_len, size_t *len_out)
{
	char	   *json = cJSON_PrintUnformatted(header);
	size_t		jlen,
				padded;
	unsigned char *out;

	if (json == NULL)
		return NULL;
	jlen = strlen(json);
	padded = (jlen + 7) / 8 * 8;
	out = malloc(8 + padded + data_len);
	if (out != NULL)
	{
		rt_put_u64le(out, padded);
		memcpy(out + 8, json, jlen);
		memset(out + 8 + jlen, ' ', padded - jlen);
		if (data_len > 0)
			memcpy(out + 8 + padded, data, data_len);
		*len_out = 8 + padded + data_len;
	}
	free(json);
	return out;
}

static inline cJSON *
rt_load_json(const char *path)
{
	char	   *text = rt_read_file(path, NULL);
	cJSON	   *j;

	if (text == NULL)
		return NULL;
	j = cJSON_Parse(text);
	free(text);
	return j;
}

/* obj[k1][k2]...: NULL-terminated key path. */
static inline const cJSON *
rt_json_path(const cJSON *obj, const char *const *keys)
{
	for (; obj != NULL && *keys != NULL; keys++)
		obj = cJSON_GetObjectItemCaseSensitive(obj, *keys);
	return obj;
}

/* A JSON array of numbers into floats; returns the count (-1 if not all numbers). */
static inline int
rt_json_floats(const cJSON *arr, float *out, int max)
{
	int			n = 0;
	const cJSON *e;

	cJSON_ArrayForEach(e, arr)
	{
		if (!cJSON_IsNumber(e) || n >= max)
			return -1;
		out[n++] = (float) e->valuedouble;
	}
	return n;
}

static inline double
rt_cosine(const float *a, const float *b, int n)
{
	double		ab = 0,
				aa = 0,
				bb = 0;

	for (int i = 0; i < n; i++)
	{
		ab += (double) a[i] * b[i];
		aa += (double) a[i] * a[i];
		bb += (double) b[i] * b[i];
	}
	return ab / (sqrt(aa) * sqrt(bb));
}

/* max |a - ref| / max |ref| */
static inline double
rt_rel_max_err(const float *a, const float *ref, int n)
{
	double		m = 0,
				r = 0;

	for (int i = 0; i < n; i++)
	{
		double		d = fabs((double) a[i] - ref[i]);

		m = d > m ? d : m;
		r = fabs((double) ref[i]) > r ? fabs((double) ref[i]) : r;
	}
	return r > 0 ? m / r : m;
}

static inline double
rt_norm(const float *a, int n)
{
	double		s = 0;

	for (int i = 0; i < n; i++)
		s += (double) a[i] * a[i];
	return sqrt(s);
}

#endif							/* RUNTIME_TEST_UTIL_H */
