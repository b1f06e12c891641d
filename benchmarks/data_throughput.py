"""Decode + prepare throughput of full-reference compare samples through MixedSampleStream.

Each sample holds three 512x384 JPEGs (ref, a, b) prepared to a 224 short side with patch 14,
read through a torch DataLoader with 0, 1 and 2 workers. Writes
``benchmarks/results/data_throughput_cpu.json``. Run: ``python benchmarks/data_throughput.py``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from depictqa.data.images import ImageConfig
from depictqa.data.mixer import MixedSampleStream, SourceSpec
from depictqa.data.schema import Sample
from depictqa.data.shards import write_shards


def jpeg(seed: int) -> bytes:
    """A 512x384 photo-like JPEG (smooth gradients plus noise, so it compresses like a photo)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:384, 0:512].astype(np.float32)
    base = np.stack([x / 2, y / 1.5, (x + y) / 3.5], axis=-1) + rng.normal(0, 12, (384, 512, 3))
    buf = io.BytesIO()
    Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def build(out: Path, n: int) -> list[str]:
    pool = [jpeg(i) for i in range(12)]
    conv = [{"from": "human", "value": "Which image is better?"}, {"from": "gpt", "value": "Image A."}]
    samples = (Sample(key=f"s{i:06d}", task="compare", reference=True, conversations=conv,
                      images={"ref": pool[i % 12], "a": pool[(i + 1) % 12], "b": pool[(i + 2) % 12]})
               for i in range(n))
    return write_shards(samples, out, prefix="bench", samples_per_shard=100)


def tiny_model():
    """A small random model with patch 14: what sample_to_item needs (tokenizer, image token counts)."""
    from depictqa.build import build_model
    from depictqa.config import load_recipe

    recipe = load_recipe(overrides=[
        "model.template=compact",
        "model.encoder={name: tiny-vit, train: full, patch_size: 14, embed_dim: 32, depth: 1, num_heads: 2, grid: 4}",
        "model.projector={name: mlp, train: full}",
        "model.llm={name: hf, train: full, config: {model_type: llama, hidden_size: 32, intermediate_size: 64, "
        "num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 2}, tokenizer: {train: {vocab_size: 300}}}"])
    return build_model(recipe, texts=["Which image is better?", "Image A."] * 20)


def measure(shards: list[str], workers: int, crop: bool, uint8: bool = True, model=None) -> float:
    """Samples/s through the DataLoader. ``model``: also tokenise and collate batches of 16 in the
    workers, exactly as DepictQADataModule's training stream does."""
    from depictqa.data.datamodule import BatchedStream, sample_to_item

    # uint8=True is what DepictQADataModule does (the model normalises on its device).
    cfg = ImageConfig(crop=(0.7, 1.0) if crop else None, uint8=uint8)
    transform = (lambda sample: sample_to_item(model, sample)) if model is not None else None
    stream = MixedSampleStream([SourceSpec("fr", shards)], cfg, patch_size=14, train=crop, transform=transform)
    if model is not None:
        stream = BatchedStream(stream, pad_id=0, batch_size=16, max_tokens=None, packed=False)
    loader = DataLoader(stream, batch_size=None, num_workers=workers)
    start, count, warm = None, 0, 10 if model is None else 2  # worker start-up is not throughput
    for i, item in enumerate(loader):
        if i == warm:
            start, count = time.perf_counter(), 0
        count += item.num_samples if model is not None else 1
    return count / (time.perf_counter() - start)


MODES = {"batched": "uint8, tokenised and collated (batches of 16) in the workers: the training stream",
         "samples": "uint8 samples, one at a time",
         "samples-float": "float samples normalised in the worker (the path before uint8 output)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1200)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "data_throughput_cpu.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core per loader process, as in training
    results = []
    load_before = os.getloadavg()[0]  # the machine is shared: record how busy it was
    with tempfile.TemporaryDirectory() as tmp:
        shards = build(Path(tmp), args.samples)
        model = tiny_model()
        for mode in ("batched", "samples", "samples-float"):
            for crop in (False, True):
                for workers in (0, 1, 2):
                    rate = measure(shards, workers, crop, uint8=mode != "samples-float",
                                   model=model if mode == "batched" else None)
                    results.append({"mode": MODES[mode], "workers": workers, "train_crop": crop,
                                    "samples_per_s": round(rate, 1), "images_per_s": round(3 * rate, 1)})
                    print(results[-1], flush=True)
    record = {
        "benchmark": "FR compare samples (3 x 512x384 JPEG q90 -> 224 short side, patch 14): "
                     "tar read + decode_entry + load_image + prepare_images via MixedSampleStream "
                     "(+ tokenise + collate via BatchedStream in 'batched' mode, as DepictQADataModule does)",
        "hardware": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                     "platform": platform.platform(), "python": platform.python_version(),
                     "torch": torch.__version__, "pillow": Image.__version__},
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "samples": args.samples, "target_per_worker_core": 150, "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
