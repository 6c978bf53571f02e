/*
 * image_webp.c
 *	  WebP through libwebp, the library PIL decodes WebP with.
 *
 * PIL 9.4 (WebPImagePlugin with libwebp's animation API) reads every WebP
 * through WebPAnimDecoder in RGBA: a still image is its one frame, an
 * animation's first frame is drawn on a transparent canvas of the
 * animation's size.  Its mode is RGBA when WebPGetFeatures reports alpha,
 * RGB otherwise, and convert("RGB") keeps the colour samples.  Here an
 * animation goes through WebPAnimDecoder in the same way; a still image is
 * decoded by WebPDecode with the same default options (fancy upsampling),
 * which gives the frame WebPAnimDecoder would, and can also decode at a
 * reduced scale: libwebp's rescaler then works on the decoded YUV rows, so
 * the full-size RGB image is never made.
 *
 * Hostile input: the canvas size is checked against the limits before
 * anything is decoded, and libwebp's allocations are bounded by that size
 * (it refuses frames larger than the canvas); the output buffer is ours.
 */
#include <stdlib.h>
#include <string.h>

#include <webp/decode.h>
#include <webp/demux.h>

#include "image.h"
#include "image_formats.h"

static bool
webp_sniff(const unsigned char *b, size_t len)
{
	return len >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0;
}

static const char *
vp8_status_text(VP8StatusCode s)
{
	switch (s)
	{
		case VP8_STATUS_OK:
			return "ok";
		case VP8_STATUS_OUT_OF_MEMORY:
			return "out of memory";
		case VP8_STATUS_INVALID_PARAM:
			return "invalid parameter";
		case VP8_STATUS_BITSTREAM_ERROR:
			return "bitstream error";
		case VP8_STATUS_UNSUPPORTED_FEATURE:
			return "unsupported feature";
		case VP8_STATUS_SUSPENDED:
			return "suspended";
		case VP8_STATUS_USER_ABORT:
			return "aborted";
		case VP8_STATUS_NOT_ENOUGH_DATA:
			return "truncated (not enough data)";
	}
	return "undecodable data";
}

/*
 * The first EXIF chunk of an extended (VP8X) file, as libwebp's demuxer
 * reports it to PIL; 0 when there is none.
 */
static int
webp_orientation(const unsigned char *b, size_t len)
{
	size_t		pos = 12;

	if (len < 20 || memcmp(b + 12, "VP8X", 4) != 0)
		return 0;
	while (pos <= len && len - pos >= 8)
	{
		uint32_t	n = cm_le32(b + pos + 4);

		if (n > len - pos - 8)
			break;
		if (memcmp(b + pos, "EXIF", 4) == 0)
			return cm_exif_orientation(b + pos + 8, n);
		pos += 8 + (size_t) n + (n & 1);
	}
	return 0;
}

static cm_status
webp_header(const unsigned char *b, size_t len, cm_image_header *h, cm_error *err)
{
	WebPBitstreamFeatures f;
	VP8StatusCode s = WebPGetFeatures(b, len, &f);

	if (s != VP8_STATUS_OK)
		return cm_set_error(err, CM_ERR_INPUT, "invalid WebP image: %s", vp8_status_text(s));
	if (f.width <= 0 || f.height <= 0)
		return cm_set_error(err, CM_ERR_INPUT, "invalid WebP image: size %dx%d", f.width, f.height);
	h->width = (uint32_t) f.width;
	h->height = (uint32_t) f.height;
	h->orientation = webp_orientation(b, len);
	h->max_reduce = f.has_animation ? 1 : 8;
	return CM_OK;
}

/* The first frame of an animation on its canvas, as PIL reads it. */
static cm_status
webp_first_frame(const cm_decode_request *req, bool alpha, cm_decoded_image *out,
				 cm_error *err)
{
	WebPData	data = {req->bytes, req->len};
	WebPAnimDecoderOptions o;
	WebPAnimDecoder *dec;
	WebPAnimInfo info;
	uint8_t    *canvas;
	int			timestamp;
	size_t		n;

	if (!WebPAnimDecoderOptionsInit(&o))
		return cm_set_error(err, CM_ERR_INPUT, "invalid WebP image: libwebp version mismatch");
	o.color_mode = MODE_RGBA;
	o.use_threads = 0;
	dec = WebPAnimDecoderNew(&data, &o);
	if (dec == NULL)
		return cm_set_error(err, CM_ERR_INPUT, "invalid WebP image: malformed or truncated animation");
	if (!WebPAnimDecoderGetInfo(dec, &info) || info.canvas_width != req->header.width ||
		info.canvas_height != req->header.height)
	{
		WebPAnimDecoderDelete(dec);
		return cm_set_error(err, CM_ERR_INPUT, "invalid WebP image: inconsistent canvas size");
	}
	if (!WebPAnimDecoderGetNext(dec, &canvas, &timestamp))
	{
		WebPAnimDecoderDelete(dec);
		return cm_set_error(err, CM_ERR_INPUT, "invalid WebP image: its first frame cannot be decoded");
	}
	out->pixels = cm_alloc_pixels(info.canvas_width, info.canvas_height, 4);
	if (out->pixels == NULL)
	{
		WebPAnimDecoderDelete(dec);
		return cm_set_error(err, CM_ERR_NOMEM, "out of memory for a %ux%u WebP image",
							info.canvas_width, info.canvas_height);
	}
	n = (size_t) info.canvas_width * info.canvas_height;
	memcpy(out->pixels, canvas, n * 4);
	WebPAnimDecoderDelete(dec);
	if (!alpha)					/* PIL's RGBX: the fourth sample is not alpha */
		for (size_t i = 0; i < n; i++)
			out->pixels[i * 4 + 3] = 255;
	out->width = (int) info.canvas_width;
	out->height = (int) info.canvas_height;
	out->stride = 4;
	out->colours = 3;
	out->mode = alpha ? CM_MODE_ALPHA : CM_MODE_DIRECT;	/* PIL: RGBA or RGB */
	return CM_OK;
}

static cm_status
webp_decode(const cm_decode_request *req, cm_decoded_image *out, cm_error *err)
{
	WebPDecoderConfig config;
	VP8StatusCode s;
	uint32_t	w = req->header.width,
				h = req->header.height,
				ow,
				oh;
	int			samples;
	size_t		bytes;

	if (!WebPInitDecoderConfig(&config))
		return cm_set_error(err, CM_ERR_INPUT, "invalid WebP image: libwebp version mismatch");
	s = WebPGetFeatures(req->bytes, req->len, &config.input);
	if (s != VP8_STATUS_OK)
		return cm_set_error(err, CM_ERR_INPUT, "invalid WebP image: %s", vp8_status_text(s));
	if (config.input.has_animation)
		return webp_first_frame(req, config.input.has_alpha != 0, out, err);

	ow = w / (uint32_t) req->reduce + (w % (uint32_t) req->reduce != 0);
	oh = h / (uint32_t) req->reduce + (h % (uint32_t) req->reduce != 0);
	samples = config.input.has_alpha ? 4 : 3;
	out->pixels = cm_alloc_pixels(ow, oh, samples);
	if (out->pixels == NULL)
		return cm_set_error(err, CM_ERR_NOMEM, "out of memory for a %ux%u WebP image", ow, oh);
	bytes = (size_t) ow * oh * samples;
	if (req->reduce > 1)
	{
		config.options.use_scaling = 1;
		config.options.scaled_width = (int) ow;
		config.options.scaled_height = (int) oh;
	}
	config.output.colorspace = samples == 4 ? MODE_RGBA : MODE_RGB;
	config.output.is_external_memory = 1;
	config.output.u.RGBA.rgba = out->pixels;
	config.output.u.RGBA.stride = (int) ow * samples;
	config.output.u.RGBA.size = bytes;
	s = WebPDecode(req->bytes, req->len, &config);
	WebPFreeDecBuffer(&config.output);
	if (s != VP8_STATUS_OK)
	{
		if (s == VP8_STATUS_OUT_OF_MEMORY)
			return cm_set_error(err, CM_ERR_NOMEM, "out of memory decoding a %ux%u WebP image", w, h);
		return cm_set_error(err, CM_ERR_INPUT, "invalid WebP image: %s", vp8_status_text(s));
	}
	out->width = (int) ow;
	out->height = (int) oh;
	out->stride = samples;
	out->colours = 3;
	out->mode = samples == 4 ? CM_MODE_ALPHA : CM_MODE_DIRECT;	/* PIL: RGBA or RGB */
	/* the rescaler spreads the whole image over the output */
	out->extent_width = ow;
	out->extent_height = oh;
	return CM_OK;
}

const cm_image_codec cm_codec_webp = {
	CM_IMAGE_WEBP, "WebP", webp_sniff, webp_header, webp_decode
};
