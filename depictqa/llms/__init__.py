"""Language models: ``hf`` (any transformers causal LM, PEFT LoRA); register your own."""

from depictqa.llms.base import LanguageModel
from depictqa.llms.hf import build_hf
from depictqa.registry import Registry

REGISTRY = Registry("llm", injected=("texts",))
register = REGISTRY.register
build = REGISTRY.build
list = REGISTRY.list  # noqa: A001 - the registry verb
describe = REGISTRY.describe

register("hf", "any transformers AutoModelForCausalLM (folder, hub id or config), PEFT LoRA optional")(build_hf)

__all__ = ["LanguageModel", "REGISTRY", "register", "build", "list", "describe"]
