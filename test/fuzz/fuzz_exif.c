/*
 * fuzz_exif.c
 *	  libFuzzer target: arbitrary bytes as an EXIF block, a TIFF header's
 *	  IFD0 and XMP text, read directly rather than from inside an image (the
 *	  image fuzzers reach these readers only through a decodable container).
 *	  An orientation is 0..8 (XMP: one digit), with or without the "Exif\0\0"
 *	  prefix alike; every read stays inside the buffer (ASan: the input is
 *	  copied into an allocation of exactly its size).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_formats.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
require(int cond, const char *what)
{
	if (!cond)
	{
		fprintf(stderr, "fuzz_exif: invariant broken: %s\n", what);
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *b = malloc(size + 6);
	double		v;
	int			o,
				ox;
	int			prefixed;

	if (b == NULL)
		return 0;
	memcpy(b, "Exif\0\0", 6);
	memcpy(b + 6, data, size);

	prefixed = size >= 6 && memcmp(data, "Exif\0\0", 6) == 0;
	o = cm_exif_orientation(b + 6, size);
	require(o >= 0 && o <= 8, "an EXIF orientation is 0..8");
	ox = cm_exif_orientation(b, size + 6);
	require(ox == o || prefixed, "the Exif prefix changes nothing");
	if (!prefixed && cm_tiff_ifd0_number(b + 6, size, 0x0112, &v))
		require(o == ((v >= 1 && v <= 8 && v == (int) v) ? (int) v : 0),
				"the orientation is the tag's number when it is 1..8");
	else if (!prefixed)
		require(o == 0, "no orientation tag, no orientation");
	(void) cm_tiff_ifd0_number(b + 6, size, 0x0100, &v);
	(void) cm_tiff_ifd0_complete(b + 6, size);

	o = cm_xmp_orientation(b + 6, size);
	require(o >= 0 && o <= 9, "an XMP orientation is one digit");
	free(b);
	return 0;
}
