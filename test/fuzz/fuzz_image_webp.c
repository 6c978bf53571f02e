/*
 * fuzz_image_webp.c
 *	  libFuzzer target: the WebP decoder (libwebp) through cm_image_preprocess
 *	  and cm_image_decode; inputs without the WebP signature get it prepended.
 */
#define FUZZ_SIGNATURE "RIFF\0\0\0\0WEBP"
#define FUZZ_SIGNATURE_MASK "\xff\xff\xff\xff\0\0\0\0\xff\xff\xff\xff"
#include "fuzz_image_format.h"
