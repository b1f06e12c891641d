"""DDP on two CPU processes (gloo) trains exactly like one process on the same global batch.

Each step's global batch is four samples; rank r trains on its half, packed into one row. The
model's loss is a mean over answer tokens and DDP averages gradients over ranks, so the two agree
when both halves hold the same number of answer tokens: the halves use the same answers (with
different tasks, prompts and images), and the test checks that the counts match.
"""

import copy

import lightning as L
import torch
from torch.utils.data import DataLoader

from depictqa.data.collate import collate
from depictqa.prompts import IGNORE
from tests.conftest import TEXTS, make_item, tiny_recipe

STEPS = 3
OVERRIDES = ["trainer.max_steps=3", "optim.warmup_ratio=0.0", "optim.schedule=constant", "optim.lr=1e-2",
             "optim.grad_clip=null",
             # The real setup: a frozen encoder. (Its attention key bias would get a gradient that is
             # zero up to rounding, which AdamW scales to a full step of random sign on any run.)
             "model.encoder.train=frozen"]


def _global_batches(model):
    """STEPS global batches, each as two halves [rank-0 items, rank-1 items]."""
    p = model.patch_size
    out = []
    for step in range(STEPS):
        s = 10 * step
        half0 = [make_item(model, "compare", True, "Which image is better?", "Image A", [(2 * p, 3 * p)] * 3, s + 1),
                 make_item(model, "assess", False, "What distortion does the image have?", "Blur and noise",
                           [(3 * p, 2 * p)], s + 2)]
        half1 = [make_item(model, "compare", False, "Which one is better?", "Image A", [(3 * p, 3 * p)] * 2, s + 3),
                 make_item(model, "caption", False, "Describe the image.", "Blur and noise", [(2 * p, 2 * p)], s + 4)]
        out.append([half0, half1])
    return out


class _Halves(L.LightningDataModule):
    """Rank r of a world of w gets half r of every global batch (w == 1: the whole batch)."""

    def __init__(self, batches) -> None:
        super().__init__()
        self.batches = batches

    def train_dataloader(self) -> DataLoader:
        rank, world = self.trainer.global_rank, self.trainer.world_size
        if world == 1:
            data = [collate(h0 + h1, packed=True) for h0, h1 in self.batches]
        else:
            data = [collate(halves[rank], packed=True) for halves in self.batches]
        return DataLoader(data, batch_size=None, collate_fn=lambda b: b)


class _Record(L.Callback):
    """Rank 0 writes the (already all-reduced) first-step gradients and the final weights."""

    def __init__(self, path) -> None:
        self.path, self.grads = path, None

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.grads is None:
            self.grads = {n: p.grad.detach().clone() for n, p in pl_module.model.named_parameters() if p.grad is not None}

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            weights = {n: p.detach().clone() for n, p in pl_module.model.named_parameters()}
            torch.save({"grads": self.grads, "weights": weights}, self.path)


def test_two_process_ddp_equals_one_process_on_the_global_batch(tmp_path):
    from depictqa.build import build_model

    recipe = tiny_recipe(*OVERRIDES)
    torch.manual_seed(0)
    model = build_model(recipe, texts=TEXTS)
    batches = _global_batches(model)
    for h0, h1 in batches:  # equal answer-token counts: the mean of rank means is the global mean
        count = [int((collate(h, packed=True).labels != IGNORE).sum()) for h in (h0, h1)]
        assert count[0] == count[1] > 0
    results = {}
    for devices in (1, 2):
        path = tmp_path / f"devices{devices}.pt"
        results[devices] = _run(model, batches, recipe, devices, path)
    one, two = results[1], results[2]
    assert one["grads"].keys() == two["grads"].keys() and len(one["grads"]) > 10
    assert not any(n.startswith("encoder.") for n in one["grads"])
    for name in one["grads"]:
        torch.testing.assert_close(two["grads"][name], one["grads"][name], rtol=1e-4, atol=1e-6, msg=name)
    moved = 0
    for name, start in model.named_parameters():
        if not start.requires_grad:
            continue
        # Adam divides by sqrt(v): a gradient near zero turns float-summation-order noise into a
        # visible weight difference, so weights get 1% of one step (lr 1e-2); gradients are held tighter above.
        torch.testing.assert_close(two["weights"][name], one["weights"][name], rtol=1e-4, atol=1e-4,
                                   msg=lambda m: f"{name}: {m}")
        moved += not torch.equal(one["weights"][name], start.detach())
    assert moved > 10  # the steps did train


def _run(model, batches, recipe, devices, path):
    from depictqa.task import DepictQATask

    strategy = "auto" if devices == 1 else L.pytorch.strategies.DDPStrategy(start_method="fork",
                                                                           process_group_backend="gloo")
    trainer = L.Trainer(accelerator="cpu", devices=devices, strategy=strategy, max_steps=STEPS, precision="32-true",
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, use_distributed_sampler=False, num_sanity_val_steps=0,
                        callbacks=[_Record(path)])
    trainer.fit(DepictQATask(copy.deepcopy(model), recipe), datamodule=_Halves(batches))
    return torch.load(path)


def test_activation_checkpointing_wraps_blocks_and_keeps_loss_and_gradients():
    from depictqa.build import build_model
    from depictqa.strategies import apply_activation_checkpointing
    from tests.conftest import mixed_items

    recipe = tiny_recipe()
    torch.manual_seed(0)
    plain = build_model(recipe, texts=TEXTS)
    wrapped = copy.deepcopy(plain)
    assert apply_activation_checkpointing(wrapped) == 3  # two decoder layers + one vision block
    batch = collate(mixed_items(plain), packed=True)
    a, b = plain(batch).loss, wrapped(batch).loss
    torch.testing.assert_close(b, a)
    a.backward()
    b.backward()
    grads = {n.replace("._checkpoint_wrapped_module", ""): p.grad for n, p in wrapped.named_parameters()}
    for name, p in plain.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-5, atol=1e-7, msg=name)


def test_strategy_names_map_to_lightning_strategies():
    from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy, ModelParallelStrategy

    from depictqa.build import build_model
    from depictqa.strategies import make_strategy, precision_for

    torch.manual_seed(0)
    model = build_model(tiny_recipe(), texts=TEXTS)
    assert make_strategy(tiny_recipe(), model) == "auto"
    assert isinstance(make_strategy(tiny_recipe("trainer.strategy=ddp"), model), DDPStrategy)
    fsdp = make_strategy(tiny_recipe("trainer.strategy=fsdp", "trainer.activation_checkpointing=true"), model)
    assert isinstance(fsdp, FSDPStrategy)
    assert precision_for(tiny_recipe("trainer.strategy=fsdp")) == "bf16-true"  # fp32 LoRA on a bf16 base
    assert isinstance(make_strategy(tiny_recipe("trainer.strategy=fsdp2"), model), ModelParallelStrategy)
