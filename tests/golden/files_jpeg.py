"""A tiny JPEG for tests/test_files.c (test_image_jpeg): a flat 16 x 16 RGB
image (200, 100, 50) with a 4 x 4 white square at (4..7, 8..11), baseline,
quality 95, 4:2:0 chroma subsampling, written by Pillow 9.4 (Debian).

    /usr/bin/python3 tests/golden/files_jpeg.py
prints the C array pasted into the test.
"""
import io
from PIL import Image

im = Image.new("RGB", (16, 16), (200, 100, 50))
for y in range(4, 8):
    for x in range(8, 12):
        im.putpixel((x, y), (255, 255, 255))
buf = io.BytesIO()
im.save(buf, format="JPEG", quality=95, subsampling=2, optimize=False)
data = buf.getvalue()
print("/* %d bytes */" % len(data))
for i in range(0, len(data), 16):
    print("    " + ", ".join("0x%02x" % b for b in data[i:i + 16]) + ",")
# what Pillow's decoder (libjpeg) gives back at (row, column)
back = Image.open(io.BytesIO(data)).convert("RGB")
for r, c in [(0, 0), (0, 15), (15, 0), (15, 15), (5, 9)]:
    print("/* decoded (%d, %d): %s */" % (r, c, back.getpixel((c, r))))
