/*
 * image_formats.h
 *	  The interface between the image decoder's dispatcher (image_decode.c)
 *	  and its per-format decoders, plus the EXIF / XMP orientation readers
 *	  they share (private to the image module).
 *
 * A codec reads its format's header without decoding anything, then decodes
 * at full scale or, where the format allows it, at a reduced scale.  The
 * dispatcher checks the header's size against the limits between the two
 * calls, so a decoder may allocate for the declared size once its own header
 * parse agrees with what it decodes.
 */
#ifndef CM_IMAGE_FORMATS_H
#define CM_IMAGE_FORMATS_H

#include "image_decode.h"

/* What a header says about the stored image. */
typedef struct cm_image_header
{
	uint32_t	width;			/* as stored, before orientation */
	uint32_t	height;
	int			orientation;	/* EXIF orientation found, 1..8; 1 when none */
	int			max_reduce;		/* largest reduced scale this image decodes at:
								 * 1 (full scale only), 2, 4 or 8 */
} cm_image_header;

/* One decode: the bytes, their header (checked against the limits), the scale. */
typedef struct cm_decode_request
{
	const unsigned char *bytes;
	size_t		len;
	cm_image_header header;
	int			reduce;			/* 1, or a power of two up to header.max_reduce */
	cm_cancel_fn cancel;		/* polled by codecs that can stop midway; may be NULL */
	void	   *cancel_ctx;
} cm_decode_request;

typedef struct cm_image_codec
{
	cm_image_format format;
	const char *name;

	/* Does the signature match (len may be short)? */
	bool		(*sniff) (const unsigned char *b, size_t len);

	/* Size and orientation from the header; CM_ERR_INPUT when malformed. */
	cm_status	(*header) (const unsigned char *b, size_t len, cm_image_header *h,
						   cm_error *err);

	/*
	 * Decode into out->pixels (malloc) at ceil(width / reduce) x
	 * ceil(height / reduce); set width, height, stride and colours, and
	 * extent_width / extent_height when the decoded pixels span the image
	 * otherwise than DCT scaling's width / reduce.
	 */
	cm_status	(*decode) (const cm_decode_request *req, cm_decoded_image *out,
						   cm_error *err);
} cm_image_codec;

/* In the order they are tried (TGA, which has no signature, last). */
extern const cm_image_codec cm_codec_png;
extern const cm_image_codec cm_codec_jpeg;
extern const cm_image_codec cm_codec_gif;
extern const cm_image_codec cm_codec_bmp;
extern const cm_image_codec cm_codec_webp;
extern const cm_image_codec cm_codec_tiff;
extern const cm_image_codec cm_codec_tga;

/*
 * The orientation tag (0x0112) of IFD0 of an EXIF block (a TIFF structure,
 * optionally behind "Exif\0\0"), read as PIL's Image.getexif() reads it:
 * 1..8, or 0 when the block has no usable orientation.
 */
int			cm_exif_orientation(const unsigned char *exif, size_t len);

/*
 * The first value of the last IFD0 entry for tag in a TIFF structure (a TIFF
 * file, or an EXIF block without its "Exif\0\0"), as PIL reads IFDs: false
 * when the tag is absent or its value is not a number.
 */
bool		cm_tiff_ifd0_number(const unsigned char *tiff, size_t len, uint32_t tag,
								double *value);

/*
 * Whether IFD0 of a TIFF file and the data of each of its entries lie within
 * the len bytes given (libtiff quietly drops or defaults a tag whose data is
 * cut off, which would decode a truncated file as something else).
 */
bool		cm_tiff_ifd0_complete(const unsigned char *tiff, size_t len);

/*
 * The orientation in XMP text, as PIL 9.4 finds it (the first
 * tiff:Orientation="N" or tiff:Orientation>N); 0 when none.
 */
int			cm_xmp_orientation(const unsigned char *xmp, size_t len);

/* Big- and little-endian reads. */
static inline uint32_t
cm_be16(const unsigned char *p)
{
	return (uint32_t) p[0] << 8 | p[1];
}

static inline uint32_t
cm_be32(const unsigned char *p)
{
	return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

static inline uint32_t
cm_le16(const unsigned char *p)
{
	return (uint32_t) p[0] | (uint32_t) p[1] << 8;
}

static inline uint32_t
cm_le32(const unsigned char *p)
{
	return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

/* malloc of w * h * samples bytes, NULL on overflow or failure. */
unsigned char *cm_alloc_pixels(uint32_t w, uint32_t h, int samples);

#endif							/* CM_IMAGE_FORMATS_H */
