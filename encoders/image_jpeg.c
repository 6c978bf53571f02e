/*
 * image_jpeg.c
 *	  JPEG through libjpeg-turbo, the library PIL itself decodes JPEG with,
 *	  set up as PIL sets it up, so that the pixels are PIL's exactly.
 *
 * PIL 9.4 (JpegImagePlugin, JpegDecode.c) reads a 1-component JPEG as grey,
 * a 3-component one as RGB (libjpeg's YCbCr -> RGB conversion; RGB and
 * Adobe-marked files as libjpeg identifies them) and a 4-component one as
 * CMYK, asking libjpeg for CMYK (libjpeg turns Adobe YCCK into CMYK) and
 * then inverting every sample ("assume Adobe conventions", whatever the
 * markers say), after which convert("RGB") applies its cmyk2rgb.  Decoding
 * settings are libjpeg's defaults (ISLOW IDCT, fancy upsampling), as in PIL.
 *
 * Failures follow PIL: data that ends inside the image data is an error,
 * a missing end-of-image marker after complete image data is not, and
 * libjpeg's warnings (corrupt data it can skip) are ignored.
 *
 * Reduced scale: libjpeg's DCT scaling to 1/2, 1/4 or 1/8 decodes each 8x8
 * block straight to 4x4, 2x2 or 1x1 pixels, which skips most of the IDCT,
 * upsampling and colour conversion work of a large photo.
 *
 * Hostile input: the header's size is checked before jpeg_start_decompress
 * (the dispatcher's limits); libjpeg's own allocations are proportional to
 * that size and capped by max_memory_to_use; a progressive file may not have
 * more than MAX_SCANS scans (each scan re-reads the whole coefficient
 * buffer); the caller's cancel callback is polled through libjpeg's
 * progress monitor.  Errors leave through longjmp from libjpeg's error
 * handler to the one setjmp below, which frees what libjpeg holds.
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "image.h"
#include "image_formats.h"

/* libjpeg-turbo's own guidance for untrusted progressive files (djpeg -maxscans). */
#define MAX_SCANS 500

typedef enum jpeg_failure
{
	FAIL_NONE,
	FAIL_LIBJPEG,				/* libjpeg's error; message holds its text */
	FAIL_EOF,					/* the data ended where libjpeg wanted more */
	FAIL_SCANS,
	FAIL_CANCELLED
} jpeg_failure;

typedef struct jpeg_session
{
	struct jpeg_error_mgr err;	/* first: libjpeg's cinfo->err points here */
	struct jpeg_source_mgr src;
	struct jpeg_progress_mgr progress;
	jmp_buf		jump;
	jpeg_failure failure;
	char		message[JMSG_LENGTH_MAX];
	cm_cancel_fn cancel;
	void	   *cancel_ctx;
} jpeg_session;

static void
on_error(j_common_ptr cinfo)
{
	jpeg_session *s = (jpeg_session *) cinfo->err;

	if (s->failure == FAIL_NONE)
	{
		s->failure = FAIL_LIBJPEG;
		cinfo->err->format_message(cinfo, s->message);
	}
	longjmp(s->jump, 1);
}

/* Warnings are not printed (library code never writes to stderr). */
static void
on_output_message(j_common_ptr cinfo)
{
	(void) cinfo;
}

static void
src_init(j_decompress_ptr cinfo)
{
	(void) cinfo;
}

/* All the data was given up front: wanting more means it is truncated. */
static boolean
src_fill(j_decompress_ptr cinfo)
{
	jpeg_session *s = (jpeg_session *) cinfo->err;

	s->failure = FAIL_EOF;
	ERREXIT(cinfo, JERR_INPUT_EOF);
	return FALSE;
}

static void
src_skip(j_decompress_ptr cinfo, long n)
{
	struct jpeg_source_mgr *src = cinfo->src;

	if (n <= 0)
		return;
	if ((size_t) n > src->bytes_in_buffer)
		src_fill(cinfo);
	src->next_input_byte += n;
	src->bytes_in_buffer -= (size_t) n;
}

static void
src_term(j_decompress_ptr cinfo)
{
	(void) cinfo;
}

static void
on_progress(j_common_ptr cinfo)
{
	jpeg_session *s = (jpeg_session *) cinfo->err;
	j_decompress_ptr d = (j_decompress_ptr) cinfo;

	if (d->input_scan_number > MAX_SCANS)
		s->failure = FAIL_SCANS;
	else if (s->cancel != NULL && s->cancel(s->cancel_ctx))
		s->failure = FAIL_CANCELLED;
	else
		return;
	longjmp(s->jump, 1);
}

/* ------------------------------------------------------------ header */

static bool
jpeg_sniff(const unsigned char *b, size_t len)
{
	return len >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF;
}

/*
 * Walk the marker segments up to the first scan, as PIL's JpegImageFile
 * does (bytes between segments that are not a marker are skipped): the
 * frame's size and component count, and the first APP1 "Exif" block.
 */
static cm_status
jpeg_header(const unsigned char *b, size_t len, cm_image_header *h, cm_error *err)
{
	size_t		i = 2;
	bool		have_frame = false,
				have_exif = false;
	int			components = 0;

	while (i + 1 < len)
	{
		unsigned	marker;
		size_t		seglen;

		if (b[i] != 0xFF)
		{
			i++;				/* junk between segments */
			continue;
		}
		marker = b[i + 1];
		if (marker == 0xFF || marker == 0x00)
		{
			i++;				/* fill byte, or an escaped FF in junk */
			continue;
		}
		if (marker == 0x01 || marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7))
		{
			i += 2;				/* markers without a length */
			continue;
		}
		if (marker == 0xD9)
			break;				/* end of image before any scan */
		if (i + 4 > len)
			break;
		seglen = cm_be16(b + i + 2);
		if (seglen < 2 || seglen > len - i - 2)
			break;
		/* SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC) */
		if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 &&
			marker != 0xC8 && marker != 0xCC && seglen >= 8 && !have_frame)
		{
			h->height = cm_be16(b + i + 5);
			h->width = cm_be16(b + i + 7);
			components = b[i + 9];
			have_frame = true;
		}
		else if (marker == 0xE1 && !have_exif && seglen - 2 >= 6 &&
				 memcmp(b + i + 4, "Exif\0", 5) == 0)
		{
			h->orientation = cm_exif_orientation(b + i + 4, seglen - 2);
			have_exif = true;
		}
		else if (marker == 0xDA)
		{
			if (!have_frame)
				break;
			if (components != 1 && components != 3 && components != 4)
				return cm_set_error(err, CM_ERR_INPUT,
									"invalid JPEG image: %d colour components (expected 1, 3 or 4)",
									components);
			h->max_reduce = 8;
			return CM_OK;
		}
		i += 2 + seglen;
	}
	return cm_set_error(err, CM_ERR_INPUT, "invalid JPEG image: truncated or malformed header");
}

/* ------------------------------------------------------------ decode */

/*
 * PIL's CMYK -> RGB for a JPEG: the samples are inverted ("CMYK;I"), then
 * convert("RGB")'s cmyk2rgb: each colour is nk - nk * c / 255 with
 * nk = 255 - k, in PIL's rounded fixed point.
 */
static void
cmyk_row_to_rgb(const unsigned char *in, unsigned char *out, int n)
{
	for (int x = 0; x < n; x++, in += 4, out += 3)
	{
		int			ki = 255 - in[3],
					nk = 255 - ki;

		for (int c = 0; c < 3; c++)
		{
			int			t = (255 - in[c]) * nk + 128;
			int			v = nk - (((t >> 8) + t) >> 8);

			out[c] = (unsigned char) (v < 0 ? 0 : v > 255 ? 255 : v);
		}
	}
}

/* What the setjmp frame must see unchanged after a longjmp. */
typedef struct jpeg_job
{
	struct jpeg_decompress_struct cinfo;
	jpeg_session session;
	unsigned char *pixels;
	unsigned char *row;			/* CMYK scratch */
	int			samples;		/* per output pixel: 1 or 3 */
	bool		created;
} jpeg_job;

static cm_status
jpeg_failed(jpeg_job *job, const cm_image_header *h, cm_error *err)
{
	jpeg_session *s = &job->session;

	switch (s->failure)
	{
		case FAIL_EOF:
			return cm_set_error(err, CM_ERR_INPUT,
								"invalid JPEG image: truncated (the data ends inside the image data)");
		case FAIL_SCANS:
			cm_set_error(err, CM_ERR_LIMIT,
						 "JPEG image has more than %d scans (real progressive files have a few dozen)",
						 MAX_SCANS);
			cm_error_set_limit(err, CM_LIMIT_OTHER);
			return CM_ERR_LIMIT;
		case FAIL_CANCELLED:
			return cm_set_error(err, CM_ERR_CANCELLED, "cancelled while decoding a JPEG image");
		default:
			break;
	}
	if (job->cinfo.err != NULL && job->cinfo.err->msg_code == JERR_OUT_OF_MEMORY)
		return cm_set_error(err, CM_ERR_NOMEM, "out of memory decoding a %ux%u JPEG image",
							h->width, h->height);
	if (job->cinfo.err != NULL && job->cinfo.err->msg_code == JERR_NO_BACKING_STORE)
		return cm_set_error(err, CM_ERR_INPUT,
							"invalid JPEG image: its data needs more memory than a %ux%u image can (corrupt or hostile data)",
							h->width, h->height);
	return cm_set_error(err, CM_ERR_INPUT, "invalid JPEG image: %s", s->message);
}

static cm_status
jpeg_run(jpeg_job *job, const cm_decode_request *req, cm_decoded_image *out, cm_error *err)
{
	const cm_image_header *h = &req->header;
	struct jpeg_decompress_struct *cinfo = &job->cinfo;
	jpeg_session *s = &job->session;

	if (setjmp(s->jump))
		return jpeg_failed(job, h, err);

	cinfo->err = jpeg_std_error(&s->err);
	s->err.error_exit = on_error;
	s->err.output_message = on_output_message;
	jpeg_create_decompress(cinfo);
	job->created = true;

	s->src.next_input_byte = req->bytes;
	s->src.bytes_in_buffer = req->len;
	s->src.init_source = src_init;
	s->src.fill_input_buffer = src_fill;
	s->src.skip_input_data = src_skip;
	s->src.resync_to_restart = jpeg_resync_to_restart;
	s->src.term_source = src_term;
	cinfo->src = &s->src;
	s->cancel = req->cancel;
	s->cancel_ctx = req->cancel_ctx;
	s->progress.progress_monitor = on_progress;
	cinfo->progress = &s->progress;

	jpeg_read_header(cinfo, TRUE);
	if (cinfo->image_width != h->width || cinfo->image_height != h->height)
		return cm_set_error(err, CM_ERR_INPUT, "invalid JPEG image: inconsistent size %ux%u / %ux%u",
							h->width, h->height, cinfo->image_width, cinfo->image_height);
	switch (cinfo->num_components)
	{
		case 1:
			cinfo->out_color_space = JCS_GRAYSCALE;
			break;
		case 3:
			cinfo->out_color_space = JCS_RGB;
			break;
		case 4:
			cinfo->out_color_space = JCS_CMYK;
			break;
		default:
			return cm_set_error(err, CM_ERR_INPUT,
								"invalid JPEG image: %d colour components (expected 1, 3 or 4)",
								cinfo->num_components);
	}
	cinfo->scale_num = 1;
	cinfo->scale_denom = (unsigned int) req->reduce;

	/*
	 * libjpeg's large buffers (a progressive file's coefficients) are bound
	 * to the frame's size: 4 components of 2-byte coefficients, with the
	 * MCU padding.  Past that, libjpeg asks for backing store, which this
	 * build does not have: an error, not an allocation.
	 */
	cinfo->mem->max_memory_to_use =
		(long) ((uint64_t) (h->width + 64) * (h->height + 64) * 8 + ((uint64_t) 16 << 20));

	jpeg_start_decompress(cinfo);
	job->samples = cinfo->out_color_space == JCS_GRAYSCALE ? 1 : 3;
	job->pixels = cm_alloc_pixels(cinfo->output_width, cinfo->output_height, job->samples);
	if (cinfo->num_components == 4)
		job->row = cm_alloc_pixels(cinfo->output_width, 1, 4);
	if (job->pixels == NULL || (cinfo->num_components == 4 && job->row == NULL))
		return cm_set_error(err, CM_ERR_NOMEM, "out of memory for a %ux%u JPEG image",
							cinfo->output_width, cinfo->output_height);
	while (cinfo->output_scanline < cinfo->output_height)
	{
		unsigned char *dst = job->pixels +
			(size_t) cinfo->output_scanline * cinfo->output_width * job->samples;
		JSAMPROW	rows[1];

		rows[0] = job->row ? job->row : dst;
		if (jpeg_read_scanlines(cinfo, rows, 1) != 1)
			return cm_set_error(err, CM_ERR_INPUT, "invalid JPEG image: no scanline decoded");
		if (job->row)
			cmyk_row_to_rgb(job->row, dst, (int) cinfo->output_width);
	}

	/*
	 * Complete image data without its end-of-image marker is accepted, as
	 * PIL accepts it: only the truncation is forgiven here.
	 */
	if (!setjmp(s->jump))
		jpeg_finish_decompress(cinfo);
	else if (s->failure != FAIL_EOF)
		return jpeg_failed(job, h, err);

	out->pixels = job->pixels;
	job->pixels = NULL;
	out->width = (int) cinfo->output_width;
	out->height = (int) cinfo->output_height;
	out->stride = job->samples;
	out->colours = job->samples;
	return CM_OK;
}

static cm_status
jpeg_decode(const cm_decode_request *req, cm_decoded_image *out, cm_error *err)
{
	jpeg_job   *job = calloc(1, sizeof(jpeg_job));
	cm_status	status;

	if (job == NULL)
		return cm_set_error(err, CM_ERR_NOMEM, "out of memory for a JPEG decoder");
	status = jpeg_run(job, req, out, err);
	if (job->created)
		jpeg_destroy_decompress(&job->cinfo);
	free(job->pixels);
	free(job->row);
	free(job);
	return status;
}

const cm_image_codec cm_codec_jpeg = {
	CM_IMAGE_JPEG, "JPEG", jpeg_sniff, jpeg_header, jpeg_decode
};
