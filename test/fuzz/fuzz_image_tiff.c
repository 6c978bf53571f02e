/*
 * fuzz_image_tiff.c
 *	  libFuzzer target: the TIFF decoder (libtiff) through cm_image_preprocess
 *	  and cm_image_decode; inputs without the TIFF signature get it prepended.
 */
#define FUZZ_SIGNATURE "II*\0"
#define FUZZ_SIGNATURE_MASK "\xff\xff\xff\xff"
#include "fuzz_image_format.h"
