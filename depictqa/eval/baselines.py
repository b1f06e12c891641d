"""Full-reference score baselines on the compare pairs: PSNR, SSIM, MS-SSIM, VIF, UQI.

Each metric scores A and B against the reference and picks the better one, which gives the
2AFC-style rating accuracy the DepictQA papers compare against. All come from torchmetrics and
need no downloaded weights (LPIPS and DISTS do, so they are not offered offline). A metric that
cannot run on an image size (MS-SSIM under 176 px, VIF under 41 px) is skipped with a one-line note.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from depictqa.eval.records import image_path
from depictqa.eval.truth import gt_choice, task_kind

# name -> (metric(preds, target) -> per-image tensor, higher is better)
def _metrics() -> dict[str, tuple[Callable[..., Any], bool]]:
    from torchmetrics.functional.image import (
        multiscale_structural_similarity_index_measure as ms_ssim,
        peak_signal_noise_ratio as psnr,
        structural_similarity_index_measure as ssim,
        universal_image_quality_index as uqi,
        visual_information_fidelity as vif,
    )

    # each maps a batch [N, 3, H, W] to one score per image [N]
    return {
        "PSNR": (lambda p, t: psnr(p, t, data_range=1.0, reduction="none", dim=(1, 2, 3)), True),
        "SSIM": (lambda p, t: ssim(p, t, data_range=1.0, reduction="none"), True),
        "MS-SSIM": (lambda p, t: ms_ssim(p, t, data_range=1.0, reduction="none"), True),
        "VIF": (lambda p, t: vif(p, t, reduction="none"), True),
        "UQI": (lambda p, t: uqi(p, t, reduction="none").mean(dim=(1, 2, 3)), True),
    }


BASELINES: tuple[str, ...] = ("PSNR", "SSIM", "MS-SSIM", "VIF", "UQI")
# Smallest image side each metric runs on with torchmetrics' defaults (checked: one pixel less
# raises): MS-SSIM halves the image 4 times and its 11-px window must fit at the coarsest scale
# (side // 16 >= 11); VIF's largest Gaussian window is 41 px.
MIN_SIDE: dict[str, int] = {"MS-SSIM": 176, "VIF": 41}


def size_note(name: str, height: int, width: int) -> str | None:
    """One line saying why ``name`` cannot score ``height`` x ``width`` images, or ``None``."""
    need = MIN_SIDE.get(name)
    if need is None or min(height, width) >= need:
        return None
    return f"{name} needs images of at least {need} px per side; these are {height}x{width} (not run)"


def _tensor(image: Any) -> Any:
    """Path, PIL image or HxWx3 uint8 / float array -> float32 tensor ``[1, 3, H, W]`` in [0, 1]
    (float64 convolutions run 10-20x slower on a CPU; rankings of A and B do not need them)."""
    import torch
    from PIL import Image

    if isinstance(image, (str, Path)):
        image = Image.open(image).convert("RGB")
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, -1)
    arr = arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]


def pair_scores(ref: Any, a: Any, b: Any,
                names: Sequence[str] = BASELINES) -> dict[str, tuple[float, float] | str]:
    """Score A and B against the reference with each metric.

    Returns ``{name: (score_a, score_b)}``, or ``{name: reason}`` where a metric could not run.
    """
    r, ta, tb = _tensor(ref), _tensor(a), _tensor(b)
    if ta.shape != r.shape or tb.shape != r.shape:
        return {n: f"size mismatch {tuple(r.shape[-2:])} vs {tuple(ta.shape[-2:])}/"
                   f"{tuple(tb.shape[-2:])}" for n in names}
    table = _metrics()
    out: dict[str, tuple[float, float] | str] = {}
    for name in names:
        fn, _ = table[name]
        note = size_note(name, *r.shape[-2:])
        if note:
            out[name] = note
            continue
        try:
            out[name] = (float(fn(ta, r).reshape(-1)[0]), float(fn(tb, r).reshape(-1)[0]))
        except (ValueError, RuntimeError) as err:
            out[name] = f"{name} could not run: {str(err).splitlines()[0]}"
    return out


def pair_choice(ref: Any, a: Any, b: Any,
                names: Sequence[str] = BASELINES) -> dict[str, str | None]:
    """Each metric's pick, ``"A"`` or ``"B"`` (``None``: tie or the metric could not run)."""
    table = _metrics()
    picks: dict[str, str | None] = {}
    for name, s in pair_scores(ref, a, b, names).items():
        if isinstance(s, str) or s[0] == s[1]:
            picks[name] = None
            continue
        higher = table[name][1]
        picks[name] = "A" if (s[0] > s[1]) == higher else "B"
    return picks


def run_baselines(gt_records: Sequence[dict[str, Any]], root: str | Path | None = None,
                  names: Sequence[str] = BASELINES) -> dict[str, Any]:
    """Rating accuracy of each baseline over FR compare records whose better image is known
    (``A_better_B``, or the answer when that field is absent).

    A tie earns half a point (what a coin flip would); a metric that cannot run on a pair leaves
    it out of that metric's count and the reason is noted. NR pairs are skipped and counted.
    """
    credit = {n: 0.0 for n in names}
    counted = {n: 0 for n in names}
    notes: dict[str, set[str]] = {n: set() for n in names}
    skipped_nr = skipped_other = 0
    # Pairs are scored in batches of one image size (a metric call per batch, not per pair).
    groups: dict[tuple[int, ...], list[tuple[Any, Any, Any, str]]] = {}
    for rec in gt_records:
        truth = gt_choice(rec) if task_kind(rec) == "compare" else None
        if truth not in ("A", "B"):
            skipped_other += task_kind(rec) == "compare"
            continue
        if not rec.get("image_ref"):
            skipped_nr += 1
            continue
        if root is not None:
            rec = {**rec, "_root": str(root)}
        ref, a, b = (_tensor(image_path(rec, k)) for k in ("image_ref", "image_A", "image_B"))
        if a.shape != ref.shape or b.shape != ref.shape:
            mismatch = f"size mismatch {tuple(ref.shape[-2:])} vs {tuple(a.shape[-2:])}/{tuple(b.shape[-2:])}"
            for name in names:
                notes[name].add(mismatch)
            continue
        group = groups.setdefault(tuple(ref.shape), [])
        group.append((ref, a, b, truth))
        if len(group) == BATCH:
            _score_group(groups.pop(tuple(ref.shape)), names, credit, counted, notes)
    for group in groups.values():
        _score_group(group, names, credit, counted, notes)
    return {"accuracy": {n: credit[n] / counted[n] if counted[n] else float("nan") for n in names},
            "n_pairs": counted, "n_nr_skipped": skipped_nr, "n_ties_skipped": skipped_other,
            "notes": {n: sorted(v) for n, v in notes.items() if v}}


BATCH = 64  # pairs per metric call


def _score_group(group: list[tuple[Any, Any, Any, str]], names: Sequence[str], credit: dict[str, float],
                 counted: dict[str, int], notes: dict[str, set[str]]) -> None:
    """Score same-size (ref, a, b, truth) pairs with each metric in one call; add up the credit."""
    import torch

    ref, a, b = (torch.cat([g[i] for g in group]) for i in range(3))
    table = _metrics()
    for name in names:
        fn, higher = table[name]
        note = size_note(name, *ref.shape[-2:])
        if note:
            notes[name].add(note)
            continue
        try:
            sa, sb = fn(a, ref).reshape(-1).tolist(), fn(b, ref).reshape(-1).tolist()
        except (ValueError, RuntimeError) as err:
            notes[name].add(f"{name} could not run: {str(err).splitlines()[0]}")
            continue
        for x, y, (*_, truth) in zip(sa, sb, group):
            counted[name] += 1
            if x == y:
                credit[name] += 0.5
            elif ("A" if (x > y) == higher else "B") == truth:
                credit[name] += 1.0


def rating_baselines(gt_records: Sequence[dict[str, Any]],
                     root: str | Path | None = None) -> dict[str, float]:
    """``{baseline name: rating accuracy}`` on the FR compare pairs of ``gt_records``.

    ``root`` overrides the folder image paths are relative to (default: each record's ``_root``
    set by :func:`~depictqa.eval.records.load_ground_truth`, else the working directory).
    """
    return run_baselines(gt_records, root)["accuracy"]
