"""A real server on a free loopback port, over a tiny random checkpoint built here."""

from __future__ import annotations

import io
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image

from tests.infer.conftest import assessor, ckpt, images, tiny  # noqa: F401  (fixtures)


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "Server":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(ckpt):  # noqa: F811
    from depictqa.infer.assessor import Assessor
    from depictqa.serve import ServeConfig, create_app

    served = Assessor.from_pretrained(ckpt, device="cpu", batch_size=16)
    cfg = ServeConfig(max_batch=16, batch_timeout_ms=50, max_upload_mb=0.05, max_pixels=4_000_000,
                      checkpoint=str(ckpt), model_facts={"encoder": "tiny-vit"})
    app = create_app(served, cfg)
    with Server(app) as running:
        running.app, running.assessor = app, served
        yield running
