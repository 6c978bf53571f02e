/*
 * image_exif.c
 *	  The EXIF orientation tag, read from an EXIF block or from XMP text the
 *	  way PIL's Image.getexif() finds it (for ImageOps.exif_transpose).
 *
 * An EXIF block is a small TIFF structure: a byte-order mark, an offset to
 * IFD0, and IFD0's 12-byte entries (tag, type, count, value or offset).  PIL
 * reads every entry of IFD0 in order, a later duplicate replacing an earlier
 * one, stops quietly at the first entry that does not fit, and takes the
 * first value of a tag it expects once.  exif_transpose then looks the value
 * up in a dict keyed 2..8, so any numeric type whose value equals one of
 * those integers counts (a SHORT 6, a RATIONAL 6/1, a FLOAT 6.0), while text
 * and byte strings do not.  Every offset is checked against the block.
 */
#include <math.h>
#include <string.h>

#include "image_formats.h"

/* TIFF field types PIL reads as numbers, and their sizes. */
enum
{
	T_BYTE = 1, T_SHORT = 3, T_LONG = 4, T_RATIONAL = 5, T_SBYTE = 6,
	T_SSHORT = 8, T_SLONG = 9, T_SRATIONAL = 10, T_FLOAT = 11, T_DOUBLE = 12,
	T_LONG8 = 16
};

#define TAG_ORIENTATION 0x0112

typedef struct tiff_reader
{
	const unsigned char *b;
	size_t		len;
	bool		big;			/* big-endian ("MM") */
} tiff_reader;

static uint32_t
rd16(const tiff_reader *r, size_t off)
{
	return r->big ? cm_be16(r->b + off) : cm_le16(r->b + off);
}

static uint32_t
rd32(const tiff_reader *r, size_t off)
{
	return r->big ? cm_be32(r->b + off) : cm_le32(r->b + off);
}

static uint64_t
rd64(const tiff_reader *r, size_t off)
{
	uint64_t	a = rd32(r, off),
				b = rd32(r, off + 4);

	return r->big ? a << 32 | b : b << 32 | a;
}

static int
type_size(uint32_t type)
{
	switch (type)
	{
		case T_BYTE:
		case T_SBYTE:
			return 1;
		case T_SHORT:
		case T_SSHORT:
			return 2;
		case T_LONG:
		case T_SLONG:
		case T_FLOAT:
			return 4;
		case T_RATIONAL:
		case T_SRATIONAL:
		case T_DOUBLE:
		case T_LONG8:
			return 8;
	}
	return 0;
}

/* The first value at off as a double; false for a zero denominator. */
static bool
first_value(const tiff_reader *r, uint32_t type, size_t off, double *v)
{
	switch (type)
	{
		case T_BYTE:
			*v = r->b[off];
			return true;
		case T_SBYTE:
			*v = (int8_t) r->b[off];
			return true;
		case T_SHORT:
			*v = rd16(r, off);
			return true;
		case T_SSHORT:
			*v = (int16_t) rd16(r, off);
			return true;
		case T_LONG:
			*v = rd32(r, off);
			return true;
		case T_SLONG:
			*v = (int32_t) rd32(r, off);
			return true;
		case T_LONG8:
			*v = (double) rd64(r, off);
			return true;
		case T_RATIONAL:
		case T_SRATIONAL:
			{
				uint32_t	n = rd32(r, off),
							d = rd32(r, off + 4);

				if (d == 0)
					return false;
				*v = type == T_RATIONAL ? (double) n / d : (double) (int32_t) n / (int32_t) d;
				return true;
			}
		case T_FLOAT:
			{
				uint32_t	bits = rd32(r, off);
				float		f;

				memcpy(&f, &bits, sizeof(f));
				*v = f;
				return true;
			}
		case T_DOUBLE:
			{
				uint64_t	bits = rd64(r, off);

				memcpy(v, &bits, sizeof(*v));
				return true;
			}
	}
	return false;
}

/*
 * The first value of the last entry for tag in IFD0 of a TIFF structure, as
 * PIL reads it; false when the tag is absent or its value is not a number.
 */
bool
cm_tiff_ifd0_number(const unsigned char *tiff, size_t len, uint32_t want, double *value)
{
	tiff_reader r;
	uint64_t	ifd;
	size_t		entry_size,		/* bytes per IFD entry */
				count_size,		/* of an entry's value count */
				value_size;		/* of an entry's inline value */
	uint64_t	n;
	bool		bigtiff,
				found = false;

	if (tiff == NULL || len < 8)
		return false;
	/* PIL accepts either byte-order mark with either magic byte order. */
	if (tiff[0] == 'M' && tiff[1] == 'M')
		r.big = true;
	else if (tiff[0] == 'I' && tiff[1] == 'I')
		r.big = false;
	else
		return false;
	r.b = tiff;
	r.len = len;
	if ((tiff[2] == 0 && tiff[3] == 42) || (tiff[2] == 42 && tiff[3] == 0))
		bigtiff = false;
	else if ((tiff[2] == 0 && tiff[3] == 43) || (tiff[2] == 43 && tiff[3] == 0))
		bigtiff = true;
	else
		return false;
	if (bigtiff)
	{
		if (len < 16)
			return false;
		ifd = rd64(&r, 8);
		entry_size = 20, count_size = 8, value_size = 8;
	}
	else
	{
		ifd = rd32(&r, 4);
		entry_size = 12, count_size = 4, value_size = 4;
	}
	if (ifd > len || len - ifd < (bigtiff ? 8 : 2))
		return false;
	n = bigtiff ? rd64(&r, (size_t) ifd) : rd16(&r, (size_t) ifd);
	for (uint64_t i = 0; i < n; i++)
	{
		size_t		e = (size_t) ifd + (bigtiff ? 8 : 2) + (size_t) i * entry_size;
		uint32_t	tag,
					type;
		uint64_t	count,
					bytes;
		size_t		voff;
		int			size;

		if (e > len || len - e < entry_size)
			break;				/* PIL stops at the first short entry */
		tag = rd16(&r, e);
		type = rd16(&r, e + 2);
		if (tag != want)
			continue;
		/* a later entry replaces an earlier one, usable or not */
		found = false;
		count = bigtiff ? rd64(&r, e + 4) : rd32(&r, e + 4);
		size = type_size(type);
		if (size == 0 || count == 0 || count > len)
			continue;			/* not a number, or more values than bytes */
		bytes = count * (uint64_t) size;
		if (bytes <= value_size)
			voff = e + 4 + count_size;
		else
		{
			uint64_t	off = bigtiff ? rd64(&r, e + 4 + count_size) : rd32(&r, e + 4 + count_size);

			if (off > len || len - off < bytes)
				continue;		/* PIL skips an entry whose data is short */
			voff = (size_t) off;
		}
		found = first_value(&r, type, voff, value);
	}
	return found;
}

bool
cm_tiff_ifd0_complete(const unsigned char *tiff, size_t len)
{
	tiff_reader r;
	uint64_t	ifd,
				n;
	bool		bigtiff;
	size_t		entry_size,
				head;

	if (tiff == NULL || len < 8)
		return false;
	r.b = tiff;
	r.len = len;
	r.big = tiff[0] == 'M';
	bigtiff = tiff[2] == 43 || tiff[3] == 43;
	if (bigtiff && len < 16)
		return false;
	ifd = bigtiff ? rd64(&r, 8) : rd32(&r, 4);
	head = bigtiff ? 8 : 2;
	entry_size = bigtiff ? 20 : 12;
	if (ifd > len || len - ifd < head)
		return false;
	n = bigtiff ? rd64(&r, (size_t) ifd) : rd16(&r, (size_t) ifd);
	if (n > (len - ifd - head) / entry_size)
		return false;
	for (uint64_t i = 0; i < n; i++)
	{
		size_t		e = (size_t) ifd + head + (size_t) i * entry_size;
		int			size = type_size(rd16(&r, e + 2));
		uint64_t	count = bigtiff ? rd64(&r, e + 4) : rd32(&r, e + 4),
					off;

		if (size == 0)
			size = 1;			/* ASCII, UNDEFINED and others: bytes */
		if (count > len || count * (uint64_t) size <= (bigtiff ? 8u : 4u))
		{
			if (count > len)
				return false;
			continue;			/* inline */
		}
		off = bigtiff ? rd64(&r, e + 12) : rd32(&r, e + 8);
		if (off > len || len - off < count * (uint64_t) size)
			return false;
	}
	return true;
}

int
cm_exif_orientation(const unsigned char *exif, size_t len)
{
	double		v;

	if (exif != NULL && len >= 6 && memcmp(exif, "Exif\0\0", 6) == 0)
	{
		exif += 6;
		len -= 6;
	}
	if (!cm_tiff_ifd0_number(exif, len, TAG_ORIENTATION, &v))
		return 0;
	return (v >= 1 && v <= 8 && v == floor(v)) ? (int) v : 0;
}

int
cm_xmp_orientation(const unsigned char *xmp, size_t len)
{
	static const char key[] = "tiff:Orientation";
	size_t		k = sizeof(key) - 1;

	for (size_t i = 0; xmp != NULL && i + k < len; i++)
	{
		size_t		j = i + k;

		if (memcmp(xmp + i, key, k) != 0)
			continue;
		if (j + 1 < len && xmp[j] == '=' && xmp[j + 1] == '"')
			j += 2;
		else if (xmp[j] == '>')
			j += 1;
		else
			continue;
		if (j < len && xmp[j] >= '0' && xmp[j] <= '9')
			return xmp[j] - '0';
	}
	return 0;
}
