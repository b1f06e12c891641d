"""Ground-truth-informed synthetic IQA data, after DepictQA-Wild's DQ-495K.

``list_distortions()`` lists the 35 sub-types; ``apply_distortion(name, image, severity, seed)``
distorts a uint8 ``[H, W, 3]`` image; ``build_dataset(out_dir, samples=..., seed=...)`` writes
training shards, held-out test metas and a manifest. Heavy imports happen on first call.
"""

from __future__ import annotations

from typing import Any


def list_distortions(available_only: bool = False) -> list:
    from depictqa.synth.distortions import list_distortions as _list
    return _list(available_only)


def apply_distortion(name: str, image: Any, severity: int, seed: int = 0) -> Any:
    from depictqa.synth.distortions import apply
    return apply(name, image, severity, seed)


def build_dataset(out_dir: Any, **kwargs: Any) -> dict:
    from depictqa.synth.build import build_dataset as _build
    return _build(out_dir, **kwargs)


__all__ = ["list_distortions", "apply_distortion", "build_dataset"]
