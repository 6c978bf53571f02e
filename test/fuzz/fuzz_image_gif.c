/*
 * fuzz_image_gif.c
 *	  libFuzzer target: the GIF decoder (stb_image) through cm_image_preprocess
 *	  and cm_image_decode; inputs without the GIF signature get it prepended.
 */
#define FUZZ_SIGNATURE "GIF89a"
#define FUZZ_SIGNATURE_MASK "\xff\xff\xff\xff\xff\xff"
#include "fuzz_image_format.h"
