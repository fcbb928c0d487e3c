"""Canvas -> model input: the training data's preprocessing, checked against the shipped images themselves.

Oracles: exact area averaging on known arrays; MNIST's rules (20-pixel box, centre of
mass at the centre of 28×28) and optdigits' (8 rows tall) measured on the output;
real test images drawn large on a canvas come back close to themselves; and every
refusal carries its code.  Deterministic: no randomness anywhere.
"""

from __future__ import annotations

import base64

import numpy as np
import pytest

from secquant.data import load_dataset
from secquant.web.choices import DemoModel
from secquant.web.errors import DemoInputError
from secquant.web.preprocess import (
    MIN_INK_PIXELS,
    area_resize,
    canvas_to_image,
    decode_pixels,
    file_to_image,
)


def test_area_resize_known_answers() -> None:
    img = np.arange(16, dtype=float).reshape(4, 4)
    assert np.allclose(area_resize(img, 2, 2), [[2.5, 4.5], [10.5, 12.5]])  # 2×2 block means
    # 3 -> 2: each output covers 1.5 inputs: (a + b/2) / 1.5 and (b/2 + c) / 1.5
    assert np.allclose(area_resize(np.array([[3.0, 6.0, 9.0]]), 1, 2), [[(3 + 3) / 1.5, (3 + 9) / 1.5]])
    assert np.allclose(area_resize(img, 8, 8)[::2, ::2], img)  # upsampling repeats
    rng_img = np.linspace(0, 1, 37 * 23).reshape(37, 23)
    assert np.isclose(area_resize(rng_img, 11, 5).mean(), rng_img.mean())  # area is conserved


def _canvas_of(image: np.ndarray, scale: int, pad: int = 17) -> np.ndarray:
    big = np.kron(image, np.ones((scale, scale)))
    canvas = np.zeros((big.shape[0] + 2 * pad, big.shape[1] + 2 * pad), dtype=np.uint8)
    canvas[pad:pad + big.shape[0], pad:pad + big.shape[1]] = np.round(big * 255).astype(np.uint8)
    return canvas


@pytest.mark.parametrize(("name", "model", "scale", "max_error"), [
    ("mnist", DemoModel.MNIST, 10, 0.08),   # measured mean |difference| 0.060
    ("digits", DemoModel.DIGITS, 35, 0.06),  # measured 0.041
])
def test_test_images_drawn_large_come_back(name: str, model: DemoModel, scale: int, max_error: float) -> None:
    """150 real test images, drawn 10-35× larger off-centre, preprocess back to (nearly) themselves."""
    ds = load_dataset(name)
    side = model.side
    errors = [np.abs(canvas_to_image(_canvas_of(img.reshape(side, side), scale), model) - img.reshape(side, side)).mean()
              for img in ds.x_test[:150]]
    assert np.mean(errors) < max_error


def test_mnist_rules_box_and_centre_of_mass() -> None:
    canvas = np.zeros((280, 280), dtype=np.uint8)
    canvas[30:230, 200:240] = 255  # a tall bar, far right: 200 × 40
    out = canvas_to_image(canvas, DemoModel.MNIST)
    rows, cols = np.flatnonzero(out.any(axis=1)), np.flatnonzero(out.any(axis=0))
    assert out.shape == (28, 28) and rows[-1] - rows[0] + 1 == 20 and cols[-1] - cols[0] + 1 == 4
    cy = (out.sum(axis=1) * (np.arange(28) + 0.5)).sum() / out.sum()
    cx = (out.sum(axis=0) * (np.arange(28) + 0.5)).sum() / out.sum()
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5
    assert out.max() == pytest.approx(1.0) and out.min() == 0.0


def test_digits_rules_full_height_aspect_kept() -> None:
    canvas = np.zeros((300, 300), dtype=np.uint8)
    canvas[40:280, 100:160] = 255  # 240 tall, 60 wide: 32 × 8 after scaling, two blocks wide
    out = canvas_to_image(canvas, DemoModel.DIGITS)
    assert out.shape == (8, 8)
    assert np.allclose(out[:, 3:5], 1.0) and np.allclose(np.delete(out, [3, 4], axis=1), 0.0)


def test_empty_and_specks_refused() -> None:
    for canvas in (np.zeros((280, 280), np.uint8), np.full((280, 280), 40, np.uint8)):
        with pytest.raises(DemoInputError, match="canvas is empty") as info:
            canvas_to_image(canvas, DemoModel.MNIST)
        assert info.value.code == "EmptyCanvas"
    specks = np.zeros((280, 280), np.uint8)
    specks.ravel()[:: 280 * 280 // (MIN_INK_PIXELS - 1)][: MIN_INK_PIXELS - 1] = 255
    with pytest.raises(DemoInputError, match="empty"):
        canvas_to_image(specks, DemoModel.DIGITS)
    specks.ravel()[1:: 280 * 280 // MIN_INK_PIXELS][:MIN_INK_PIXELS] = 255
    assert canvas_to_image(specks, DemoModel.DIGITS).max() > 0  # enough ink now


def test_wrong_sizes_and_bad_pixels_refused() -> None:
    with pytest.raises(DemoInputError, match="wrong image size") as info:
        decode_pixels(base64.b64encode(bytes(100)).decode(), 28, 28)
    assert info.value.code == "WrongImageSize"
    with pytest.raises(DemoInputError, match="wrong image size"):
        file_to_image(np.zeros((8, 8), np.uint8), DemoModel.MNIST)
    with pytest.raises(DemoInputError, match="at least 28x28"):
        canvas_to_image(np.full((20, 20), 255, np.uint8), DemoModel.MNIST)
    for width in (0, 5000, 2.5, True):
        with pytest.raises(DemoInputError, match="width"):
            decode_pixels("", width, 8)  # type: ignore[arg-type]
    with pytest.raises(DemoInputError, match="base64"):
        decode_pixels("not base64!", 2, 2)
    raw = bytes(range(64))
    assert decode_pixels(base64.b64encode(raw).decode(), 8, 8).tolist() == np.arange(64).reshape(8, 8).tolist()


def test_file_dark_ink_on_light_paper_is_inverted() -> None:
    ds = load_dataset("digits")
    img = ds.x_test[0].reshape(8, 8)
    paper = np.round((1.0 - img) * 255).astype(np.uint8)
    assert np.allclose(file_to_image(paper, DemoModel.DIGITS), img, atol=1 / 255)
    assert np.allclose(file_to_image(np.round(img * 255).astype(np.uint8), DemoModel.DIGITS), img, atol=1 / 255)
    with pytest.raises(DemoInputError, match="blank"):
        file_to_image(np.zeros((8, 8), np.uint8), DemoModel.DIGITS)
