/*
 * make_exotic.c
 *	  Writes the image fixtures PIL cannot write itself (JPEG in YCCK, CMYK
 *	  without an Adobe marker, arithmetic coding, restart markers; TIFF tiled,
 *	  planar, 16-bit big-endian, min-is-white, associated alpha, LZW subsampled
 *	  YCbCr) from raw pixels that make_fixtures.py prepares.
 *	  Built and run by make_fixtures.py; not part of the test suite.
 *
 * Usage: make_exotic DIR W H   (reads DIR/base.rgb, DIR/base.cmyk, DIR/base.rgba)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <tiffio.h>

static int	W,
			H;
static const char *dir;

static unsigned char *
slurp(const char *name, size_t want)
{
	char		path[1024];
	FILE	   *f;
	unsigned char *b = malloc(want);

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (!f || fread(b, 1, want, f) != want)
	{
		fprintf(stderr, "cannot read %s\n", path);
		exit(1);
	}
	fclose(f);
	return b;
}

static void
write_jpeg(const char *name, const unsigned char *px, int comps, J_COLOR_SPACE in_space,
		   J_COLOR_SPACE jpeg_space, int adobe, int arith, int restart)
{
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr e;
	char		path[1024];
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	c.err = jpeg_std_error(&e);
	jpeg_create_compress(&c);
	jpeg_stdio_dest(&c, f);
	c.image_width = W;
	c.image_height = H;
	c.input_components = comps;
	c.in_color_space = in_space;
	jpeg_set_defaults(&c);
	jpeg_set_colorspace(&c, jpeg_space);
	jpeg_set_quality(&c, 90, TRUE);
	c.write_Adobe_marker = adobe;
	c.arith_code = arith;
	c.restart_interval = restart;
	jpeg_start_compress(&c, TRUE);
	for (int y = 0; y < H; y++)
	{
		JSAMPROW	row = (JSAMPROW) (px + (size_t) y * W * comps);

		jpeg_write_scanlines(&c, &row, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	fclose(f);
}

static TIFF *
tiff_start(const char *name, const char *mode, int spp, int bps, int photometric, int compression)
{
	char		path[1024];
	TIFF	   *t;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	t = TIFFOpen(path, mode);
	TIFFSetField(t, TIFFTAG_IMAGEWIDTH, W);
	TIFFSetField(t, TIFFTAG_IMAGELENGTH, H);
	TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, spp);
	TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, bps);
	TIFFSetField(t, TIFFTAG_PHOTOMETRIC, photometric);
	TIFFSetField(t, TIFFTAG_COMPRESSION, compression);
	TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
	return t;
}

/* Contiguous strips of 8 rows from samples of (bps / 8) bytes. */
static void
tiff_strips(TIFF *t, const void *data, size_t row_bytes)
{
	TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, 8);
	for (int y = 0, s = 0; y < H; y += 8, s++)
	{
		int			rows = H - y < 8 ? H - y : 8;

		TIFFWriteEncodedStrip(t, s, (unsigned char *) data + (size_t) y * row_bytes,
							  (tmsize_t) (rows * row_bytes));
	}
	TIFFClose(t);
}

int
main(int argc, char **argv)
{
	unsigned char *rgb,
			   *cmyk,
			   *rgba;
	TIFF	   *t;

	if (argc != 4)
		return 2;
	dir = argv[1];
	W = atoi(argv[2]);
	H = atoi(argv[3]);
	rgb = slurp("base.rgb", (size_t) W * H * 3);
	cmyk = slurp("base.cmyk", (size_t) W * H * 4);
	rgba = slurp("base.rgba", (size_t) W * H * 4);

	/* JPEG: YCCK (Adobe transform 2), CMYK with no Adobe marker, arithmetic, restarts */
	write_jpeg("jpeg_ycck.jpg", cmyk, 4, JCS_CMYK, JCS_YCCK, 1, 0, 0);
	write_jpeg("jpeg_cmyk_no_adobe.jpg", cmyk, 4, JCS_CMYK, JCS_CMYK, 0, 0, 0);
	write_jpeg("jpeg_arithmetic.jpg", rgb, 3, JCS_RGB, JCS_YCbCr, 0, 1, 0);
	write_jpeg("jpeg_restart.jpg", rgb, 3, JCS_RGB, JCS_YCbCr, 0, 0, 2);

	/* TIFF tiled 16x16, LZW with the horizontal predictor */
	{
		unsigned char tile[16 * 16 * 3];

		t = tiff_start("tiff_tiled_lzw.tif", "w", 3, 8, PHOTOMETRIC_RGB, COMPRESSION_LZW);
		TIFFSetField(t, TIFFTAG_PREDICTOR, PREDICTOR_HORIZONTAL);
		TIFFSetField(t, TIFFTAG_TILEWIDTH, 16);
		TIFFSetField(t, TIFFTAG_TILELENGTH, 16);
		for (int ty = 0; ty < H; ty += 16)
			for (int tx = 0; tx < W; tx += 16)
			{
				memset(tile, 0, sizeof(tile));
				for (int y = 0; y < 16 && ty + y < H; y++)
					for (int x = 0; x < 16 && tx + x < W; x++)
						memcpy(tile + (y * 16 + x) * 3, rgb + ((size_t) (ty + y) * W + tx + x) * 3, 3);
				TIFFWriteTile(t, tile, tx, ty, 0, 0);
			}
		TIFFClose(t);
	}

	/* TIFF planar (one plane per sample), Deflate */
	{
		unsigned char *plane = malloc((size_t) W * H);

		t = tiff_start("tiff_planar_deflate.tif", "w", 3, 8, PHOTOMETRIC_RGB, COMPRESSION_ADOBE_DEFLATE);
		TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_SEPARATE);
		TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, H);
		for (int c = 0; c < 3; c++)
		{
			for (int i = 0; i < W * H; i++)
				plane[i] = rgb[i * 3 + c];
			TIFFWriteEncodedStrip(t, c, plane, (tmsize_t) W * H);
		}
		TIFFClose(t);
		free(plane);
	}

	/* TIFF RGB 16-bit, big-endian, PackBits */
	{
		uint16_t   *px = malloc((size_t) W * H * 3 * 2);

		for (int i = 0; i < W * H * 3; i++)
			px[i] = (uint16_t) (rgb[i] * 257 + (i * 37) % 251);
		t = tiff_start("tiff_rgb16_be.tif", "wb", 3, 16, PHOTOMETRIC_RGB, COMPRESSION_PACKBITS);
		tiff_strips(t, px, (size_t) W * 3 * 2);
		free(px);
	}

	/* TIFF grey, min-is-white, 8-bit, LZW */
	{
		unsigned char *grey = malloc((size_t) W * H);

		for (int i = 0; i < W * H; i++)
			grey[i] = rgb[i * 3 + 1];
		t = tiff_start("tiff_grey_minwhite.tif", "w", 1, 8, PHOTOMETRIC_MINISWHITE, COMPRESSION_LZW);
		tiff_strips(t, grey, (size_t) W);
		free(grey);
	}

	/* TIFF RGBA with associated (premultiplied) alpha, uncompressed */
	{
		unsigned char *pm = malloc((size_t) W * H * 4);
		uint16_t	extra = EXTRASAMPLE_ASSOCALPHA;

		for (int i = 0; i < W * H; i++)
		{
			unsigned	a = rgba[i * 4 + 3];

			for (int c = 0; c < 3; c++)
				pm[i * 4 + c] = (unsigned char) ((rgba[i * 4 + c] * a + 127) / 255);
			pm[i * 4 + 3] = (unsigned char) a;
		}
		t = tiff_start("tiff_rgba_assoc.tif", "w", 4, 8, PHOTOMETRIC_RGB, COMPRESSION_NONE);
		TIFFSetField(t, TIFFTAG_EXTRASAMPLES, 1, &extra);
		tiff_strips(t, pm, (size_t) W * 4);
		free(pm);
	}

	/* TIFF YCbCr 2x2 subsampled, LZW (libtiff's RGBA path in PIL) */
	{
		int			bw = (W + 1) / 2,
					bh = (H + 1) / 2;
		unsigned char *units = malloc((size_t) bw * bh * 6);
		float		ref[6] = {0, 255, 128, 255, 128, 255};

		for (int by = 0; by < bh; by++)
			for (int bx = 0; bx < bw; bx++)
			{
				unsigned char *u = units + ((size_t) by * bw + bx) * 6;
				float		cb = 0,
							cr = 0;

				for (int k = 0; k < 4; k++)
				{
					int			x = bx * 2 + (k & 1),
								y = by * 2 + (k >> 1);
					const unsigned char *p;
					float		r,
								g,
								b,
								yy;

					if (x >= W)
						x = W - 1;
					if (y >= H)
						y = H - 1;
					p = rgb + ((size_t) y * W + x) * 3;
					r = p[0], g = p[1], b = p[2];
					yy = 0.299f * r + 0.587f * g + 0.114f * b;
					u[k] = (unsigned char) (yy + 0.5f);
					cb += (b - yy) / 1.772f + 128;
					cr += (r - yy) / 1.402f + 128;
				}
				u[4] = (unsigned char) (cb / 4 + 0.5f);
				u[5] = (unsigned char) (cr / 4 + 0.5f);
			}
		t = tiff_start("tiff_ycbcr_lzw.tif", "w", 3, 8, PHOTOMETRIC_YCBCR, COMPRESSION_LZW);
		TIFFSetField(t, TIFFTAG_YCBCRSUBSAMPLING, 2, 2);
		TIFFSetField(t, TIFFTAG_REFERENCEBLACKWHITE, ref);
		TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, (uint32_t) (bh * 2));
		TIFFWriteEncodedStrip(t, 0, units, (tmsize_t) bw * bh * 6);
		TIFFClose(t);
		free(units);
	}
	free(rgb);
	free(cmyk);
	free(rgba);
	return 0;
}
