/*
 * fuzz_image_bmp.c
 *	  libFuzzer target: the BMP decoder (stb_image) through cm_image_preprocess
 *	  and cm_image_decode; inputs without the BMP signature get it prepended.
 */
#define FUZZ_SIGNATURE "BM"
#define FUZZ_SIGNATURE_MASK "\xff\xff"
#include "fuzz_image_format.h"
