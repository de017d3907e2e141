"""Golden bytes for mt_image_save_png's float -> 8-bit mapping.

Reproduces diffusers' VaeImageProcessor.postprocess(output_type="pil"):
denormalize ((x / 2 + 0.5).clamp(0, 1), torch float32) then numpy_to_pil
((images * 255).round().astype("uint8"), numpy float32, round half to even).
For MT_RANGE_UNIT the same without the x / 2 + 0.5 step (clamped too).

Run with Debian's python3 (torch 1.13, numpy 1.24):
    /usr/bin/python3 tests/golden/files_image_rounding.py
and paste the output into tests/test_files.c.
"""
import numpy as np
import torch

signed = [-2.0, -1.0, -0.999, -0.5, -0.2, 0.0, 0.001, 0.1, 0.3, 0.5, 0.7, 0.999, 1.0, 1.5]
x = torch.tensor(signed, dtype=torch.float32)
y = (x / 2 + 0.5).clamp(0, 1).numpy()
b = (y * 255).round().astype("uint8")
print("signed inputs:", ", ".join("%.9gf" % v for v in x.numpy()))
print("signed bytes: ", ", ".join(str(v) for v in b))

# unit inputs whose float32 product with 255 is exactly n + 0.5 (ties)
ties = []
for n in range(255):
    v = np.float32((n + 0.5) / 255)
    if float(v * np.float32(255)) == n + 0.5:
        ties.append(v)
even = [v for v in ties if int(v * np.float32(255)) % 2 == 0][:2]
odd = [v for v in ties if int(v * np.float32(255)) % 2 == 1][:2]
unit = np.array([0.0, 1e-3, 0.25, 0.5, 0.75, 1.0] + even + odd, dtype=np.float32)
ub = (np.clip(unit, 0, 1) * 255).round().astype("uint8")
print("unit inputs:  ", ", ".join("%.9gf" % v for v in unit))
print("unit bytes:   ", ", ".join(str(v) for v in ub))
print("unit x*255:   ", ", ".join("%.9g" % (v * np.float32(255)) for v in unit))
