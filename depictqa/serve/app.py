"""The FastAPI application of ``depictqa serve`` (needs the ``serve`` extra): REST endpoints, a health check and a web page.

Uploads are checked before any model work, and a bad one is a 4xx JSON ``{"error", "field"}``
naming the form field; the server keeps serving. An image's pixel count is read from its header
and refused before it is decoded.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from importlib.resources import files
from typing import Any, Hashable, Optional

import anyio.to_thread
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse
from PIL import Image, UnidentifiedImageError

from depictqa.serve.batcher import Arrival, Batcher

STYLES = ("single", "brief", "detail")
ARRIVAL = "depictqa.arrival"  # the ASGI scope key of a request's batcher Arrival
MAX_NEW_TOKENS = {"single": 16, "brief": 64, "detail": 400}


@dataclass
class ServeConfig:
    max_batch: int = 16
    batch_timeout_ms: float = 10.0
    max_upload_mb: float = 20.0  # per file; a request may carry three
    max_pixels: int = 40_000_000  # declared in the header; refused before decoding
    checkpoint: str = ""
    model_facts: dict[str, Any] | None = None  # what /healthz tells about the model (encoder, llm, ...)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


class InputError(Exception):
    """A bad request: answered with ``status`` and ``{"error": message, "field": field}``."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message


def decode_upload(field: str, data: bytes, cfg: ServeConfig) -> Image.Image:
    """Bytes of an uploaded file -> RGB image, or :class:`InputError` naming ``field``."""
    if len(data) > cfg.max_upload_bytes:
        raise InputError(413, field, f"{field}: the file is over the {cfg.max_upload_mb:g} MB upload limit")
    if not data:
        raise InputError(400, field, f"{field}: the file is empty")
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError as err:
        raise InputError(413, field, f"{field}: the image declares too many pixels ({err})") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise InputError(400, field, f"{field}: not an image file (PNG, JPEG, WebP, BMP, TIFF, ...)") from None
    width, height = image.size
    if width * height > cfg.max_pixels:
        raise InputError(413, field, f"{field}: the image declares {width}x{height} pixels, over the limit of "
                                     f"{cfg.max_pixels:,} (refused before decoding)")
    try:
        image.load()
    except Exception as err:  # truncated or corrupt data after a valid header
        raise InputError(400, field, f"{field}: the image data is damaged ({type(err).__name__}: {err})") from None
    return image.convert("RGB")


def decode_uploads(fields: list[tuple[str, Optional[bytes], bool]], cfg: ServeConfig) -> list[Optional[Image.Image]]:
    """(field, bytes or None when not sent, required) of one request -> images, in order; the first
    bad field (missing when required, or failing :func:`decode_upload`) is the error."""
    images: list[Optional[Image.Image]] = []
    for field, data, required in fields:
        if data is None:
            if required:
                raise InputError(400, field, f"missing field {field!r} (a file in the multipart form)")
            images.append(None)
        else:
            images.append(decode_upload(field, data, cfg))
    return images


class _Gate:
    """Pure ASGI middleware (cheaper than ``@app.middleware``, which runs each request in an extra
    task): refuses a body that declares more than three uploads' worth before reading it, and
    announces every ``POST /v1/...`` to the batcher the moment its headers arrive, so a gathered
    batch waits for requests still reading or decoding their uploads (and only then)."""

    def __init__(self, app: Any, cfg: ServeConfig, batcher: Batcher) -> None:
        self.app, self.cfg, self.batcher = app, cfg, batcher

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > 3 * self.cfg.max_upload_bytes + 65536:
            response = JSONResponse({"error": f"the request is over the upload limit ({self.cfg.max_upload_mb:g} MB "
                                              "per file)", "field": "body"}, status_code=413)
            return await response(scope, receive, send)
        if scope["method"] != "POST" or not scope["path"].startswith("/v1/"):
            return await self.app(scope, receive, send)
        arrival = scope[ARRIVAL] = self.batcher.arrival()
        try:
            await self.app(scope, receive, send)
        finally:
            arrival.done()  # a request that ended before submitting (bad input, disconnect) is not awaited


def run_batch(assessor: Any, key: Hashable, payloads: list[tuple]) -> list[Any]:
    """One Assessor call for requests that share ``key`` = (operation, options...)."""
    op = key[0]
    if op == "assess":
        _, style, question = key
        return assessor.assess([p[0] for p in payloads], [p[1] for p in payloads], style=style, query=question,
                               max_new_tokens=MAX_NEW_TOKENS[style])
    if op == "compare":
        _, style, question = key
        return assessor.compare([p[0] for p in payloads], [p[1] for p in payloads], [p[2] for p in payloads],
                                style=style, query=question, max_new_tokens=MAX_NEW_TOKENS[style])
    if op == "prefer":
        _, both_orders = key
        return assessor.prefer([p[0] for p in payloads], [p[1] for p in payloads], [p[2] for p in payloads],
                               both_orders=both_orders)
    if op == "score":
        return assessor.score([p[0] for p in payloads], [p[1] for p in payloads])
    raise ValueError(f"unknown operation {op!r}")


def create_app(assessor: Any, cfg: ServeConfig | None = None) -> FastAPI:
    """The FastAPI app over ``assessor`` (see docs/serving.md for the endpoints)."""
    cfg = cfg or ServeConfig()
    # the calls of one gathered batch share image features: a comparison and its P(A better) ask
    # about the same images, which the encoder then runs once
    batcher = Batcher(lambda key, payloads: run_batch(assessor, key, payloads), cfg.max_batch, cfg.batch_timeout_ms,
                      scope=getattr(assessor, "sharing_image_features", None))
    app = FastAPI(title="depictqa", description="Descriptive image quality assessment: assess, compare, score.")
    app.state.batcher = batcher
    app.add_middleware(_Gate, cfg=cfg, batcher=batcher)

    @app.exception_handler(InputError)
    async def _input_error(request: Request, err: InputError) -> JSONResponse:
        arrival(request).done()  # nothing will be submitted: the batcher need not wait for it
        return JSONResponse({"error": err.message, "field": err.field}, status_code=err.status)

    def arrival(request: Request) -> Arrival:
        return request.scope.get(ARRIVAL) or batcher.arrival()  # (an app mounted without _Gate: a fresh one)

    async def images_of(*uploads: tuple[str, Optional[UploadFile], bool]) -> list[Optional[Image.Image]]:
        """(field, upload, required) -> images; read here, decoded all together in ONE worker thread
        hop (CPU work: the loop keeps parsing other requests, and PNG/JPEG decoding, which releases
        the GIL, overlaps the batched model call)."""
        fields = [(field, None if upload is None else await upload.read(cfg.max_upload_bytes + 1), required)
                  for field, upload, required in uploads]
        return await anyio.to_thread.run_sync(decode_uploads, fields, cfg)

    def check_style(style: Optional[str]) -> str:
        style = style or "brief"
        if style not in STYLES:
            raise InputError(400, "style", f"style {style!r} is not one of {', '.join(STYLES)}")
        return style

    def failed(result: Any) -> None:
        if getattr(result, "error", None):
            raise InputError(422, "image", f"the model could not answer: {result.error}")

    @app.post("/v1/assess")
    async def assess(request: Request, image: Optional[UploadFile] = File(None),
                     reference: Optional[UploadFile] = File(None), question: Optional[str] = Form(None),
                     style: Optional[str] = Form(None)) -> dict[str, Any]:
        """What is wrong with ``image`` (and how badly), with or without a pristine ``reference``."""
        style = check_style(style)
        img, ref = await images_of(("image", image, True), ("reference", reference, False))
        answer = await batcher.submit(("assess", style, question or None), (img, ref), arrival(request))
        failed(answer)
        out: dict[str, Any] = {"text": answer.text, "confidence": answer.confidence, "style": style}
        if style == "single":
            from depictqa.eval.parsing import parse_labels

            out["labels"] = sorted(parse_labels(answer.text or ""))
        return out

    @app.post("/v1/compare")
    async def compare(request: Request, image_a: Optional[UploadFile] = File(None),
                      image_b: Optional[UploadFile] = File(None), reference: Optional[UploadFile] = File(None),
                      question: Optional[str] = Form(None), style: Optional[str] = Form(None),
                      both_orders: bool = Form(False)) -> dict[str, Any]:
        """Which of ``image_a`` / ``image_b`` is better, why (style), and P(A better)."""
        style = check_style(style)
        a, b, ref = await images_of(("image_a", image_a, True), ("image_b", image_b, True),
                                    ("reference", reference, False))
        # both queued together, so they share a gathered batch (and its image features)
        answer, pref = await batcher.submit_many([(("compare", style, question or None), (a, b, ref)),
                                                  (("prefer", bool(both_orders)), (a, b, ref))], arrival(request))
        failed(answer)
        failed(pref)
        p_a = pref.p_a_debiased if both_orders and pref.p_a_debiased is not None else pref.p_a
        return {"text": answer.text, "confidence": answer.confidence, "style": style,
                "choice": "A" if p_a >= 0.5 else "B", "p_a_better": p_a}

    @app.post("/v1/score")
    async def score(request: Request, image: Optional[UploadFile] = File(None),
                    reference: Optional[UploadFile] = File(None)) -> dict[str, Any]:
        """A 1-5 quality score (expected rating level), with or without a reference."""
        img, ref = await images_of(("image", image, True), ("reference", reference, False))
        result = await batcher.submit(("score",), (img, ref), arrival(request))
        failed(result)
        return {"score": result.score, "probabilities": result.probabilities}

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        facts = {"status": "ok", "checkpoint": cfg.checkpoint, "device": str(assessor.device),
                 "max_batch": cfg.max_batch, "batch_timeout_ms": cfg.batch_timeout_ms,
                 "batches": {"calls": batcher.stats.calls, "requests": batcher.stats.requests,
                             "largest": batcher.stats.largest, "gathered": batcher.stats.gathers,
                             "waited": batcher.stats.waited}}
        return {**facts, **(cfg.model_facts or {})}

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return (files("depictqa.serve") / "page.html").read_text()

    return app
