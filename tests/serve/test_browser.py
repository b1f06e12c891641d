"""The web page in a real browser: headless Chromium (the OS package) driven by Playwright uploads
a reference and two images, asks for a comparison and reads the answer from the page."""

from __future__ import annotations

import shutil

import httpx
import pytest

from tests.serve.conftest import png

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no system Chromium: `make test` installs it with apt-get")
def test_page_compares_two_images_in_chromium(server, images, tmp_path):
    from playwright.sync_api import sync_playwright

    for name, array in (("ref", images[0]), ("a", images[1]), ("b", images[2])):
        (tmp_path / f"{name}.png").write_bytes(png(array))
    expected = httpx.post(server.url + "/v1/compare", data={"style": "brief"},
                          files={"image_a": ("a.png", png(images[1]), "image/png"),
                                 "image_b": ("b.png", png(images[2]), "image/png"),
                                 "reference": ("ref.png", png(images[0]), "image/png")}).json()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        requests_outside = []
        page.on("request", lambda r: r.url.startswith(server.url) or requests_outside.append(r.url))
        page.goto(server.url + "/")
        page.select_option("#mode", "compare")
        page.select_option("#style", "brief")
        page.set_input_files("#reference", str(tmp_path / "ref.png"))
        page.set_input_files("#image_a", str(tmp_path / "a.png"))
        page.set_input_files("#image_b", str(tmp_path / "b.png"))
        page.click("#ask")
        page.wait_for_selector("#result[data-done='1']", timeout=60_000)
        answer = page.inner_text("#result")
        confidence = page.inner_text("#confidence")
        thumbnails = page.eval_on_selector_all(".drop img", "els => els.map(e => e.naturalWidth)")
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        browser.close()
    assert answer == expected["text"]
    assert "P(A better)" in confidence and f"Image {expected['choice']}" in confidence
    assert all(w > 0 for w in thumbnails)  # the three thumbnails are shown
    assert not [u for u in requests_outside if not u.startswith(("blob:", "data:"))], requests_outside
    assert (tmp_path / "page.png").stat().st_size > 10_000
