"""Training throughput at DepictQA-7B shape: a plain transformers+PEFT loop vs depictqa's step.

Model (random weights, built from configs, nothing downloaded): CLIP ViT-L/14 (hidden 1024, 24
layers, 16 heads, patch 14, frozen, bf16) -> linear projector -> LLaMA-7B (hidden 4096, 32 layers,
32 heads, intermediate 11008, vocab 32000, bf16) with LoRA r16 on q,k,v,o. ``--tiny``: the same
code path at toy size on CPU (fp32).

Workloads: (a) ``fixed``: three 224 px images + 128 text tokens (96 prompt, 32 answer) per sample;
(b) ``mix``: a DQ-495K-like length mix (brief single-image, brief FR comparisons, detailed
three-image reasoning, captions; native resolution, short side 224, long side <= 672).

Loops, in one process on the same weights (AdamW on what trains, optimiser step included):
- ``hf_bs1_gc``: the plain loop: padded batch of 1, gradient checkpointing, the HF causal-LM loss
  (vocabulary logits at every position).
- ``hf_padded_bsB``: the same without checkpointing at the best padded batch size that fits.
- ``depictqa_packed[_varlen]``: ``DepictQAModel.forward``: samples packed into one row to a token
  budget, logits at answer positions only, frozen encoder under no_grad; ``_varlen`` uses the
  ``depictqa_varlen`` attention (torch's varlen flash kernel on CUDA bf16).

FLOPs (MFU = FLOPs/s / peak bf16 dense): 4 * N_llm * T + 2 * N_enc * P per step, where N_llm = LLM
parameters except the input embedding (decoder + LM head), T = real (non-padding) tokens, N_enc =
encoder parameters, P = patch tokens (+CLS) over all images. A frozen-base LoRA step costs a 2N
forward and a 2N input-gradient backward (no 2N weight-gradient pass; LoRA's own work is ~0.1%);
the frozen encoder runs forward only. Attention's quadratic term is left out. The same useful
work is credited to every loop, so padding and full-vocabulary logits count as waste.

Run: ``python benchmarks/train_throughput.py --tiny`` (CPU, ~1 min) or on a GPU
``python benchmarks/train_throughput.py`` (``--smoke`` for a 2-step sanity run). Writes
``benchmarks/results/train_throughput_<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from pathlib import Path

import torch

from depictqa.data.collate import Item, budget_batches, collate
from depictqa.data.images import ImageConfig, image_token_grid
from depictqa.prompts import IGNORE, Encoded

PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16 tensor-core FLOP/s
SHAPES = {
    "7b": dict(clip=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                         patch_size=14, image_size=224),
               llm=dict(model_type="llama", hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                        num_attention_heads=32, num_key_value_heads=32, vocab_size=32000,
                        max_position_embeddings=8192),
               image=ImageConfig(), fixed_side=224, budget=8192, dtype="bfloat16"),
    "tiny": dict(clip=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           patch_size=8, image_size=32),
                 llm=dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=4, vocab_size=512, max_position_embeddings=2048),
                 image=ImageConfig(short_side=32, max_long_side=96, min_size=16), fixed_side=32, budget=1024,
                 dtype="float32"),
}
# (kind, images, prompt tokens, answer tokens range, weight): brief dominates, detail is scarce
MIX = [("brief_nr", 1, 60, (8, 40), 4), ("brief_fr_compare", 3, 80, (8, 40), 3),
       ("detail_fr", 3, 100, (150, 320), 1), ("caption", 1, 40, (30, 80), 1)]
PHOTO_SHAPES = [(384, 512), (512, 384), (333, 500), (500, 333), (768, 1024), (1080, 1920), (224, 224), (600, 800)]


def build(shape: dict, attn: str = "sdpa"):
    """DepictQAModel at this shape (random weights) via the library's own recipe path."""
    import depictqa.attention  # noqa: F401  registers depictqa_varlen
    from depictqa.build import build_model
    from depictqa.config import load_recipe

    dt = shape["dtype"]
    llm = json.dumps(shape["llm"])
    recipe = load_recipe(overrides=[
        "model.template=compact", f"model.encoder={{name: clip, train: frozen, dtype: {dt}, config: {json.dumps(shape['clip'])}}}",
        "model.projector={name: linear, train: full}",
        f"model.llm={{name: hf, train: lora, dtype: {dt}, attn_implementation: {attn}, config: {llm}, "
        "tokenizer: {train: {vocab_size: 300}}, lora: {r: 16, alpha: 16, dropout: 0.0}}",
        f"model.encoder_dtype={dt}"])
    texts = ["What distortion does the image have?", "Image A is sharper than Image B.", "A cat on a mat."] * 20
    return build_model(recipe, texts=texts)


def make_item(model, rng: random.Random, n_images: int, prompt: int, answer: int, hw: tuple[int, int]) -> Item:
    """Token layout: prompt text split around the images, then the answer (labelled)."""
    h, w = hw
    slots = model.image_tokens(h, w)
    vocab = len(model.tokenizer)
    pieces = [torch.randint(5, vocab, (prompt // (n_images + 1),)) for _ in range(n_images + 1)]
    ids, img = [pieces[0]], [torch.zeros(len(pieces[0]), dtype=torch.bool)]
    for p in pieces[1:]:
        ids += [torch.zeros(slots, dtype=torch.long), p]
        img += [torch.ones(slots, dtype=torch.bool), torch.zeros(len(p), dtype=torch.bool)]
    ans = torch.randint(5, vocab, (answer,))
    input_ids = torch.cat([*ids, ans])
    labels = torch.cat([torch.full((len(input_ids) - answer,), IGNORE), ans])
    pixels = [torch.randn(3, h, w) for _ in range(n_images)]
    return Item(Encoded(input_ids, torch.cat([*img, torch.zeros(answer, dtype=torch.bool)]), labels), pixels)


def workload(model, shape: dict, name: str, n: int, seed: int = 0) -> list[Item]:
    rng = random.Random(seed)
    torch.manual_seed(seed)
    if name == "fixed":
        side = shape["fixed_side"]
        return [make_item(model, rng, 3, 96, 32, (side, side)) for _ in range(n)]
    items = []
    for _ in range(n):
        _, k, prompt, (lo, hi), _ = rng.choices(MIX, weights=[m[-1] for m in MIX])[0]
        rows, cols = image_token_grid(*rng.choice(PHOTO_SHAPES), shape["image"], model.patch_size)
        hw = (rows * model.patch_size, cols * model.patch_size)
        items.append(make_item(model, rng, k, prompt, rng.randint(lo, hi), hw))
    return items


def hf_step(model, batch):
    """The plain loop: HF causal-LM loss over full-vocabulary logits (PEFT model forward)."""
    embeds = model.embed(batch)
    return model.llm.model(inputs_embeds=embeds, attention_mask=batch.attention_mask, labels=batch.labels,
                           use_cache=False).loss


def flops(model, items: list[Item]) -> float:
    n_llm = sum(p.numel() for n, p in model.llm.named_parameters() if "embed_tokens" not in n)
    n_enc = sum(p.numel() for p in model.encoder.parameters())
    tokens = sum(len(it) for it in items)
    patches = sum((p.shape[-2] // model.patch_size) * (p.shape[-1] // model.patch_size) + 1
                  for it in items for p in it.pixels)
    return 4.0 * n_llm * tokens + 2.0 * n_enc * patches


def measure(model, batches: list[list[Item]], step_kind: str, device, steps: int, warmup: int) -> dict:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    pad = model.tokenizer.pad_token_id or 0
    prepared = [collate(b, pad_id=pad, packed=(step_kind == "packed")).to(device) for b in batches]
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model.train()
    done, samples, tokens, work = 0, 0, 0, 0.0
    t0 = None
    for i in range(warmup + steps):
        batch, items = prepared[i % len(prepared)], batches[i % len(batches)]
        if i == warmup:
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        loss = model(batch).loss if step_kind == "packed" else hf_step(model, batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= warmup:
            done += 1
            samples += len(items)
            tokens += sum(len(it) for it in items)
            work += flops(model, items)
    if cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    if not torch.isfinite(loss):
        raise RuntimeError(f"{step_kind}: loss is {loss.item()}")
    out = {"steps": done, "seconds": round(dt, 3), "samples_per_s": round(samples / dt, 3),
           "tokens_per_s": round(tokens / dt, 1), "model_tflops_per_s": round(work / dt / 1e12, 4),
           "padding_fraction": round(sum(float(b.padding_fraction) for b in prepared) / len(prepared), 4),
           "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None}
    peak = next((v for k, v in PEAK_BF16.items() if cuda and k in torch.cuda.get_device_name()), None)
    out["mfu"] = round(work / dt / peak, 4) if peak else None
    return out


def run_loops(model, items: list[Item], shape: dict, device, steps: int, warmup: int, max_bs: int) -> dict:
    results = {}
    gc = model.llm.model
    gc.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    gc.enable_input_require_grads() if hasattr(gc, "enable_input_require_grads") else None
    results["hf_bs1_gc"] = measure(model, [[it] for it in items], "padded", device, steps, warmup)
    gc.gradient_checkpointing_disable()
    best = None
    bs = 2
    while bs <= max_bs:
        groups = [items[i:i + bs] for i in range(0, len(items) - bs + 1, bs)]
        try:
            r = measure(model, groups, "padded", device, steps, warmup)
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            results[f"hf_padded_bs{bs}"] = "out of memory"
            break
        results[f"hf_padded_bs{bs}"] = r
        if best is None or r["samples_per_s"] > results[best]["samples_per_s"]:
            best = f"hf_padded_bs{bs}"
        bs *= 2
    results["hf_padded_best"] = best
    packed = list(budget_batches(items, shape["budget"]))
    results["depictqa_packed"] = measure(model, packed, "packed", device, steps, warmup)
    results["depictqa_packed"]["samples_per_batch"] = round(len(items) / len(packed), 2)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="toy shape on CPU (no GPU needed)")
    ap.add_argument("--smoke", action="store_true", help="2 timed steps per loop on a GPU: a sanity run")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    shape = SHAPES["tiny" if args.tiny else "7b"]
    device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    if not args.tiny and device.type != "cuda":
        raise SystemExit("the 7B benchmark needs a CUDA GPU; use --tiny on CPU")
    steps = args.steps or (2 if args.smoke else (10 if args.tiny else 20))
    warmup = 1 if args.smoke else 3
    torch.manual_seed(0)
    report = {"device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
              "torch": torch.__version__, "shape": "tiny" if args.tiny else "depictqa-7b", "steps": steps,
              "flops": "4*N_llm*tokens + 2*N_enc*patches (frozen-base LoRA step; see the module docstring)",
              "results": {}}
    for attn in ("sdpa", "depictqa_varlen"):
        with device:  # random init on the device: a 7B init on the host takes minutes
            model = build(shape, attn)
        model.to(device)
        report["params"] = {k: {"total": t, "trainable": tr} for k, (t, tr) in model.parameter_counts().items()}
        for name in ("fixed", "mix"):
            n = 4 * (steps + warmup) if not args.smoke else 16
            items = workload(model, shape, name, n)
            if attn == "sdpa":
                report["results"][name] = run_loops(model, items, shape, device, steps, warmup,
                                                    max_bs=4 if args.smoke else 16)
            else:
                packed = list(budget_batches(items, shape["budget"]))
                report["results"][name]["depictqa_packed_varlen"] = measure(model, packed, "packed", device, steps,
                                                                            warmup)
            print(name, attn, json.dumps(report["results"][name], indent=1), flush=True)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    tag = "cpu_tiny" if args.tiny else report["device"].lower().replace(" ", "_") + ("_smoke" if args.smoke else "")
    out = Path(args.out or Path(__file__).parent / "results" / f"train_throughput_{tag}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
