/*
 * fuzz_image_jpeg.c
 *	  libFuzzer target: the JPEG decoder (libjpeg-turbo) through cm_image_preprocess
 *	  and cm_image_decode; inputs without the JPEG signature get it prepended.
 */
#define FUZZ_SIGNATURE "\xff\xd8\xff"
#define FUZZ_SIGNATURE_MASK "\xff\xff\xff"
#include "fuzz_image_format.h"
