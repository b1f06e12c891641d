"""Projectors: ``linear``, ``mlp``, ``abstractor``, ``official-abstractor``; register your own with ``@register(name)``."""

from depictqa.projectors.abstractor import build_abstractor
from depictqa.projectors.base import Projector
from depictqa.projectors.linear import build_linear
from depictqa.projectors.mlp import build_mlp
from depictqa.projectors.official_abstractor import build_official_abstractor
from depictqa.registry import Registry

REGISTRY = Registry("projector", injected=("in_dim", "out_dim"))
register = REGISTRY.register
build = REGISTRY.build
list = REGISTRY.list  # noqa: A001 - the registry verb
describe = REGISTRY.describe

register("linear", "one linear layer per token (DepictQA v1)")(build_linear)
register("mlp", "2-layer GELU MLP per token (LLaVA-1.5 style)")(build_mlp)
register("abstractor", "learned queries cross-attending to each image -> fixed number of tokens")(build_abstractor)
register("official-abstractor", "the released DepictQA-Wild abstractor: 4-layer post-norm decoder, 64 queries, "
         "then linear (loads its weights one to one)")(build_official_abstractor)

__all__ = ["Projector", "REGISTRY", "register", "build", "list", "describe"]
