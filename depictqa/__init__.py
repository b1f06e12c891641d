"""depictqa: descriptive image quality assessment with multimodal LLMs, on PyTorch Lightning.

Public API::

    recipe = depictqa.load_recipe("recipes/tiny.yaml", overrides=["trainer.max_steps=100"])
    model = depictqa.build_model(recipe)            # encoder + projector + LLM
    model = depictqa.load_pretrained("runs/tiny/checkpoints/last")
    assessor = depictqa.Assessor(model)             # assess / compare / score / prefer

Importing this package configures no logging, reads no network and imports neither wandb nor
webdataset; the Lightning pieces are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from depictqa import encoders, llms, projectors
from depictqa.build import build_model
from depictqa.checkpoint import load_pretrained, save_pretrained
from depictqa.config import load_recipe
from depictqa.encoders.base import VisionEncoder
from depictqa.llms.base import LanguageModel
from depictqa.model import DepictQAModel
from depictqa.projectors.base import Projector

if TYPE_CHECKING:
    from depictqa.data.datamodule import DepictQADataModule
    from depictqa.infer.assessor import Assessor
    from depictqa.task import DepictQATask

__version__ = "0.1.0"
__all__ = ["load_recipe", "build_model", "DepictQAModel", "DepictQATask", "DepictQADataModule",
           "load_pretrained", "save_pretrained", "Assessor", "encoders", "projectors", "llms",
           "VisionEncoder", "Projector", "LanguageModel"]

_LAZY = {"DepictQATask": "depictqa.task", "DepictQADataModule": "depictqa.data.datamodule",
         "Assessor": "depictqa.infer.assessor"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'depictqa' has no attribute {name!r}")
