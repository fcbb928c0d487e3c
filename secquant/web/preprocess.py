"""Turn what the page sends into a model input, with the preprocessing of the training data.

The page sends grayscale pixels (one byte each, ink bright, base64) of the
canvas it drew on, or of an image file at its own size.  Two models, two
preprocessings, each the one that made its training set:

* **MNIST** (28×28, values in [0, 1] = ink/255): the digit's bounding box is
  scaled, aspect ratio kept, to fit a 20×20 box with area averaging
  (anti-aliased grey levels), then placed in the 28×28 field with its centre
  of mass at the centre, as LeCun et al. built MNIST.
* **digits** (8×8, values in [0, 1] = count/16): the bounding box is scaled,
  aspect ratio kept, to the full height of a 32×32 bitmap (every digit of the
  set is 8 rows tall; a wide one is narrowed to 32 columns), centred
  horizontally; each 4×4 block's mean is one
  input, which for a drawn (on/off) stroke is its count of on pixels over 16,
  as the UCI optdigits set (sklearn's ``load_digits``) was made.

Everything is NumPy; the only resampling is exact area averaging
(:func:`area_resize`).
"""

from __future__ import annotations

import base64
import binascii

import numpy as np
from numpy.typing import NDArray

from secquant.web.choices import DemoModel
from secquant.web.errors import DemoInputError

__all__ = ["MAX_SIDE", "MIN_INK_PIXELS", "area_resize", "canvas_to_image", "decode_pixels", "file_to_image"]

#: Largest canvas or image side accepted, in pixels.
MAX_SIDE = 1024
#: Fewest pixels with ink (grey >= 25%) for a canvas to count as drawn on.
MIN_INK_PIXELS = 12
_INK = 0.25
_FAINT = 0.05  # grey levels above this count for the bounding box


def _side(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIDE:
        raise DemoInputError(f"image {name} must be an integer in [1, {MAX_SIDE}] pixels, got {value!r}",
                             code="WrongImageSize")
    return value


def decode_pixels(data: object, width: object, height: object) -> NDArray[np.uint8]:
    """Decode base64 grayscale bytes into a ``(height, width)`` array.

    Args:
        data: Base64 of ``width * height`` bytes, row-major, 0 = black, 255 = white.
        width: Pixels per row, an int in [1, MAX_SIDE].
        height: Rows, an int in [1, MAX_SIDE].

    Raises:
        DemoInputError: invalid sizes or base64, or a byte count that is not width × height
            (code ``WrongImageSize``).
    """
    w, h = _side("width", width), _side("height", height)
    if not isinstance(data, str) or len(data) > 2 * MAX_SIDE * MAX_SIDE:
        raise DemoInputError("pixels must be a base64 string of at most "
                             f"{MAX_SIDE}x{MAX_SIDE} bytes", code="BadInput")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DemoInputError(f"pixels are not valid base64 ({exc})", code="BadInput") from exc
    if len(raw) != w * h:
        raise DemoInputError(f"wrong image size: {len(raw)} bytes of pixels for a {w}x{h} image "
                             f"(expected {w * h}); send one grey byte per pixel", code="WrongImageSize")
    return np.frombuffer(raw, dtype=np.uint8).reshape(h, w)


def area_resize(img: NDArray[np.floating], rows: int, cols: int) -> NDArray[np.float64]:
    """Resample by exact area averaging: each output pixel is the mean of the input area it covers.

    Args:
        img: 2-D array.
        rows: Output rows (>= 1).
        cols: Output columns (>= 1).
    """
    return _area_matrix(rows, img.shape[0]) @ np.asarray(img, dtype=np.float64) @ _area_matrix(cols, img.shape[1]).T


def _area_matrix(n_out: int, n_in: int) -> NDArray[np.float64]:
    """(n_out, n_in) weights: overlap of output cell i with input cell j, over the output cell's length."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    j = np.arange(n_in)[None, :]
    overlap = np.minimum(edges[1:, None], j + 1) - np.maximum(edges[:-1, None], j)
    return np.clip(overlap, 0.0, None) * (n_out / n_in)


def _ink_box(ink: NDArray[np.float64]) -> NDArray[np.float64]:
    """The bounding box of the ink; refuses an (almost) empty canvas."""
    if int((ink >= _INK).sum()) < MIN_INK_PIXELS:
        raise DemoInputError("the canvas is empty: draw a digit first (or pick a test image)", code="EmptyCanvas")
    mask = ink > _FAINT
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _fit(box: NDArray[np.float64], side: int) -> NDArray[np.float64]:
    """Scale ``box`` so that its longer side is ``side`` pixels, aspect ratio kept."""
    h, w = box.shape
    scale = side / max(h, w)
    return area_resize(box, max(1, round(h * scale)), max(1, round(w * scale)))


def _mnist(ink: NDArray[np.float64]) -> NDArray[np.float64]:
    digit = np.clip(_fit(_ink_box(ink), 20), 0.0, 1.0)
    h, w = digit.shape
    total = digit.sum()
    cy = float((digit.sum(axis=1) * (np.arange(h) + 0.5)).sum() / total)
    cx = float((digit.sum(axis=0) * (np.arange(w) + 0.5)).sum() / total)
    top, left = int(np.clip(round(14 - cy), 0, 28 - h)), int(np.clip(round(14 - cx), 0, 28 - w))
    out = np.zeros((28, 28))
    out[top:top + h, left:left + w] = digit
    return out


def _digits(ink: NDArray[np.float64]) -> NDArray[np.float64]:
    box = _ink_box(ink)
    h, w = box.shape  # optdigits fills the height (every sklearn digit is 8 rows tall), aspect ratio kept
    digit = np.clip(area_resize(box, 32, min(32, max(1, round(w * 32 / h)))), 0.0, 1.0)
    h, w = digit.shape
    bitmap = np.zeros((32, 32))
    top, left = (32 - h) // 2, (32 - w) // 2
    bitmap[top:top + h, left:left + w] = digit
    return bitmap.reshape(8, 4, 8, 4).sum(axis=(1, 3)) / 16.0


def canvas_to_image(pixels: NDArray[np.uint8], model: DemoModel) -> NDArray[np.float32]:
    """A drawing (ink bright, any size) -> the model's image, preprocessed as its training data.

    Args:
        pixels: ``(H, W)`` grey levels, 0 = background, 255 = ink.
        model: Which model's preprocessing.

    Returns:
        float32 ``(side, side)`` in [0, 1] (28×28 MNIST, 8×8 digits).

    Raises:
        DemoInputError: an empty canvas (code ``EmptyCanvas``), or one smaller than the model's image
            (code ``WrongImageSize``).
    """
    if pixels.ndim != 2 or min(pixels.shape) < model.side:
        raise DemoInputError(f"wrong image size: a canvas must be at least {model.side}x{model.side} pixels, "
                             f"got {'x'.join(map(str, pixels.shape[::-1]))}", code="WrongImageSize")
    ink = pixels.astype(np.float64) / 255.0
    image = _mnist(ink) if model is DemoModel.MNIST else _digits(ink)
    return image.astype(np.float32)


def file_to_image(pixels: NDArray[np.uint8], model: DemoModel) -> NDArray[np.float32]:
    """An image file already at the model's size -> the model's image (grey/255; dark-on-light is inverted).

    Args:
        pixels: ``(H, W)`` grey levels.
        model: The model whose input size the image must have.

    Returns:
        float32 ``(side, side)`` in [0, 1].

    Raises:
        DemoInputError: the image is not ``side`` × ``side`` (code ``WrongImageSize``) or is blank
            (code ``EmptyCanvas``).
    """
    if pixels.shape != (model.side, model.side):
        raise DemoInputError(
            f"wrong image size: the {model.title} takes a {model.side}x{model.side} image, this one is "
            f"{pixels.shape[1]}x{pixels.shape[0]}; resize it, or draw on the canvas", code="WrongImageSize")
    image = pixels.astype(np.float64) / 255.0
    if image.mean() > 0.5:  # dark ink on a light background: the training data are light on dark
        image = 1.0 - image
    if image.max() < _INK:
        raise DemoInputError("the image is blank: it holds no digit", code="EmptyCanvas")
    return image.astype(np.float32)
