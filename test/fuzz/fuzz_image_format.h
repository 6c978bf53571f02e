/*
 * fuzz_image_format.h
 *	  The body of the per-format image fuzz targets (fuzz_image_FORMAT.c):
 *	  each defines FUZZ_SIGNATURE / FUZZ_SIGNATURE_MASK for its format and
 *	  includes this file.  An input that lacks the signature gets it
 *	  prepended, so that every input reaches that format's decoder.  The
 *	  last byte picks the decode options (orientation, background, exact or
 *	  reduced scale), so all paths run; an image that preprocesses is also
 *	  preprocessed in open_clip's order.  Seeds: test/images/FORMAT_*.
 */
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "image_decode.h"

int			LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static bool
has_signature(const unsigned char *data, size_t size)
{
	size_t		n = sizeof(FUZZ_SIGNATURE) - 1;

	if (size < n)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((data[i] ^ (unsigned char) FUZZ_SIGNATURE[i]) & (unsigned char) FUZZ_SIGNATURE_MASK[i])
			return false;
	return true;
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static float out[3 * 64 * 64];
	size_t		n = sizeof(FUZZ_SIGNATURE) - 1;
	unsigned char *input = NULL;
	unsigned	knobs = size ? data[size - 1] : 0;
	cm_image_params p;
	cm_decode_options opt;
	cm_decoded_image img;
	cm_error	err;
	cm_status	status;

	if (!has_signature(data, size))
	{
		input = malloc(size + n);
		if (input == NULL)
			return 0;
		memcpy(input, FUZZ_SIGNATURE, n);
		memcpy(input + n, data, size);
		data = input;
		size += n;
	}

	memset(&p, 0, sizeof(p));
	p.shortest_edge = 64;
	p.crop_height = p.crop_width = 64;
	p.do_resize = p.do_center_crop = true;
	p.rescale_factor = 1.0f / 255.0f;
	p.mean[0] = p.mean[1] = p.mean[2] = 0.5f;
	p.std[0] = p.std[1] = p.std[2] = 0.25f;
	p.max_pixels = 4u << 20;
	p.ignore_orientation = knobs & 1;
	p.background = (cm_image_background) ((knobs >> 1) % 3);
	p.exact_decode = (knobs >> 3) & 1;
	status = cm_image_preprocess(data, size, &p, out, &err);
	if (status != CM_OK && (err.status != status || err.message[0] == '\0'))
		abort();
	if (status == CM_OK)
	{
		/* open_clip's order: resized in the image's own mode (NEAREST, premultiplied) */
		p.torchvision = true;
		if (cm_image_preprocess(data, size, &p, out, &err) != CM_OK)
			abort();
		p.torchvision = false;
	}

	/* What the decoder promises its caller. */
	memset(&opt, 0, sizeof(opt));
	opt.max_pixels = p.max_pixels;
	opt.ignore_orientation = p.ignore_orientation;
	opt.background = p.background;
	opt.target_width = opt.target_height = 16;
	if (cm_image_decode(data, size, &opt, &img, &err) == CM_OK)
	{
		if (img.reduce < 1 || img.width != (img.full_width + img.reduce - 1) / img.reduce ||
			img.height != (img.full_height + img.reduce - 1) / img.reduce ||
			(img.colours != 1 && img.colours != 3) ||
			(img.stride != img.colours && img.stride != img.colours + 1) ||
			(p.background != CM_BACKGROUND_NONE && img.stride != img.colours))
			abort();
		cm_decoded_image_free(&img);
	}
	free(input);
	return 0;
}
