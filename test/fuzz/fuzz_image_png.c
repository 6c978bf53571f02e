/*
 * fuzz_image_png.c
 *	  libFuzzer target: the PNG decoder (stb_image) through cm_image_preprocess
 *	  and cm_image_decode; inputs without the PNG signature get it prepended.
 */
#define FUZZ_SIGNATURE "\x89PNG\r\n\x1a\n"
#define FUZZ_SIGNATURE_MASK "\xff\xff\xff\xff\xff\xff\xff\xff"
#include "fuzz_image_format.h"
