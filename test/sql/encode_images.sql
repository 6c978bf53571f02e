-- encode_images: every image format through encode_image, against the same
-- model fed PIL's pixels for that file (test/images: NAME.ppm is PIL 9.4's
-- result, re-encoded here as an uncompressed PNG, which the decoder reads
-- exactly); the image settings (EXIF orientation, background, decode mode)
-- and the errors of formats that are not read.

\getenv abs_srcdir PG_ABS_SRCDIR
\set golden :abs_srcdir '/golden'
\set fixtures :abs_srcdir '/images/'
SET crossmodal.model_path = :'golden';
\set m32 '''tiny-clip-quickgelu-f32'''

CREATE FUNCTION pg_temp.try(query text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	state text;
	msg text;
	hint text;
BEGIN
	EXECUTE query;
	RETURN NEXT 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
	RETURN NEXT state || ': ' || msg;
	IF hint <> '' THEN RETURN NEXT 'HINT: ' || hint; END IF;
END $$;

-- A binary PPM (P6, maxval 255) as a PNG of stored deflate blocks: the same
-- pixels, in a format every decoder path reads exactly.
CREATE FUNCTION pg_temp.ppm_to_png(ppm bytea) RETURNS bytea LANGUAGE plpgsql AS $$
DECLARE
	header text := encode(substring(ppm for 20), 'escape');
	parts text[] := regexp_match(header, '^P6\s+(\d+)\s+(\d+)\s+255\s');
	w int := parts[1]::int;
	h int := parts[2]::int;
	body bytea := substring(ppm from length(substring(header from '^P6\s+\d+\s+\d+\s+255\s')) + 1);
	raw bytea := '';
	z bytea;
	a bigint := 1;
	b bigint := 0;
	i int;
	n int;
	off int := 0;
	ihdr bytea;
BEGIN
	FOR y IN 0 .. h - 1 LOOP
		raw := raw || '\x00'::bytea || substring(body from y * w * 3 + 1 for w * 3);
	END LOOP;
	FOR i IN 0 .. length(raw) - 1 LOOP
		a := (a + get_byte(raw, i)) % 65521;
		b := (b + a) % 65521;
	END LOOP;
	z := '\x7801';
	WHILE off < length(raw) LOOP
		n := least(65535, length(raw) - off);
		z := z || set_byte(set_byte(set_byte(set_byte(set_byte('\x0000000000'::bytea,
				0, CASE WHEN off + n = length(raw) THEN 1 ELSE 0 END),
				1, n & 255), 2, n >> 8), 3, (~n) & 255), 4, ((~n) >> 8) & 255)
			|| substring(raw from off + 1 for n);
		off := off + n;
	END LOOP;
	z := z || int4send((b << 16 | a)::bit(32)::int);
	ihdr := int4send(w) || int4send(h) || '\x0802000000'::bytea;
	-- chunk CRCs are not checked by the decoder; zeros stand in for them
	RETURN '\x89504e470d0a1a0a'::bytea
		|| int4send(13) || 'IHDR'::bytea || ihdr || '\x00000000'::bytea
		|| int4send(length(z)) || 'IDAT'::bytea || z || '\x00000000'::bytea
		|| int4send(0) || 'IEND'::bytea || '\x00000000'::bytea;
END $$;

-- One file per format and layout: our decode against PIL's pixels.
SELECT f AS file,
       dims(encode_image(:m32, pg_read_binary_file(:'fixtures' || f))) AS dims,
       1 - (encode_image(:m32, pg_read_binary_file(:'fixtures' || f))
            <=> encode_image(:m32, pg_temp.ppm_to_png(pg_read_binary_file(:'fixtures' || f || '.ppm'))))
           > 0.99999 AS same_as_pil
FROM unnest(ARRAY['png_rgb.png', 'png_palette_trns.png', 'png_rgb16.png', 'png_interlaced.png',
                  'jpeg_420.jpg', 'jpeg_progressive.jpg', 'jpeg_grey.jpg', 'jpeg_cmyk_adobe.jpg',
                  'jpeg_ycck.jpg', 'jpeg_exif6.jpg', 'gif_animated.gif', 'bmp_565.bmp',
                  'tga_rgb_rle.tga', 'webp_lossy.webp', 'webp_alpha_lossless.webp',
                  'webp_animated.webp', 'tiff_rgb_lzw.tif', 'tiff_rgb_jpeg.tif',
                  'tiff_bilevel_g4.tif', 'tiff_cmyk.tif']) AS f;

-- EXIF orientation: on by default; off, a rotated photo is embedded as stored.
SELECT 1 - (encode_image(:m32, pg_read_binary_file(:'fixtures' || 'jpeg_exif6.jpg'))
            <=> encode_image(:m32, pg_read_binary_file(:'fixtures' || 'jpeg_exif1.jpg'))) > 0.99999 AS rotated_same_as_stored;
SET crossmodal.image_exif_orientation = off;
SELECT 1 - (encode_image(:m32, pg_read_binary_file(:'fixtures' || 'jpeg_exif6.jpg'))
            <=> encode_image(:m32, pg_read_binary_file(:'fixtures' || 'jpeg_exif1.jpg'))) > 0.99999 AS stored_same_as_stored;
RESET crossmodal.image_exif_orientation;

-- Background: none drops alpha (PIL's convert); white and black composite first.
SELECT 1 - (encode_image(:m32, pg_read_binary_file(:'fixtures' || 'png_rgba.png'))
            <=> encode_image(:m32, pg_temp.ppm_to_png(pg_read_binary_file(:'fixtures' || 'png_rgba.png.ppm')))) > 0.99999 AS none_as_pil;
SET crossmodal.image_background = white;
SELECT 1 - (encode_image(:m32, pg_read_binary_file(:'fixtures' || 'png_rgba.png'))
            <=> encode_image(:m32, pg_temp.ppm_to_png(pg_read_binary_file(:'fixtures' || 'png_rgba.png.white.ppm')))) > 0.99999 AS white_as_pil_paste;
SET crossmodal.image_background = black;
SELECT 1 - (encode_image(:m32, pg_read_binary_file(:'fixtures' || 'png_rgba.png'))
            <=> encode_image(:m32, pg_temp.ppm_to_png(pg_read_binary_file(:'fixtures' || 'png_rgba.png.black.ppm')))) > 0.99999 AS black_as_pil_paste;
RESET crossmodal.image_background;

-- The settings: values, and who may change them.
SHOW crossmodal.image_exif_orientation;
SHOW crossmodal.image_background;
SHOW crossmodal.image_decode;
SELECT pg_temp.try($$SET crossmodal.image_background = 'grey'$$);
SELECT pg_temp.try($$SET crossmodal.image_decode = 'fast'$$);
SET crossmodal.image_decode = exact;
SELECT dims(encode_image(:m32, pg_read_binary_file(:'fixtures' || 'jpeg_420.jpg'))) AS exact_dims;
RESET crossmodal.image_decode;
CREATE ROLE crossmodal_images_user;
SET ROLE crossmodal_images_user;
SELECT pg_temp.try($$SET crossmodal.image_background = white$$);
SELECT pg_temp.try($$SET crossmodal.image_exif_orientation = off$$);
SELECT pg_temp.try($$SET crossmodal.image_decode = exact$$);
RESET ROLE;
DROP ROLE crossmodal_images_user;

-- Formats and layouts that are not read: 0A000 with the reason.
SELECT pg_temp.try($$SELECT encode_image('tiny-clip-quickgelu-f32', '\x0000001c667479706176696600000000'
                                                                     '6d6966316d696166617669660000000a'::bytea)$$);
SELECT pg_temp.try($$SELECT encode_image('tiny-clip-quickgelu-f32', '\x00000018667479706865696300000000'
                                                                     '6d69663168656963'::bytea)$$);
SELECT pg_temp.try($$SELECT encode_images('tiny-clip-quickgelu-f32',
                                          ARRAY['\x0000001866747970686569630000000068656963'::bytea])$$);
-- Truncated: 22P02.
SELECT pg_temp.try(format($$SELECT encode_image('tiny-clip-quickgelu-f32', substring(%L::bytea for 900))$$,
                          pg_read_binary_file(:'fixtures' || 'jpeg_420.jpg')));
SELECT pg_temp.try(format($$SELECT encode_image('tiny-clip-quickgelu-f32', substring(%L::bytea for 300))$$,
                          pg_read_binary_file(:'fixtures' || 'webp_lossy.webp')));
SELECT pg_temp.try(format($$SELECT encode_image('tiny-clip-quickgelu-f32', substring(%L::bytea for 900))$$,
                          pg_read_binary_file(:'fixtures' || 'tiff_rgb_lzw.tif')));
