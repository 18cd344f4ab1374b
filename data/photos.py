"""Image files as people take them, made to look like the data a net was trained on.

MNIST and Fashion-MNIST are light strokes on a dark background; a photo or scan of
ink on paper is the opposite, and a drawing exported with a transparent
background has its strokes in the alpha channel alone. An animated image is
read from its first frame. pred.invert: auto looks at the image's border to tell.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

INVERT_CHOICES = ("auto", "never", "always")


def _composite_transparency(image: Image.Image) -> tuple[Image.Image, bool]:
    """A transparent image on a plain background that keeps its strokes visible: white
    under dark strokes, black under light ones (then auto inversion applies as for paper)."""
    if not (image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)):
        return image, False
    rgba = image.convert("RGBA")
    alpha = np.asarray(rgba)[..., 3]
    if alpha.min() == 255:
        return image, False
    opaque = alpha > 127
    luminance = np.asarray(rgba.convert("L"), dtype=np.float64)
    dark_strokes = bool(opaque.any()) and luminance[opaque].mean() < 128
    canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255) if dark_strokes else (0, 0, 0, 255))
    canvas.alpha_composite(rgba)
    return canvas.convert("RGB"), True


def _border_level(gray: np.ndarray) -> float:
    return float(np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])))


def as_trained(image: Image.Image, dark_background: bool, invert: str = "auto") -> tuple[Image.Image, dict]:
    """(the image ready for the test transform, notes on what was done: 'inverted',
    'transparent', 'frames' of an animation of which the first was used)."""
    notes: dict = {"inverted": False}
    frames = int(getattr(image, "n_frames", 1) or 1)
    if frames > 1:
        image.seek(0)
        notes["frames"] = frames
    image, transparent = _composite_transparency(image)
    if transparent:
        notes["transparent"] = True
    if not dark_background or invert == "never":
        return image, notes
    gray = np.asarray(image.convert("L"), dtype=np.float64)
    level = _border_level(gray)
    if invert == "always" or level > 127:
        inverted = 255.0 - gray
        # paper is seldom white: its level becomes the black of the training images
        background, top = 255.0 - level, inverted.max()
        stretched = np.clip((inverted - background) * 255.0 / max(top - background, 1.0), 0, 255)
        image = Image.fromarray(stretched.astype(np.uint8), mode="L")
        notes["inverted"] = True
    return image, notes
