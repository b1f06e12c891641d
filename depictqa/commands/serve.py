"""``depictqa serve``: a REST API and a web page over a checkpoint, in one process."""

from __future__ import annotations

import argparse
import sys

from depictqa.commands.common import fail

HELP = "Serve a checkpoint over HTTP: REST endpoints (assess, compare, score) and a web page."
EXAMPLES = """  depictqa serve --ckpt demo_out/run/checkpoints/last                 # http://127.0.0.1:8000/
  depictqa serve --ckpt ckpt/wild --device cuda --max-batch 32 --port 9000
  depictqa serve --ckpt ckpt/wild --host 0.0.0.0          # reachable from other machines: your choice
  depictqa serve --ckpt demo_out/run/checkpoints/last --torch-threads 1   # a small CPU model on a small machine
  curl -F image=@photo.png -F style=brief http://127.0.0.1:8000/v1/assess"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, metavar="DIR", help="checkpoint folder (or hub id) to serve")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    parser.add_argument("--max-batch", type=int, default=16, metavar="N",
                        help="most requests answered in one model call (default: 16; 1 turns batching off)")
    parser.add_argument("--batch-timeout-ms", type=float, default=10.0, metavar="MS",
                        help="how long the first request of a batch waits for others (default: 10)")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:1, ...")
    parser.add_argument("--max-upload-mb", type=float, default=20.0, metavar="MB",
                        help="largest accepted file (default: 20); larger uploads get 413")
    parser.add_argument("--max-pixels", type=int, default=40_000_000, metavar="N",
                        help="largest image (width x height, read from its header before decoding)")
    parser.add_argument("--torch-threads", type=int, default=None, metavar="N",
                        help="CPU threads torch uses for the model (default: torch's own choice). On a few cores "
                             "with a small model, 1 leaves the rest to the server's request handling")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow a checkpoint whose recipe runs code shipped with its model folder")


def run(args: argparse.Namespace) -> int:
    if args.max_batch < 1 or args.batch_timeout_ms < 0 or args.max_upload_mb <= 0:
        return fail("--max-batch must be >= 1, --batch-timeout-ms >= 0 and --max-upload-mb > 0")
    if args.torch_threads is not None and args.torch_threads < 1:
        return fail(f"--torch-threads must be >= 1, got {args.torch_threads}")
    try:
        import uvicorn
    except ImportError:
        return fail("depictqa serve needs the serve extra: pip install 'depictqa[serve]'")
    import torch

    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)
    from depictqa.checkpoint import CheckpointError, recipe_of
    from depictqa.infer.assessor import Assessor
    from depictqa.serve import ServeConfig, create_app

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    try:
        assessor = Assessor.from_pretrained(args.ckpt, device=device, batch_size=args.max_batch,
                                            trust_remote_code=args.trust_remote_code)
        recipe = recipe_of(args.ckpt)
    except CheckpointError as err:
        return fail(str(err))
    facts = {part: str(recipe.model[part].get("name")) for part in ("encoder", "projector", "llm")}
    facts["torch_threads"] = torch.get_num_threads()
    cfg = ServeConfig(max_batch=args.max_batch, batch_timeout_ms=args.batch_timeout_ms,
                      max_upload_mb=args.max_upload_mb, max_pixels=args.max_pixels, checkpoint=str(args.ckpt),
                      model_facts=facts)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"depictqa serve: listening on {args.host}: reachable from other machines", file=sys.stderr)
    uvicorn.run(create_app(assessor, cfg), host=args.host, port=args.port, log_level="info")
    return 0
