"""The FastAPI application of ``depictqa serve`` (needs the ``serve`` extra): REST endpoints, a health check and a web page.

Uploads are checked before any model work, and a bad one is a 4xx JSON ``{"error", "field"}``
naming the form field; the server keeps serving. An image's pixel count is read from its header
and refused before it is decoded.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from importlib.resources import files
from typing import Any, Hashable, Optional

import anyio.to_thread
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse
from PIL import Image, UnidentifiedImageError

from depictqa.serve.batcher import Batcher

STYLES = ("single", "brief", "detail")
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

    @app.exception_handler(InputError)
    async def _input_error(request: Request, err: InputError) -> JSONResponse:
        return JSONResponse({"error": err.message, "field": err.field}, status_code=err.status)

    @app.middleware("http")
    async def _limit_body(request: Request, call_next: Any) -> Any:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > 3 * cfg.max_upload_bytes + 65536:
            return JSONResponse({"error": f"the request is over the upload limit ({cfg.max_upload_mb:g} MB per file)",
                                 "field": "body"}, status_code=413)
        return await call_next(request)

    async def image_of(field: str, upload: Optional[UploadFile], required: bool) -> Optional[Image.Image]:
        if upload is None:
            if required:
                raise InputError(400, field, f"missing field {field!r} (a file in the multipart form)")
            return None
        data = await upload.read(cfg.max_upload_bytes + 1)
        # decoding is CPU work: in a worker thread, so the loop keeps parsing other requests and
        # PNG/JPEG decoding (which releases the GIL) overlaps the batched model call
        return await anyio.to_thread.run_sync(decode_upload, field, data, cfg)

    def check_style(style: Optional[str]) -> str:
        style = style or "brief"
        if style not in STYLES:
            raise InputError(400, "style", f"style {style!r} is not one of {', '.join(STYLES)}")
        return style

    def failed(result: Any) -> None:
        if getattr(result, "error", None):
            raise InputError(422, "image", f"the model could not answer: {result.error}")

    @app.post("/v1/assess")
    async def assess(image: Optional[UploadFile] = File(None), reference: Optional[UploadFile] = File(None),
                     question: Optional[str] = Form(None), style: Optional[str] = Form(None)) -> dict[str, Any]:
        """What is wrong with ``image`` (and how badly), with or without a pristine ``reference``."""
        style = check_style(style)
        img, ref = await image_of("image", image, True), await image_of("reference", reference, False)
        answer = await batcher.submit(("assess", style, question or None), (img, ref))
        failed(answer)
        out: dict[str, Any] = {"text": answer.text, "confidence": answer.confidence, "style": style}
        if style == "single":
            from depictqa.eval.parsing import parse_labels

            out["labels"] = sorted(parse_labels(answer.text or ""))
        return out

    @app.post("/v1/compare")
    async def compare(image_a: Optional[UploadFile] = File(None), image_b: Optional[UploadFile] = File(None),
                      reference: Optional[UploadFile] = File(None), question: Optional[str] = Form(None),
                      style: Optional[str] = Form(None), both_orders: bool = Form(False)) -> dict[str, Any]:
        """Which of ``image_a`` / ``image_b`` is better, why (style), and P(A better)."""
        style = check_style(style)
        a, b = await image_of("image_a", image_a, True), await image_of("image_b", image_b, True)
        ref = await image_of("reference", reference, False)
        # both go into the same batching window: the answer and P(A better) do not wait on each other
        answer, pref = await asyncio.gather(batcher.submit(("compare", style, question or None), (a, b, ref)),
                                            batcher.submit(("prefer", bool(both_orders)), (a, b, ref)))
        failed(answer)
        failed(pref)
        p_a = pref.p_a_debiased if both_orders and pref.p_a_debiased is not None else pref.p_a
        return {"text": answer.text, "confidence": answer.confidence, "style": style,
                "choice": "A" if p_a >= 0.5 else "B", "p_a_better": p_a}

    @app.post("/v1/score")
    async def score(image: Optional[UploadFile] = File(None), reference: Optional[UploadFile] = File(None)) -> dict[str, Any]:
        """A 1-5 quality score (expected rating level), with or without a reference."""
        img, ref = await image_of("image", image, True), await image_of("reference", reference, False)
        result = await batcher.submit(("score",), (img, ref))
        failed(result)
        return {"score": result.score, "probabilities": result.probabilities}

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        facts = {"status": "ok", "checkpoint": cfg.checkpoint, "device": str(assessor.device),
                 "max_batch": cfg.max_batch, "batch_timeout_ms": cfg.batch_timeout_ms,
                 "batches": {"calls": batcher.stats.calls, "requests": batcher.stats.requests,
                             "largest": batcher.stats.largest}}
        return {**facts, **(cfg.model_facts or {})}

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return (files("depictqa.serve") / "page.html").read_text()

    return app
