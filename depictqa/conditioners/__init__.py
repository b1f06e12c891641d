"""Image-token conditioners between projector and LM (default: none). Register your own with
``@depictqa.conditioners.register(name)``; the contract is :class:`Conditioner`."""

from depictqa.conditioners.base import Conditioner
from depictqa.conditioners.differences import build_token_differences
from depictqa.conditioners.relative import build_relative_stats
from depictqa.registry import Registry

REGISTRY = Registry("conditioner", injected=("width",))
register = REGISTRY.register
build = REGISTRY.build
list = REGISTRY.list  # noqa: A001 - the registry verb
describe = REGISTRY.describe

register("relative-stats")(build_relative_stats)
register("token-differences")(build_token_differences)

__all__ = ["Conditioner", "REGISTRY", "register", "build", "list", "describe"]
