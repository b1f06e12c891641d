"""Vision encoders: ``clip``, ``timm``, ``tiny-vit``; register your own with ``@register(name)``."""

from depictqa.encoders.base import VisionEncoder
from depictqa.encoders.clip import build_clip
from depictqa.encoders.timm import build_timm
from depictqa.encoders.tiny import build_tiny_vit
from depictqa.registry import Registry

REGISTRY = Registry("encoder")
register = REGISTRY.register
build = REGISTRY.build
list = REGISTRY.list  # noqa: A001 - the registry verb
describe = REGISTRY.describe

register("clip", "CLIP vision tower (transformers CLIPVisionModel), patch tokens of a chosen layer")(build_clip)
register("timm", "any timm ViT/ConvNet via create_model + forward_intermediates")(build_timm)
register("tiny-vit", "small from-scratch ViT for CPU recipes and tests")(build_tiny_vit)

__all__ = ["VisionEncoder", "REGISTRY", "register", "build", "list", "describe"]
