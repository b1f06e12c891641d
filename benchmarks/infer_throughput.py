"""Inference throughput: batched Assessor vs a plain batch-size-1 loop over the same model.

Measures, in one run on one model with random weights:

- ``prefer``: full-reference pairs/s (three images per pair, one forward pass each);
- ``score``: images/s (one forward pass each);
- ``compare(style="detail")``: generated tokens/s (``min_new_tokens = max_new_tokens`` so random
  weights cannot stop early and both paths generate the same number of tokens).

Images are random arrays of mixed photo shapes, decoded and prepared inside the timed region for
both paths (what a user pays). ``--shape tiny``: ``recipes/tiny.yaml``'s model on CPU.
``--shape 7b``: CLIP ViT-L/14 + a LLaMA-7B-shaped LM (random weights, bf16) on a GPU.

    python benchmarks/infer_throughput.py --out benchmarks/results/infer_throughput_cpu.json
    python benchmarks/infer_throughput.py --shape 7b --device cuda --out benchmarks/results/infer_throughput_h100.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["Which image is better? Answer the question using a single word or phrase.", "Image A", "Image B",
         "The quality of the image is good.", "excellent good fair poor bad", "Noise", "Blur and noise",
         "Image A is better than Image B because it has less noise and sharper edges."] * 8
SEVEN_B = [
    "model.template=depictqa-vicuna", "model.encoder_dtype=bfloat16",
    "model.encoder={name: clip, train: frozen, dtype: bfloat16, config: {hidden_size: 1024, intermediate_size: 4096,"
    " num_hidden_layers: 24, num_attention_heads: 16, patch_size: 14, image_size: 224}}",
    "model.projector={name: linear, train: full}",
    "model.llm={name: hf, train: frozen, dtype: bfloat16, config: {model_type: llama, hidden_size: 4096, "
    "intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 32, "
    "max_position_embeddings: 4096, vocab_size: 32000}, tokenizer: {train: {vocab_size: 1024}}}",
    "data.image={short_side: 224, max_long_side: 672, min_size: 70}",
]
SHAPES = [(480, 640), (640, 480), (512, 512), (384, 683), (600, 800), (720, 1280)]


def build(shape: str, device: str) -> tuple[Any, Any]:
    from depictqa.build import build_model
    from depictqa.config import load_recipe

    torch.manual_seed(0)
    if shape == "tiny":
        recipe = load_recipe(ROOT / "recipes" / "tiny.yaml", check_local=False)  # builds only: no shards
        return build_model(recipe, texts=TEXTS).eval().to(device), recipe
    recipe = load_recipe(ROOT / "recipes" / "base.yaml", overrides=SEVEN_B)
    with torch.device(device):  # random init on the device: a 7B init on the host takes minutes
        model = build_model(recipe, texts=TEXTS)
    model = model.eval().to(device, torch.bfloat16)
    return model, recipe


def once(fn: Callable[[], Any]) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def timed_pair(first: Callable[[], Any], second: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Best-of-``repeats`` seconds of each, interleaved so machine load drifts hit both alike."""
    first(), second()  # warm-up: allocator, kernels, cached prompt heads
    a, b = [], []
    for _ in range(repeats):
        a.append(once(first))
        b.append(once(second))
    return min(a), min(b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=("tiny", "7b"), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--pairs", type=int, default=32, help="pairs / images per measurement")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many interleaved runs")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    from depictqa.infer.assessor import Assessor, image_config

    model, recipe = build(args.shape, args.device)
    cfg = image_config(model, recipe)
    batched = Assessor(model, cfg, batch_size=args.batch_size, device=args.device)
    single = Assessor(model, cfg, batch_size=1, device=args.device)
    rng = np.random.default_rng(0)
    shapes = [SHAPES[i % len(SHAPES)] for i in range(args.pairs)]
    # FR triplets share a size (distorted copies of their reference); sizes vary across pairs
    refs, a, b = ([rng.integers(0, 256, (*s, 3), dtype=np.uint8) for s in shapes] for _ in range(3))
    n, gen_n = args.pairs, max(2, args.pairs // 4)
    gen = {"style": "detail", "max_new_tokens": args.new_tokens, "min_new_tokens": args.new_tokens}

    results: dict[str, Any] = {}
    cases = {
        "prefer_fr_pairs_per_s": (n, lambda: batched.prefer(a, b, reference=refs),
                                  lambda: [single.prefer(x, y, reference=r) for x, y, r in zip(a, b, refs)]),
        "score_images_per_s": (n, lambda: batched.score(a), lambda: [single.score(x) for x in a]),
        "compare_detail_tokens_per_s": (gen_n * args.new_tokens,
                                        lambda: batched.compare(a[:gen_n], b[:gen_n], reference=refs[:gen_n], **gen),
                                        lambda: [single.compare(x, y, reference=r, **gen)
                                                 for x, y, r in zip(a[:gen_n], b[:gen_n], refs[:gen_n])]),
    }
    for name, (units, run_batched, run_loop) in cases.items():
        t_batch, t_loop = timed_pair(run_batched, run_loop, args.repeats)
        results[name] = {"batched": round(units / t_batch, 2), "batch_size_1_loop": round(units / t_loop, 2),
                         "speedup": round(t_loop / t_batch, 2)}
        print(name, results[name], flush=True)

    report = {"benchmark": "Assessor batched vs batch-size-1 loop (same model, same run)", "shape": args.shape,
              "device": args.device, "batch_size": args.batch_size, "pairs": n, "generated_answers": gen_n,
              "new_tokens": args.new_tokens, "timing": f"best of {args.repeats} interleaved runs", "image_shapes": SHAPES, "results": results,
              "hardware": {"machine": platform.machine(), "platform": platform.platform(),
                           "processor": platform.processor() or "unknown", "torch_threads": torch.get_num_threads(),
                           "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
              "torch": torch.__version__}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
