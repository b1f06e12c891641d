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


def measure(shards: list[str], workers: int, crop: bool, uint8: bool = True) -> float:
    # uint8=True is what DepictQADataModule does (the model normalises on its device).
    cfg = ImageConfig(crop=(0.7, 1.0) if crop else None, uint8=uint8)
    stream = MixedSampleStream([SourceSpec("fr", shards)], cfg, patch_size=14, train=crop)
    loader = DataLoader(stream, batch_size=None, num_workers=workers)
    start, count = None, 0
    for i, sample in enumerate(loader):
        if i == 10:  # worker start-up is not throughput
            start, count = time.perf_counter(), 0
        count += 1
        assert sample.images["ref"].shape[1] % 14 == 0
    return count / (time.perf_counter() - start)


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
        for uint8 in (True, False):
            for crop in (False, True):
                for workers in (0, 1, 2):
                    rate = measure(shards, workers, crop, uint8)
                    results.append({"output": "uint8" if uint8 else "float (normalised in the worker)",
                                    "workers": workers, "train_crop": crop, "samples_per_s": round(rate, 1),
                                    "images_per_s": round(3 * rate, 1)})
                    print(results[-1], flush=True)
    record = {
        "benchmark": "FR compare samples (3 x 512x384 JPEG q90 -> 224 short side, patch 14): "
                     "tar read + decode_entry + load_image + prepare_images via MixedSampleStream; "
                     "output uint8 as DepictQADataModule configures it (float rows: the old path)",
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
