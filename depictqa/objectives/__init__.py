"""Training objectives beside the answer loss (default: none). Register your own with
``@depictqa.objectives.register(name)``; the contract is :class:`Objective`."""

from depictqa.objectives.base import Objective, image_end_states
from depictqa.objectives.distortion import build_distortion
from depictqa.registry import Registry

REGISTRY = Registry("objective", injected=("width",))
register = REGISTRY.register
build = REGISTRY.build
list = REGISTRY.list  # noqa: A001 - the registry verb
describe = REGISTRY.describe

register("distortion")(build_distortion)

__all__ = ["Objective", "image_end_states", "REGISTRY", "register", "build", "list", "describe"]
