"""Regenerate the shipped target images (deterministic): python assets/targets/make_images.py"""

from pathlib import Path

import numpy as np

from btcore.images import write_png

OUT = Path(__file__).resolve().parent
N = 256


def phantom(n=N):
    """Shepp-Logan head phantom (modified intensities)."""
    ellipses = [  # value, a, b, x0, y0, angle (degrees)
        (1.0, 0.69, 0.92, 0.0, 0.0, 0), (-0.8, 0.6624, 0.874, 0.0, -0.0184, 0),
        (-0.2, 0.11, 0.31, 0.22, 0.0, -18), (-0.2, 0.16, 0.41, -0.22, 0.0, 18),
        (0.1, 0.21, 0.25, 0.0, 0.35, 0), (0.1, 0.046, 0.046, 0.0, 0.1, 0), (0.1, 0.046, 0.046, 0.0, -0.1, 0),
        (0.1, 0.046, 0.023, -0.08, -0.605, 0), (0.1, 0.023, 0.023, 0.0, -0.606, 0),
        (0.1, 0.023, 0.046, 0.06, -0.605, 0),
    ]
    y, x = np.mgrid[1:-1:n * 1j, -1:1:n * 1j]
    img = np.zeros((n, n))
    for v, a, b, x0, y0, ang in ellipses:
        t = np.deg2rad(ang)
        xr = (x - x0) * np.cos(t) + (y - y0) * np.sin(t)
        yr = -(x - x0) * np.sin(t) + (y - y0) * np.cos(t)
        img[(xr / a) ** 2 + (yr / b) ** 2 <= 1] += v
    return np.clip(img, 0, 1)


def rings(n=N):
    """Concentric rings whose frequency grows outwards, over a diagonal gradient."""
    y, x = np.mgrid[-1:1:n * 1j, -1:1:n * 1j]
    r2 = x**2 + y**2
    return np.clip(0.35 + 0.3 * np.cos(18 * r2) * np.exp(-r2) + 0.15 * (x + y) / 2, 0, 1)


def clouds(n=N, seed=7):
    """Fractal (1/f^2 spectrum) noise: texture at every scale, like a natural image."""
    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(n)
    k = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    k[0, 0] = 1.0
    spec = (rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))) / k**2
    spec[0, 0] = 0
    img = np.real(np.fft.ifft2(spec))
    img = (img - img.min()) / (img.max() - img.min())
    return img


if __name__ == "__main__":
    for name, fn in (("phantom", phantom), ("rings", rings), ("clouds", clouds)):
        (OUT / f"{name}.png").write_bytes(write_png(fn()))
        print("wrote", OUT / f"{name}.png")
