#!/usr/bin/python3
"""Writes the image-decoding fixtures of test/images/ and their references.

Run from the repository root with Debian's Python (python3-pil 9.4, numpy):

    /usr/bin/python3 test/images/make_fixtures.py

Every fixture is a small image in one of the formats encode_image reads, made
from the same synthetic picture (smooth gradients, edges and noise, asymmetric
so that a wrong orientation shows).  Next to each, NAME.ppm holds what
transformers' load_image gives a CLIPImageProcessor for it:
ImageOps.exif_transpose(Image.open(f)).convert("RGB"), computed by PIL 9.4.
Alpha fixtures also get NAME.white.ppm / NAME.black.ppm: the image pasted onto
an opaque background with its alpha as the mask.  manifest.json lists them.

Where PIL 9.4 is not followed on purpose, the reference is computed by the
rule the runtime follows and the manifest says so ("rule"):
  - 16-bit grey (PNG, TIFF): PIL opens it as mode I / I;16 and convert("RGB")
    clamps every value above 255 to white; the runtime keeps the high byte,
    as PIL itself does for every other 16-bit layout.
  - TIFF Orientation: Pillow 9.4 turns a TIFF upright when it loads it, and
    exif_transpose then turns it again (Pillow 10.1 fixed this); the runtime
    applies the orientation once.

PIL cannot write a few layouts (YCCK and marker-less CMYK JPEG, arithmetic
coding, tiled / planar / 16-bit / min-is-white / premultiplied / subsampled
YCbCr TIFF): make_exotic.c writes those with libjpeg-turbo and libtiff, and PIL
reads them back for the reference like every other fixture.
"""
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
from PIL import Image, ImageOps, TiffImagePlugin

HERE = os.path.dirname(os.path.abspath(__file__))
W, H = 37, 23                   # odd sizes: partial JPEG MCUs, TIFF tiles, BMP row padding

manifest = []


def base_rgb(w=W, h=H, seed=1):
    """A small photo-like picture: gradients, a disc, a bar, mild noise."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 40 + 180 * x / (w - 1)
    g = 30 + 200 * y / (h - 1)
    b = 120 + 90 * np.sin(x / 3.0) * np.cos(y / 5.0)
    disc = (x - w * 0.3) ** 2 + (y - h * 0.35) ** 2 < (min(w, h) * 0.22) ** 2
    r[disc], g[disc], b[disc] = 240, 200, 30
    bar = (x > w * 0.62) & (x < w * 0.7)
    r[bar], g[bar], b[bar] = 20, 20, 60
    img = np.stack([r, g, b], -1) + rng.normal(0, 6, (h, w, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


RGB = base_rgb()
ALPHA = np.clip(np.rint(255 * np.mgrid[0:H, 0:W][1] / (W - 1)), 0, 255).astype(np.uint8)
ALPHA[:, :4] = 0                # fully transparent columns, whose colour PIL's convert keeps
ALPHA[:, -4:] = 255


def path(name):
    return os.path.join(HERE, name)


def write_ppm(name, im):
    im = im.convert("RGB") if im.mode != "RGB" else im
    with open(path(name), "wb") as f:
        f.write(b"P6\n%d %d\n255\n" % im.size)
        f.write(im.tobytes())


def reference(name):
    with Image.open(path(name)) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


def composite(name, colour):
    with Image.open(path(name)) as im:
        im = ImageOps.exif_transpose(im).convert("RGBA")
        bg = Image.new("RGB", im.size, colour)
        bg.paste(im, (0, 0), im)
        return bg


def add(name, note, alpha=False, rule=None, ref=None):
    """Record a fixture written to test/images/name and write its references."""
    entry = {"file": name, "expect": name + ".ppm", "note": note}
    write_ppm(name + ".ppm", ref if ref is not None else reference(name))
    if rule:
        entry["rule"] = rule
    if alpha:
        write_ppm(name + ".white.ppm", composite(name, (255, 255, 255)))
        write_ppm(name + ".black.ppm", composite(name, (0, 0, 0)))
        entry["white"] = name + ".white.ppm"
        entry["black"] = name + ".black.ppm"
    manifest.append(entry)


def save(name, im, **kw):
    im.save(path(name), **kw)


def exif_bytes(orientation, big_endian=False, type_=3):
    """An EXIF block with IFD0 holding one Orientation entry of the given type."""
    e = ">" if big_endian else "<"
    head = (b"MM\x00\x2a" if big_endian else b"II\x2a\x00") + struct.pack(e + "I", 8)
    if type_ == 3:
        value = struct.pack(e + "HH", orientation, 0)
    else:
        value = struct.pack(e + "I", orientation)
    ifd = struct.pack(e + "H", 1) + struct.pack(e + "HHI", 0x0112, type_, 1) + value + struct.pack(e + "I", 0)
    return b"Exif\x00\x00" + head + ifd


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(w, h, depth, colour_type, raw_rows, extra=b""):
    """A PNG from filter-0 rows, for layouts PIL cannot write (16-bit RGB)."""
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, 0)
    data = b"".join(b"\x00" + row for row in raw_rows)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra +
            png_chunk(b"IDAT", zlib.compress(data, 9)) + png_chunk(b"IEND", b""))


def bmp_bytes(w, h, bpp, pixel_rows, compression=0, masks=None, palette=b"", header_size=40):
    """A bottom-up BMP from already packed rows (top row first)."""
    row_bytes = (w * bpp + 31) // 32 * 4
    data = b"".join(r.ljust(row_bytes, b"\x00") for r in reversed(pixel_rows))
    extra = b""
    if masks is not None and header_size == 40:
        extra = struct.pack("<III", *masks[:3])
    info = struct.pack("<IiiHHIIiiII", header_size, w, h, 1, bpp, compression, len(data), 2835, 2835,
                       len(palette) // 4, 0)
    if header_size == 108:
        info += struct.pack("<IIII", *masks) + b"BGRs" + b"\x00" * 36 + b"\x00" * 12
    offset = 14 + len(info) + len(extra) + len(palette)
    head = b"BM" + struct.pack("<IHHI", offset + len(data), 0, 0, offset)
    return head + info + extra + palette + data


def main():
    rgb = Image.fromarray(RGB, "RGB")
    rgba = Image.fromarray(np.dstack([RGB, ALPHA]), "RGBA")
    grey = rgb.convert("L")

    # ------------------------------------------------------------ PNG
    save("png_rgb.png", rgb)
    add("png_rgb.png", "8-bit RGB")
    save("png_grey.png", grey)
    add("png_grey.png", "8-bit grey")
    save("png_rgba.png", rgba)
    add("png_rgba.png", "RGBA, transparent columns", alpha=True)
    save("png_grey_alpha.png", Image.merge("LA", [grey, Image.fromarray(ALPHA)]))
    add("png_grey_alpha.png", "grey + alpha", alpha=True)
    save("png_bilevel.png", grey.point(lambda v: 255 if v > 128 else 0).convert("1"))
    add("png_bilevel.png", "1-bit grey (PIL mode 1)")
    pal = rgb.quantize(12)
    save("png_palette_trns.png", pal, transparency=3)
    add("png_palette_trns.png", "palette of 12 with a transparent index", alpha=True)
    # a 4-entry PLTE whose pixels also use indices 4..9: PIL shows grey (i, i, i)
    idx = (np.arange(W * H).reshape(H, W) % 10).astype(np.uint8)
    plte = bytes([200, 10, 10, 10, 200, 10, 10, 10, 200, 240, 240, 0])
    with open(path("png_palette_short.png"), "wb") as f:
        f.write(png_bytes(W, H, 8, 3, [idx[y].tobytes() for y in range(H)], png_chunk(b"PLTE", plte)))
    add("png_palette_short.png", "palette indices past a short PLTE")
    # 16-bit RGB (PIL keeps the high byte: exact)
    rgb16 = RGB.astype(np.uint16) * 257 + (np.arange(W * H * 3).reshape(H, W, 3) % 200).astype(np.uint16)
    with open(path("png_rgb16.png"), "wb") as f:
        f.write(png_bytes(W, H, 16, 2, [rgb16[y].astype(">u2").tobytes() for y in range(H)]))
    add("png_rgb16.png", "16-bit RGB")
    # 16-bit grey: the documented deviation (high byte, not PIL's clamp)
    g16 = (np.asarray(grey).astype(np.uint16) * 257 + 77).astype(np.uint16)
    with open(path("png_grey16.png"), "wb") as f:
        f.write(png_bytes(W, H, 16, 0, [g16[y].astype(">u2").tobytes() for y in range(H)]))
    with Image.open(path("png_grey16.png")) as im:
        assert im.mode == "I"
        clamped = np.asarray(im.convert("RGB"))
        assert (clamped == 255).all(), "PIL 9.4 no longer clamps 16-bit grey?"
        high = Image.fromarray((np.asarray(im) >> 8).astype(np.uint8), "L")
    add("png_grey16.png", "16-bit grey", rule="high byte (PIL 9.4 clamps to 255)", ref=high)
    # Adam7 interlacing (PIL cannot write it)
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    data = b""
    for x0, y0, dx, dy in passes:
        sub = RGB[y0::dy, x0::dx]
        if sub.size:
            data += b"".join(b"\x00" + sub[y].tobytes() for y in range(sub.shape[0]))
    ihdr = struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 1)
    with open(path("png_interlaced.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(data, 9)) +
                png_chunk(b"IEND", b""))
    add("png_interlaced.png", "Adam7 interlaced RGB")
    # EXIF orientation in the three places PIL reads it from a PNG
    save("png_exif6.png", rgb, exif=exif_bytes(6))
    add("png_exif6.png", "eXIf orientation 6")
    from PIL import PngImagePlugin
    raw = exif_bytes(8)
    text = "\nexif\n    %d\n" % len(raw) + "\n".join(raw.hex()[i:i + 72] for i in range(0, len(raw) * 2, 72)) + "\n"
    info = PngImagePlugin.PngInfo()
    info.add_text("Raw profile type exif", text, zip=True)
    save("png_rawprofile8.png", rgb, pnginfo=info)
    add("png_rawprofile8.png", "ImageMagick raw EXIF profile (zTXt), orientation 8")
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp",
                  '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description tiff:Orientation="3"/></x:xmpmeta>')
    save("png_xmp3.png", rgb, pnginfo=info)
    add("png_xmp3.png", "XMP tiff:Orientation 3 (iTXt)")

    # ------------------------------------------------------------ JPEG
    save("jpeg_444.jpg", rgb, quality=92, subsampling=0)
    add("jpeg_444.jpg", "baseline 4:4:4")
    save("jpeg_420.jpg", rgb, quality=85, subsampling=2)
    add("jpeg_420.jpg", "baseline 4:2:0")
    save("jpeg_422.jpg", rgb, quality=85, subsampling=1)
    add("jpeg_422.jpg", "baseline 4:2:2")
    save("jpeg_progressive.jpg", rgb, quality=85, progressive=True)
    add("jpeg_progressive.jpg", "progressive 4:2:0")
    save("jpeg_grey.jpg", grey, quality=90)
    add("jpeg_grey.jpg", "greyscale")
    save("jpeg_cmyk_adobe.jpg", rgb.convert("CMYK"), quality=90)
    add("jpeg_cmyk_adobe.jpg", "CMYK, Adobe marker (inverted, as Photoshop writes)")
    for o in range(1, 9):
        save("jpeg_exif%d.jpg" % o, rgb, quality=90, exif=exif_bytes(o))
        add("jpeg_exif%d.jpg" % o, "EXIF orientation %d" % o)
    save("jpeg_exif6_mm_long.jpg", rgb, quality=90, exif=exif_bytes(6, big_endian=True, type_=4))
    add("jpeg_exif6_mm_long.jpg", "EXIF orientation 6, big-endian, LONG")

    # ------------------------------------------------------------ GIF
    save("gif_palette.gif", rgb.quantize(64))
    add("gif_palette.gif", "64 colours")
    frames = [rgb.quantize(32), Image.fromarray(RGB[::-1].copy(), "RGB").quantize(32)]
    frames[0].save(path("gif_animated.gif"), save_all=True, append_images=frames[1:], duration=100, loop=0)
    add("gif_animated.gif", "two frames: the first is read")

    # ------------------------------------------------------------ BMP
    save("bmp_rgb24.bmp", rgb)
    add("bmp_rgb24.bmp", "24-bit")
    save("bmp_palette8.bmp", rgb.quantize(50))
    add("bmp_palette8.bmp", "8-bit palette")
    save("bmp_grey8.bmp", grey)
    add("bmp_grey8.bmp", "8-bit grey palette")
    q16 = rgb.quantize(16)
    packed = []
    a = np.asarray(q16)
    for y in range(H):
        row = a[y].tolist() + [0]
        packed.append(bytes((row[i] << 4) | row[i + 1] for i in range(0, W, 2)))
    pal16 = b"".join(bytes([c[2], c[1], c[0], 0]) for c in np.asarray(q16.getpalette()[:48]).reshape(16, 3))
    with open(path("bmp_palette4.bmp"), "wb") as f:
        f.write(bmp_bytes(W, H, 4, packed, palette=pal16))
    add("bmp_palette4.bmp", "4-bit palette")
    r5, g6, b5 = RGB[..., 0] >> 3, RGB[..., 1] >> 2, RGB[..., 2] >> 3
    v565 = (r5.astype(np.uint16) << 11) | (g6.astype(np.uint16) << 5) | b5
    with open(path("bmp_565.bmp"), "wb") as f:
        f.write(bmp_bytes(W, H, 16, [v565[y].astype("<u2").tobytes() for y in range(H)], compression=3,
                          masks=(0xF800, 0x7E0, 0x1F)))
    add("bmp_565.bmp", "16-bit 5-6-5 bit fields")
    v555 = (r5.astype(np.uint16) << 10) | ((RGB[..., 1] >> 3).astype(np.uint16) << 5) | b5
    with open(path("bmp_555.bmp"), "wb") as f:
        f.write(bmp_bytes(W, H, 16, [v555[y].astype("<u2").tobytes() for y in range(H)]))
    add("bmp_555.bmp", "16-bit 5-5-5")
    bgrx = np.dstack([RGB[..., 2], RGB[..., 1], RGB[..., 0], ALPHA])
    with open(path("bmp_bgrx32.bmp"), "wb") as f:
        f.write(bmp_bytes(W, H, 32, [bgrx[y].tobytes() for y in range(H)]))
    add("bmp_bgrx32.bmp", "32-bit BI_RGB: the fourth byte is not alpha", alpha=True)
    with open(path("bmp_bgra32_v4.bmp"), "wb") as f:
        f.write(bmp_bytes(W, H, 32, [bgrx[y].tobytes() for y in range(H)], compression=3,
                          masks=(0xFF0000, 0xFF00, 0xFF, 0xFF000000), header_size=108))
    add("bmp_bgra32_v4.bmp", "32-bit bit fields with alpha (v4 header)", alpha=True)

    # ------------------------------------------------------------ TGA
    save("tga_rgb.tga", rgb)
    add("tga_rgb.tga", "24-bit, bottom-up")
    save("tga_rgb_rle.tga", rgb, compression="tga_rle")
    add("tga_rgb_rle.tga", "24-bit RLE")
    save("tga_rgba_topleft.tga", rgba, orientation=1)
    add("tga_rgba_topleft.tga", "32-bit, top-down", alpha=True)
    save("tga_grey_rle.tga", grey, compression="tga_rle")
    add("tga_grey_rle.tga", "grey RLE")
    save("tga_palette.tga", rgb.quantize(40))
    add("tga_palette.tga", "colour-mapped")
    with open(path("tga_rgb.tga"), "rb") as f:
        tga = bytearray(f.read())
    tga[17] |= 0x10                                     # stored right to left
    with open(path("tga_right_to_left.tga"), "wb") as f:
        f.write(tga)
    add("tga_right_to_left.tga", "24-bit, right-to-left origin")
    v = ((RGB[..., 0] >> 3).astype(np.uint16) << 10) | ((RGB[..., 1] >> 3).astype(np.uint16) << 5) | (RGB[..., 2] >> 3)
    hdr = struct.pack("<BBBHHBHHHHBB", 0, 0, 2, 0, 0, 0, 0, 0, W, H, 16, 0x20)
    with open(path("tga_rgb16.tga"), "wb") as f:
        f.write(hdr + v.astype("<u2").tobytes())
    add("tga_rgb16.tga", "16-bit, top-down")

    # ------------------------------------------------------------ WebP
    save("webp_lossy.webp", rgb, quality=80)
    add("webp_lossy.webp", "lossy")
    save("webp_lossless.webp", rgb, lossless=True)
    add("webp_lossless.webp", "lossless")
    save("webp_alpha_lossy.webp", rgba, quality=80)
    add("webp_alpha_lossy.webp", "lossy with alpha", alpha=True)
    save("webp_alpha_lossless.webp", rgba, lossless=True, exact=True)
    add("webp_alpha_lossless.webp", "lossless with alpha, colour kept under transparency", alpha=True)
    second = Image.fromarray(RGB[::-1].copy(), "RGB")
    rgb.save(path("webp_animated.webp"), save_all=True, append_images=[second], duration=100, lossless=True)
    add("webp_animated.webp", "two frames: the first is read")
    save("webp_exif6.webp", rgb, quality=80, exif=exif_bytes(6))
    add("webp_exif6.webp", "EXIF orientation 6")

    # ------------------------------------------------------------ TIFF
    save("tiff_rgb_none.tif", rgb)
    add("tiff_rgb_none.tif", "RGB, uncompressed")
    save("tiff_rgb_lzw.tif", rgb, compression="tiff_lzw")
    add("tiff_rgb_lzw.tif", "RGB, LZW")
    save("tiff_rgb_deflate.tif", rgb, compression="tiff_adobe_deflate")
    add("tiff_rgb_deflate.tif", "RGB, Deflate")
    save("tiff_rgb_jpeg.tif", rgb, compression="jpeg")
    add("tiff_rgb_jpeg.tif", "JPEG-compressed (YCbCr)")
    save("tiff_grey_packbits.tif", grey, compression="packbits")
    add("tiff_grey_packbits.tif", "grey, PackBits")
    save("tiff_bilevel_g4.tif", grey.point(lambda v: 255 if v > 128 else 0).convert("1"), compression="group4")
    add("tiff_bilevel_g4.tif", "bilevel, CCITT Group 4")
    save("tiff_palette_lzw.tif", rgb.quantize(20), compression="tiff_lzw")
    add("tiff_palette_lzw.tif", "palette, LZW")
    save("tiff_cmyk.tif", rgb.convert("CMYK"), compression="tiff_lzw")
    add("tiff_cmyk.tif", "CMYK, LZW")
    save("tiff_rgba_lzw.tif", rgba, compression="tiff_lzw")
    add("tiff_rgba_lzw.tif", "RGBA (unassociated alpha), LZW", alpha=True)
    save("tiff_grey16.tif", Image.fromarray(g16, "I;16"))
    with Image.open(path("tiff_grey16.tif")) as im:
        high = Image.fromarray((np.asarray(im).astype(np.uint16) >> 8).astype(np.uint8), "L")
    add("tiff_grey16.tif", "16-bit grey", rule="high byte (PIL 9.4 clamps to 255)", ref=high)
    save("tiff_orient6.tif", rgb, compression="tiff_lzw", tiffinfo={274: 6})
    with Image.open(path("tiff_orient6.tif")) as im:
        im.load()                       # Pillow 9.4 turns a TIFF upright as it loads it ...
        assert im.size == (H, W)
        once = im.convert("RGB")
        assert ImageOps.exif_transpose(im).size == (W, H)   # ... and exif_transpose turns it again
    add("tiff_orient6.tif", "Orientation tag 6", rule="applied once (Pillow 9.4 applies it twice)", ref=once)

    # ------------------------------------------------------------ written by make_exotic.c
    with tempfile.TemporaryDirectory() as tmp:
        cmyk = np.asarray(rgb.convert("CMYK"))
        with open(os.path.join(tmp, "base.rgb"), "wb") as f:
            f.write(RGB.tobytes())
        with open(os.path.join(tmp, "base.cmyk"), "wb") as f:
            f.write(cmyk.tobytes())
        with open(os.path.join(tmp, "base.rgba"), "wb") as f:
            f.write(np.dstack([RGB, ALPHA]).tobytes())
        exe = os.path.join(tmp, "make_exotic")
        subprocess.run(["cc", "-O1", "-o", exe, os.path.join(HERE, "make_exotic.c"), "-ljpeg", "-ltiff"],
                       check=True)
        subprocess.run([exe, tmp, str(W), str(H)], check=True)
        for name, note, alpha in [
                ("jpeg_ycck.jpg", "YCCK (Adobe transform 2)", False),
                ("jpeg_cmyk_no_adobe.jpg", "CMYK without an Adobe marker (PIL inverts it all the same)", False),
                ("jpeg_arithmetic.jpg", "arithmetic coding", False),
                ("jpeg_restart.jpg", "restart markers every 2 MCUs", False),
                ("tiff_tiled_lzw.tif", "tiled 16x16, LZW + predictor", False),
                ("tiff_planar_deflate.tif", "one plane per sample, Deflate", False),
                ("tiff_rgb16_be.tif", "16-bit RGB, big-endian, PackBits", False),
                ("tiff_grey_minwhite.tif", "grey, min-is-white, LZW", False),
                ("tiff_rgba_assoc.tif", "RGBA, associated (premultiplied) alpha", True),
                ("tiff_ycbcr_lzw.tif", "YCbCr 2x2 subsampled, LZW (libtiff's RGBA conversion)", False)]:
            os.replace(os.path.join(tmp, name), path(name))
            add(name, note, alpha=alpha)

    with open(path("manifest.json"), "w") as f:
        json.dump({"generator": "test/images/make_fixtures.py", "pil": Image.__version__,
                   "fixtures": manifest}, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(path(e["file"])) for e in manifest)
    print("%d fixtures, %d bytes of images" % (len(manifest), total))


if __name__ == "__main__":
    main()
