"""Recipe -> DepictQAModel (and the training objectives and the data pipeline's view of the model).

Sizes come from the parts: the projector is built from the encoder's ``embed_dim`` and the LLM's
``hidden_size``, conditioners and objectives from the LLM's ``hidden_size``; a recipe never
repeats them."""

from __future__ import annotations

import functools
import inspect
import logging
from typing import TYPE_CHECKING, Iterable

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from depictqa import conditioners, encoders, llms, objectives, projectors
from depictqa.config import component
from depictqa.model import DepictQAModel, image_token_count
from depictqa.prompts import PromptBuilder

if TYPE_CHECKING:
    from depictqa.data.datamodule import SampleEncoder

log = logging.getLogger("depictqa")


def _set_trainable(module: torch.nn.Module, mode: str) -> None:
    if mode == "frozen":
        module.requires_grad_(False)
    elif mode == "full":
        module.requires_grad_(True)
    # "lora": PEFT has already frozen the base and left the adapter trainable.


def build_model(recipe: DictConfig, texts: Iterable[str] | None = None) -> DepictQAModel:
    """Build the model a recipe describes (weights from the paths it names, or random).

    ``texts``: training text for recipes whose tokenizer is trained on the data.
    """
    enc_name, enc_mode, enc_kwargs = component(recipe.model.encoder)
    encoder = encoders.build(enc_name, **enc_kwargs)
    _set_trainable(encoder, enc_mode or "frozen")

    llm_name, llm_mode, llm_kwargs = component(recipe.model.llm)
    llm_mode = llm_mode or "frozen"
    if llm_mode != "lora":
        llm_kwargs.pop("lora", None)
    if "texts" in inspect.signature(llms.REGISTRY.entry(llm_name).builder).parameters:
        template_texts = PromptBuilder(None, recipe.model.template).fixed_texts()
        if texts is not None:
            # Every prompt holds the template's texts once: weigh them so in the BPE corpus, or
            # its merges never reach the role words ("ASSISTANT" would stay nine tokens).
            texts = list(texts)
            texts = [*template_texts * max(1, len(texts) // max(1, len(template_texts))), *texts]
        llm_kwargs["texts"] = texts
    llm = llms.build(llm_name, **llm_kwargs)
    _set_trainable(llm, llm_mode)

    proj_name, proj_mode, proj_kwargs = component(recipe.model.projector)
    projector = projectors.build(proj_name, in_dim=encoder.embed_dim, out_dim=llm.hidden_size, **proj_kwargs)
    _set_trainable(projector, proj_mode or "full")

    enc_dtype = getattr(torch, recipe.model.encoder_dtype) if recipe.model.encoder_dtype else None
    if enc_dtype is not None and (enc_mode or "frozen") == "frozen":
        encoder.to(enc_dtype)
    stages = [conditioners.build(name, width=llm.hidden_size, **kwargs)
              for name, _, kwargs in map(component, recipe.model.get("conditioners") or [])]
    model = DepictQAModel(encoder, projector, llm, template=recipe.model.template,
                          train_encoder=(enc_mode == "full"), encoder_dtype=enc_dtype, conditioners=stages)
    if recipe.model.get("encoder_cache_gb", 0) > 0:
        model.feature_cache = _feature_cache(recipe, enc_mode or "frozen")
    # Parts with random initial weights cannot be rebuilt from a path: checkpoints keep all of them.
    model.random_parts = {part for part, kwargs in (("encoder", enc_kwargs), ("llm", llm_kwargs))
                          if not (kwargs.get("path") or kwargs.get("checkpoint") or kwargs.get("pretrained"))}
    return model


def restrict_to_answers(model: DepictQAModel, answers: Iterable[str]) -> int:
    """Give the LM an output head over the tokens of ``answers`` (each tokenised as a training
    target, its end mark included) and the end-of-sequence token; returns how many it scores."""
    ids = {model.tokenizer.eos_token_id} - {None}
    for text in set(tqdm(answers, desc="output vocabulary: reading answers", unit=" answers", disable=None)):
        ids.update(model.prompts.answer_ids(text))
    if not ids:
        raise ValueError("output_vocab: answers: the data sources hold no answers")
    model.llm.restrict_output(sorted(ids))
    log.info("output head: %d of %d tokens (the answers' own)", len(ids), len(model.tokenizer))
    return len(ids)


def build_objectives(recipe: DictConfig, width: int) -> list[tuple[str, float, torch.nn.Module]]:
    """The recipe's ``objectives`` block -> ``[(log name, weight, objective)]``, in recipe order.
    The log name is the registry name, numbered from the second use of one name on."""
    out: list[tuple[str, float, torch.nn.Module]] = []
    seen: dict[str, int] = {}
    for block in recipe.get("objectives") or []:
        data = OmegaConf.to_container(block, resolve=True) if isinstance(block, DictConfig) else dict(block)
        name, weight = data.pop("name"), float(data.pop("weight", 1.0))
        seen[name] = seen.get(name, 0) + 1
        label = name if seen[name] == 1 else f"{name}_{seen[name]}"
        out.append((label, weight, objectives.build(name, width=width, **data)))
    return out


def sample_encoder(model: DepictQAModel) -> "SampleEncoder":
    """What the data pipeline needs of ``model`` to tokenise samples (no reference to the model)."""
    from depictqa.data.datamodule import SampleEncoder

    count = functools.partial(image_token_count, model.patch_size, model.projector.num_tokens)
    return SampleEncoder(model.prompts, model.patch_size, count,
                         pad_id=model.tokenizer.pad_token_id or 0, mean=tuple(model.encoder.mean),
                         std=tuple(model.encoder.std), cache_keys=model.feature_cache is not None)


def _feature_cache(recipe: DictConfig, enc_mode: str):
    from depictqa.config import RecipeError
    from depictqa.feature_cache import FeatureCache

    if enc_mode != "frozen":
        raise RecipeError(f"model.encoder_cache_gb needs model.encoder.train: frozen (got {enc_mode!r}): "
                          "a trained encoder's features change every step")
    image = recipe.get("data", {}).get("image", {})
    if image.get("crop") is not None or image.get("flip"):
        raise RecipeError("model.encoder_cache_gb needs data.image.crop: null and data.image.flip: null: "
                          "random crops and flips make every view of an image different")
    return FeatureCache(int(recipe.model.encoder_cache_gb * 2**30))
