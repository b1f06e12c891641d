"""`depictqa serve` over HTTP: every endpoint, every bad input (then a good request still works),
and 32 concurrent requests batched and equal to one-at-a-time answers."""

from __future__ import annotations

import io
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.serve.conftest import png


def _files(**arrays) -> dict:
    return {k: (f"{k}.png", png(v), "image/png") for k, v in arrays.items()}


def test_health_and_openapi(server):
    health = httpx.get(server.url + "/healthz").json()
    assert health["status"] == "ok" and health["encoder"] == "tiny-vit" and health["max_batch"] == 16
    spec = httpx.get(server.url + "/openapi.json").json()
    assert {"/v1/assess", "/v1/compare", "/v1/score"} <= set(spec["paths"])


def test_page_is_self_contained(server):
    page = httpx.get(server.url + "/").text
    assert "<form" in page or "id=\"ask\"" in page
    assert "http://" not in page and "https://" not in page and "//cdn" not in page  # nothing from the internet


def test_endpoints_answer_as_the_assessor_does(server, images):
    a, b, ref = images[0], images[1], images[2]
    got = httpx.post(server.url + "/v1/assess", files=_files(image=a, reference=ref), data={"style": "single"}).json()
    want = server.assessor.assess(a, reference=ref, style="single", max_new_tokens=16)
    assert got["text"] == want.text and got["confidence"] == pytest.approx(want.confidence)
    assert isinstance(got["labels"], list)
    got = httpx.post(server.url + "/v1/compare", files=_files(image_a=a, image_b=b), data={"style": "brief"}).json()
    want = server.assessor.compare(a, b, style="brief", max_new_tokens=64)
    pref = server.assessor.prefer(a, b)
    assert got["text"] == want.text and got["p_a_better"] == pytest.approx(pref.p_a)
    assert got["choice"] == ("A" if pref.p_a >= 0.5 else "B")
    both = httpx.post(server.url + "/v1/compare", files=_files(image_a=a, image_b=b, reference=ref),
                      data={"both_orders": "true"}).json()
    assert both["p_a_better"] == pytest.approx(server.assessor.prefer(a, b, reference=ref, both_orders=True).p_a_debiased)
    got = httpx.post(server.url + "/v1/score", files=_files(image=a)).json()
    assert got["score"] == pytest.approx(server.assessor.score(a).score) and 1 <= got["score"] <= 5


def _huge_header_png(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height (its data is tiny and would not decode)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("endpoint, files, data, status, field", [
    ("/v1/assess", {"image": ("x.txt", b"hello, not an image", "text/plain")}, {}, 400, "image"),
    ("/v1/assess", {"image": ("e.png", b"", "image/png")}, {}, 400, "image"),
    ("/v1/assess", {"image": ("big.png", _huge_header_png(20000, 20000), "image/png")}, {}, 413, "image"),
    ("/v1/assess", {}, {"style": "brief"}, 400, "image"),
    ("/v1/compare", {"image_a": ("a.png", None, "image/png")}, {}, 400, "image_b"),
    ("/v1/assess", {"image": ("a.png", None, "image/png")}, {"style": "poem"}, 400, "style"),
    ("/v1/score", {"image": ("large.png", b"\x89PNG" + b"0" * 60_000, "image/png")}, {}, 413, "image"),
])
def test_bad_input_gets_a_4xx_naming_the_field_and_the_server_keeps_serving(server, images, endpoint, files, data,
                                                                             status, field):
    files = {k: (n, png(images[0]) if body is None else body, t) for k, (n, body, t) in files.items()}
    response = httpx.post(server.url + endpoint, files=files or None, data=data)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["field"] == field and field in body["error"]
    ok = httpx.post(server.url + "/v1/score", files=_files(image=images[1]))
    assert ok.status_code == 200 and 1 <= ok.json()["score"] <= 5


def test_32_concurrent_requests_are_batched_and_equal_one_at_a_time_answers(server, images):
    pairs = [(images[i % 5], images[(i + 1) % 5]) for i in range(32)]
    before = server.app.state.batcher.stats.largest

    def ask(pair):
        a, b = pair
        return httpx.post(server.url + "/v1/compare", files=_files(image_a=a, image_b=b),
                          data={"style": "single"}, timeout=120).json()

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(ask, pairs))
    alone = [server.assessor.compare(a, b, style="single", max_new_tokens=16) for a, b in pairs[:5]]
    assert len(answers) == 32 and all("text" in r for r in answers)
    assert [r["text"] for r in answers[:5]] == [x.text for x in alone]
    assert [r["confidence"] for r in answers[:5]] == pytest.approx([x.confidence for x in alone])
    assert max(before, server.app.state.batcher.stats.largest) > 1  # requests were grouped


def test_a_comparison_and_its_preference_encode_each_image_once(server, images):
    from depictqa.infer.assessor import _pixel_key
    from depictqa.infer.batching import prepare

    a, b, ref = images[3], images[4], images[0]
    req = server.assessor._request("compare", {"ref": ref, "a": a, "b": b}, "brief", None)
    distinct = {_pixel_key(px) for px in prepare(server.assessor.model, req, server.assessor.image_cfg).pixels}
    counted = []
    handle = server.assessor.model.encoder.register_forward_pre_hook(lambda m, args: counted.append(args[0].shape[0]))
    try:
        got = httpx.post(server.url + "/v1/compare", files=_files(image_a=a, image_b=b, reference=ref),
                         data={"style": "single"}, timeout=60).json()
    finally:
        handle.remove()
    assert sum(counted) == len(distinct) == 3  # not 6: the answer and P(A better) shared the encoder's work
    want = server.assessor.compare(a, b, reference=ref, style="single", max_new_tokens=16)
    assert got["text"] == want.text and got["confidence"] == pytest.approx(want.confidence)
    assert got["p_a_better"] == pytest.approx(server.assessor.prefer(a, b, reference=ref).p_a)


def test_the_command_serves_with_the_torch_threads_asked_for(ckpt):  # noqa: F811
    """`depictqa serve --torch-threads 1` in its own process: /healthz reports 1 thread; 0 is refused."""
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT
    from tests.serve.conftest import free_port

    bad = subprocess.run([sys.executable, "-m", "depictqa.cli", "serve", "--ckpt", str(ckpt), "--torch-threads", "0"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--torch-threads must be >= 1" in bad.stderr
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "depictqa.cli", "serve", "--ckpt", str(ckpt), "--port", str(port),
                             "--torch-threads", "1"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        health = None
        for _ in range(300):
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert health is not None and health["status"] == "ok" and health["torch_threads"] == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)
