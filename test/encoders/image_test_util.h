/*
 * image_test_util.h
 *	  Helpers shared by the image tests: a minimal PNG writer (stored zlib
 *	  blocks, any layout) and a PPM (P6) reader.  Header-only.
 */
#ifndef IMAGE_TEST_UTIL_H
#define IMAGE_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline uint32_t
crc32_bytes(uint32_t crc, const unsigned char *b, size_t n)
{
	size_t		i;
	int			k;

	crc = ~crc;
	for (i = 0; i < n; i++)
	{
		crc ^= b[i];
		for (k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
	}
	return ~crc;
}

typedef struct buf
{
	unsigned char *p;
	size_t		len;
} buf;

static inline void
put(buf *b, const void *src, size_t n)
{
	b->p = realloc(b->p, b->len + n);
	memcpy(b->p + b->len, src, n);
	b->len += n;
}

static inline void
put_be32(buf *b, uint32_t v)
{
	unsigned char x[4] = {v >> 24, v >> 16, v >> 8, v};

	put(b, x, 4);
}

static inline void
put_chunk(buf *b, const char *type, const unsigned char *data, size_t n)
{
	uint32_t	crc = crc32_bytes(0, (const unsigned char *) type, 4);

	put_be32(b, (uint32_t) n);
	put(b, type, 4);
	if (n)
		put(b, data, n);
	put_be32(b, crc32_bytes(crc, data, n));
}

/*
 * A PNG of w x h with the given bit depth and colour type whose IDAT is a zlib
 * stream of stored blocks over rows (filter 0) of `raw` (row-major samples,
 * big-endian for 16 bits).  With raw == NULL: no IDAT at all (header only).
 */
static inline buf
make_png(uint32_t w, uint32_t h, int depth, int colour_type, const unsigned char *raw)
{
	static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	static const int samples[7] = {1, 0, 3, 1, 2, 0, 4};
	buf			png = {NULL, 0};
	unsigned char ihdr[13] = {w >> 24, w >> 16, w >> 8, w, h >> 24, h >> 16, h >> 8, h,
	depth, colour_type, 0, 0, 0};

	put(&png, sig, 8);
	put_chunk(&png, "IHDR", ihdr, 13);
	if (raw)
	{
		size_t		row = (size_t) w * samples[colour_type] * depth / 8;
		buf			data = {NULL, 0},
					z = {NULL, 0};
		uint32_t	a = 1,
					bsum = 0;
		size_t		i,
					off;
		unsigned char zhdr[2] = {0x78, 0x01};
		unsigned char zero = 0;

		for (i = 0; i < h; i++)
		{
			put(&data, &zero, 1);
			put(&data, raw + i * row, row);
		}
		for (i = 0; i < data.len; i++)
		{
			a = (a + data.p[i]) % 65521;
			bsum = (bsum + a) % 65521;
		}
		put(&z, zhdr, 2);
		for (off = 0; off < data.len;)
		{
			size_t		n = data.len - off > 65535 ? 65535 : data.len - off;
			unsigned char blk[5] = {off + n == data.len, n & 0xff, n >> 8,
			~n & 0xff, (~n >> 8) & 0xff};

			put(&z, blk, 5);
			put(&z, data.p + off, n);
			off += n;
		}
		put_be32(&z, bsum << 16 | a);
		put_chunk(&png, "IDAT", z.p, z.len);
		free(data.p);
		free(z.p);
	}
	put_chunk(&png, "IEND", NULL, 0);
	return png;
}

/*
 * A binary PPM (P6, maxval 255) as written by make_fixtures.py: its RGB
 * samples (malloc'd) and size; NULL when unreadable.
 */
static inline unsigned char *
read_ppm(const char *path, int *w, int *h)
{
	FILE	   *f = fopen(path, "rb");
	unsigned char *px = NULL;
	int			maxval;

	if (f == NULL)
		return NULL;
	if (fscanf(f, "P6 %d %d %d", w, h, &maxval) == 3 && maxval == 255 && fgetc(f) != EOF &&
		*w > 0 && *h > 0 && *w < 100000 && *h < 100000)
	{
		size_t		n = (size_t) *w * *h * 3;

		px = malloc(n);
		if (px && fread(px, 1, n, f) != n)
		{
			free(px);
			px = NULL;
		}
	}
	fclose(f);
	return px;
}

#endif							/* IMAGE_TEST_UTIL_H */
