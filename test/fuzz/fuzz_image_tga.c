/*
 * fuzz_image_tga.c
 *	  libFuzzer target: the TGA decoder (stb_image) through
 *	  cm_image_preprocess and cm_image_decode.  TGA has no signature: the
 *	  seeds (test/images/tga_*) carry valid headers for the fuzzer to mutate.
 */
#define FUZZ_SIGNATURE ""
#define FUZZ_SIGNATURE_MASK ""
#include "fuzz_image_format.h"
