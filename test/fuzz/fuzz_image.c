/*
 * fuzz_image.c
 *	  libFuzzer target: arbitrary bytes through cm_image_preprocess (decode,
 *	  limits, resize, crop, normalise) with a 4 Mpx limit and 64 px output;
 *	  images that decode go through open_clip's order (resize in the image's
 *	  own mode) as well.
 */
#include <stdlib.h>
#include <string.h>

#include "image.h"

int			LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static float out[3 * 64 * 64];
	cm_image_params p;
	cm_error	err;
	cm_status	status;

	memset(&p, 0, sizeof(p));
	p.shortest_edge = 64;
	p.crop_height = 64;
	p.crop_width = 64;
	p.do_resize = true;
	p.do_center_crop = true;
	p.rescale_factor = 1.0f / 255.0f;
	p.mean[0] = p.mean[1] = p.mean[2] = 0.5f;
	p.std[0] = p.std[1] = p.std[2] = 0.25f;
	p.max_pixels = 4u << 20;

	status = cm_image_preprocess(data, size, &p, out, &err);
	/* Every failure carries its own status and a message. */
	if (status != CM_OK && (err.status != status || err.message[0] == '\0'))
		abort();
	if (status == CM_OK)
	{
		p.torchvision = true;
		if (cm_image_preprocess(data, size, &p, out, &err) != CM_OK)
			abort();
	}
	return 0;
}
