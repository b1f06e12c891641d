"""GPU paths: run on the GPU machine (``pytest -m gpu tests/gpu``); skipped without CUDA."""

import subprocess
import sys

import pytest
import torch

from depictqa.data.collate import collate
from tests.conftest import ROOT, TEXTS, mixed_items, tiny_recipe

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def _model(*extra):
    from depictqa.build import build_model

    torch.manual_seed(0)
    return build_model(tiny_recipe(*extra), texts=TEXTS)


def test_varlen_kernel_equals_per_sequence_attention_bf16():
    import depictqa.attention as attention

    lengths = [37, 5, 120, 64]
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(sum(lengths), 8, 64, device="cuda", dtype=torch.bfloat16, generator=g) for _ in range(3))
    pos = torch.cat([torch.arange(n) for n in lengths])[None].cuda()
    cu, longest = attention.cu_seqlens_from_position_ids(pos)
    fast = attention.packed_attention(q, k, v, cu, longest)
    slow = attention.packed_attention(q.float(), k.float(), v.float(), cu.cpu(), longest)  # fp32 fallback
    torch.testing.assert_close(fast.float(), slow, rtol=2e-2, atol=2e-2)


def test_fsdp_single_gpu_step_matches_single_device_loss(tmp_path):
    import lightning as L

    from depictqa.strategies import make_strategy
    from depictqa.task import DepictQATask

    batch = None
    losses = {}
    for strategy in ("auto", "fsdp"):
        recipe = tiny_recipe(f"trainer.strategy={strategy}", "trainer.accelerator=gpu", "trainer.max_steps=1",
                             "optim.grad_clip=null")
        model = _model()
        batch = batch or collate(mixed_items(model), packed=True)
        task = DepictQATask(model, recipe)
        seen = []
        task.training_step = (lambda step: lambda b, i: seen.append(float(step(b, i))) or step(b, i))(task.training_step)
        trainer = L.Trainer(accelerator="gpu", devices=1, strategy=make_strategy(recipe, model), precision="32-true",
                            max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            default_root_dir=tmp_path)
        trainer.fit(task, train_dataloaders=torch.utils.data.DataLoader([batch], batch_size=None,
                                                                        collate_fn=lambda b: b))
        losses[strategy] = seen[0]
    assert losses["fsdp"] == pytest.approx(losses["auto"], rel=1e-4)


def test_bf16_packed_step_is_finite_with_varlen():
    import depictqa.attention  # noqa: F401

    model = _model("model.llm.attn_implementation=depictqa_varlen", "model.llm.dtype=bfloat16").cuda()
    model.projector.to(torch.bfloat16)
    model.encoder.to(torch.bfloat16)
    batch = collate(mixed_items(model), packed=True).to("cuda")
    batch.pixels = [p.to(torch.bfloat16) for p in batch.pixels]
    out = model(batch)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_benchmark_smoke_mode_runs(tmp_path):
    out = tmp_path / "smoke.json"
    subprocess.run([sys.executable, "benchmarks/train_throughput.py", "--smoke", "--out", str(out)], cwd=ROOT,
                   check=True, timeout=900)
    import json

    report = json.loads(out.read_text())
    assert report["results"]["fixed"]["depictqa_packed"]["samples_per_s"] > 0
