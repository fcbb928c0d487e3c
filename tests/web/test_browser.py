"""The demo page in a real browser: Debian's Chromium, headless, driven by selenium.

Oracles: ``qm.predict`` on the same shipped test image; the relay's record of
the bytes that went to the server (``GET /api/wire``) against the size the page
shows; the badge's colour; the error codes of refused input.  Missing Chromium
fails these tests (CI installs it with ``scripts/setup-env.sh test``); it never
skips them.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import secquant
from secquant.data import load_dataset
from tests.web.conftest import DemoProcess, launch_demo

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
GREEN = "rgba(26, 127, 55, 1)"  # --ok in style.css


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: the browser tests need Debian's chromium and chromium-driver; "
                    "run `bash scripts/setup-env.sh test` as root, or apt-get install -y chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1400", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def demo(demo_models: tuple[Path, dict[str, dict[str, Any]]]) -> Iterator[DemoProcess]:
    """``secquant demo --web`` with both models under BFV."""
    running = launch_demo(demo_models[0], "--scheme", "bfv")
    yield running
    running.stop(signal.SIGINT)


def _open(browser: Any, url: str, model: str, scheme: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model option")) > 0)
    Select(browser.find_element(By.ID, "model")).select_by_value(model)
    Select(browser.find_element(By.ID, "scheme")).select_by_value(scheme)


def _run_and_wait(browser: Any, timeout: float = 300) -> str:
    """Press Run; return "done" once the prediction shows, or the error code shown."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    old = browser.find_element(By.ID, "status").get_attribute("data-job")
    browser.find_element(By.ID, "run").click()

    def finished(d: Any) -> str | bool:
        error = d.find_element(By.ID, "error")
        if error.is_displayed():
            return error.get_attribute("data-code") or "error"
        job = d.find_element(By.ID, "status").get_attribute("data-job")
        done = d.find_element(By.ID, "run").is_enabled() and job and job != old
        return "done" if done and d.find_element(By.ID, "prediction").get_attribute("data-value") else False

    return str(WebDriverWait(browser, timeout, poll_frequency=0.3).until(finished))


def test_draw_a_digit_run_bfv_and_see_both_sides(browser: Any, demo: DemoProcess, tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    _open(browser, demo.url, "mnist", "bfv")
    canvas = browser.find_element(By.ID, "canvas")
    ActionChains(browser).move_to_element_with_offset(canvas, -50, -90).click_and_hold().move_by_offset(90, 0) \
        .move_by_offset(-50, 90).move_by_offset(-20, 80).release().perform()  # a 7
    assert _run_and_wait(browser) == "done", browser.find_element(By.ID, "error").text
    prediction = browser.find_element(By.ID, "prediction")
    assert prediction.get_attribute("data-value") in [str(d) for d in range(10)] and "BFV" in prediction.text
    badge = browser.find_element(By.ID, "agreement")
    assert "ok" in badge.get_attribute("class").split() and badge.get_attribute("data-kind") == "bit-exact"
    assert badge.value_of_css_property("background-color") == GREEN and "bit-exact" in badge.text
    # the ciphertext size shown is what went through the wire to the server
    job = browser.find_element(By.ID, "status").get_attribute("data-job")
    wire = httpx.get(f"{demo.url}api/wire", params={"job": job}).json()["records"]
    sent = sum(w["request_bytes"] for w in wire if w["method"] == "POST" and w["path"].endswith("/evaluate"))
    shown = browser.find_element(By.ID, "ct-bytes")
    assert int(shown.get_attribute("data-bytes")) == sent > 0 and f"{sent:,} bytes" in shown.text
    head = browser.find_element(By.ID, "ct-head").text.replace(" ", "")
    assert head.startswith(b"SQNT".hex())  # a secquant frame, as the server receives it
    stages = browser.find_element(By.ID, "stages").text
    assert "generating keys" in stages and "uploading the public and evaluation keys" in stages
    assert "only to this local client app" in browser.find_element(By.ID, "privacy").text
    browser.save_screenshot(str(tmp_path / "demo-bfv.png"))
    assert (tmp_path / "demo-bfv.png").stat().st_size > 10_000


def test_pick_a_test_image_prediction_equals_qm_predict(browser: Any, demo: DemoProcess,
                                                        demo_models: tuple[Path, dict[str, dict[str, Any]]]) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, demo.url, "mnist", "bfv")
    thumbs = browser.find_elements(By.CSS_SELECTOR, "#gallery .thumb")
    assert len(thumbs) == 10
    thumb = thumbs[6]
    index = int(thumb.get_attribute("data-index"))
    thumb.click()
    assert _run_and_wait(browser) == "done", browser.find_element(By.ID, "error").text
    qm = secquant.QuantizedModel.load(demo_models[1]["mnist"]["path"])
    ds = load_dataset("mnist")
    expected = int(qm.predict(ds.images()[1][index:index + 1]).argmax())
    assert int(browser.find_element(By.ID, "prediction").get_attribute("data-value")) == expected
    assert f"label {int(ds.y_test[index])}" in browser.find_element(By.ID, "prediction").text


def _png(path: Path, pixels: np.ndarray) -> None:
    """A greyscale PNG, written by hand (zlib + CRCs)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    h, w = pixels.shape
    raw = b"".join(b"\0" + row.tobytes() for row in pixels.astype(np.uint8))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_empty_canvas_and_wrong_image_size_are_refused_on_the_page(browser: Any, demo: DemoProcess,
                                                                   tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _open(browser, demo.url, "mnist", "bfv")
    browser.find_element(By.ID, "clear").click()
    assert _run_and_wait(browser, 30) == "EmptyCanvas"
    assert "canvas is empty" in browser.find_element(By.ID, "error").text
    small = tmp_path / "digit8x8.png"
    _png(small, np.round(load_dataset("digits").x_test[0].reshape(8, 8) * 255))
    browser.find_element(By.ID, "file").send_keys(str(small))
    WebDriverWait(browser, 30).until(  # the page reads the file asynchronously (slow on a loaded machine)
        lambda d: d.find_elements(By.XPATH, "//*[@id='input-note'][contains(., 'digit8x8.png')]"))
    assert _run_and_wait(browser, 30) == "WrongImageSize"
    assert "takes a 28x28 image, this one is 8x8" in browser.find_element(By.ID, "error").text


def test_unreachable_and_mismatched_servers_are_explained_on_the_page(
        browser: Any, demo_models: tuple[Path, dict[str, dict[str, Any]]], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    from secquant.demo import prepare_models
    from secquant.protocol import ModelBinding, ServerThread, ServiceConfig, create_app

    token = secrets.token_urlsafe(24)
    other = prepare_models(("digits",), tmp_path / "other", epochs=1, seed=3, echo=lambda _: None)["digits"]["path"]
    server = ServerThread(create_app(ModelBinding.build(other, "bfv", {"mode": "latency"}),
                                     ServiceConfig(token=token, cache_dir=str(tmp_path / "keys")))).start()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    remote = launch_demo(demo_models[0], "--data", "digits", "--server", dead, "--server", server.url,
                         env={"SECQUANT_TOKEN": token})
    try:
        _open(browser, remote.url, "digits", "ckks")
        browser.find_elements(By.CSS_SELECTOR, "#gallery .thumb")[0].click()
        assert _run_and_wait(browser, 60) == "ServerUnreachable"
        assert f"cannot reach the inference server at {dead}" in browser.find_element(By.ID, "error").text
        _open(browser, remote.url, "digits", "bfv")
        browser.find_elements(By.CSS_SELECTOR, "#gallery .thumb")[0].click()
        assert _run_and_wait(browser, 120) == "SpecMismatch"
        assert "spec mismatch" in browser.find_element(By.ID, "error").text
    finally:
        assert remote.stop(signal.SIGINT) == 0
        server.stop()
