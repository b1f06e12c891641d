"""Inference: :class:`~depictqa.infer.assessor.Assessor` (assess / compare / describe generate
answers with confidence; score / prefer read one forward pass) and the official-meta runner
behind the ``infer`` command (:mod:`depictqa.infer.run_meta`; the ``infer``, ``assess`` and
``compare`` commands themselves live in ``depictqa/commands/``). See ``docs/inference.md``."""

from __future__ import annotations

from typing import Any

__all__ = ["Assessor", "Answer", "Score", "Preference"]


def __getattr__(name: str) -> Any:
    # Lazy, so importing depictqa.infer (e.g. for the CLI) loads no torch-heavy code.
    if name == "Assessor":
        from depictqa.infer.assessor import Assessor

        return Assessor
    if name in ("Answer", "Score", "Preference"):
        from depictqa.infer import results

        return getattr(results, name)
    raise AttributeError(f"module 'depictqa.infer' has no attribute {name!r}")
