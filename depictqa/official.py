"""Import a released DepictQA checkpoint (``ckpt.pt`` of the official code) into a depictqa folder.

The official training saves only its trainable tensors, ``torch.save`` of a dict with the names of
peft 0.3: the LoRA matrices
``llm.base_model.model.model.layers.{i}.self_attn.{q,k,v,o}_proj.lora_{A,B}[.default].weight``
(some releases lack ``.default``), the linear projector ``vision_proj.{weight,bias}`` and, for the
abstractor release, ``abstractor.query_embeds`` and ``abstractor.abstractor.layers.{i}...``. The
frozen parts (CLIP ViT-L/14, Vicuna-7B v1.5) come from the recipe's hub ids or folders.

The file is read with ``torch.load(weights_only=True)``: a file that needs pickled classes is
refused, never executed. Every trainable tensor of the recipe's model must be in the file and every
tensor of the file must find a place, or nothing is written and the names are listed.

The released models were trained on the ids of transformers 4.x's slow sentencepiece
``LlamaTokenizer``. Where the tokenizer folder does not set ``legacy: false`` that tokenizer encodes
each text segment between special tokens (the prompt's ``" </s> "``) on its own, with
sentencepiece's leading ``▁``; transformers 5 loads the same folder without that ``▁`` after a
special token. :func:`official_tokenizer` restores the slow ids and the import saves it in the
checkpoint's ``tokenizer/`` folder, which :func:`depictqa.checkpoint.load_pretrained` and
``fit --init`` use.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

PROJECTOR_PREFIX = {"linear": "projector.proj.", "official-abstractor": "projector.vision_proj."}


class OfficialImportError(ValueError):
    """A released checkpoint that cannot be imported; the message names the file and the tensors."""


def read_official(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of an official ``ckpt.pt``, loaded without unpickling any class."""
    path = Path(path)
    if not path.is_file():
        raise OfficialImportError(f"{path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise OfficialImportError(f"{path}: refused, it needs pickled Python objects beyond tensors, which "
                                  f"could run code when loaded ({str(err).splitlines()[0][:200]})") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise OfficialImportError(f"{path}: not a readable torch checkpoint ({err})") from None
    if not isinstance(state, Mapping) or not all(torch.is_tensor(v) for v in state.values()):
        raise OfficialImportError(f"{path}: expected a dict of tensor names to tensors (the official ckpt.pt)")
    return dict(state)


def depictqa_name(key: str, projector: str) -> str:
    """Official tensor name -> this library's parameter name (``projector``: the recipe's projector)."""
    if key.startswith("llm."):
        name = "llm.model." + key[len("llm."):]
        if ".lora_" in name and ".default." not in name:  # releases saved without the adapter name
            name = name.replace(".weight", ".default.weight")
        return name
    if key.startswith("vision_proj."):
        if projector not in PROJECTOR_PREFIX:
            raise OfficialImportError(f"{key}: the recipe's projector {projector!r} has no vision_proj; "
                                      f"use one of {', '.join(PROJECTOR_PREFIX)}")
        return PROJECTOR_PREFIX[projector] + key[len("vision_proj."):]
    if key.startswith("abstractor."):
        return "projector." + key
    return key


def load_official(model: torch.nn.Module, state: Mapping[str, torch.Tensor], projector: str,
                  source: str = "checkpoint") -> None:
    """Copy the official tensors into ``model``'s trainable parameters, all or nothing."""
    params = dict(model.named_parameters())
    wanted = {n for n, p in params.items() if p.requires_grad}
    mapped = {depictqa_name(k, projector): (k, v) for k, v in state.items()}
    missing = sorted(wanted - set(mapped))
    unexpected = sorted(k for name, (k, _) in mapped.items() if name not in params)
    wrong = sorted(f"{k} {tuple(v.shape)} (model: {tuple(params[n].shape)})" for n, (k, v) in mapped.items()
                   if n in params and tuple(params[n].shape) != tuple(v.shape))
    problems = [f"{title} ({len(names)}): " + ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
                for title, names in (("missing from the file", missing), ("not in the model", unexpected),
                                     ("of another shape", wrong)) if names]
    if problems:
        raise OfficialImportError(f"{source} does not fit the recipe's model; nothing was loaded:\n  "
                                  + "\n  ".join(problems))
    with torch.no_grad():
        for name, (_, value) in mapped.items():
            params[name].copy_(value.to(params[name].dtype))


def import_official(ckpt: str | Path, recipe: DictConfig, out: str | Path) -> Path:
    """Build the recipe's model (its frozen parts from their hub ids / folders), load the released
    tensors into it and write a depictqa checkpoint folder at ``out`` (which must not exist)."""
    from depictqa.build import build_model
    from depictqa.checkpoint import TOKENIZER, save_pretrained

    out = Path(out)
    if out.exists():
        raise OfficialImportError(f"--out {out} exists; choose a new folder (nothing is overwritten)")
    state = read_official(ckpt)  # before the (large) model loads: a bad file fails in a second
    model = build_model(recipe)
    load_official(model, state, recipe.model.projector.name, source=str(ckpt))
    save_pretrained(model, recipe, out)
    tokenizer = official_tokenizer(model.tokenizer)
    if tokenizer is not model.tokenizer:
        tokenizer.save_pretrained(str(out / TOKENIZER))
    return out


def slow_tokenizer_is_legacy(name_or_path: str) -> bool:
    """Whether transformers 4.x's slow ``LlamaTokenizer`` ran in legacy mode for this tokenizer
    folder or hub id: its ``tokenizer_config.json`` says ``legacy``, and an unset value meant legacy."""
    from transformers.utils import cached_file

    config = cached_file(name_or_path, "tokenizer_config.json", _raise_exceptions_for_missing_entries=False)
    legacy = json.loads(Path(config).read_text()).get("legacy") if config else None
    return True if legacy is None else bool(legacy)


def official_tokenizer(tokenizer: Any) -> Any:
    """``tokenizer`` made to give the ids the official code got from the slow ``LlamaTokenizer``.

    Only a sentencepiece LLaMA tokenizer in legacy mode (:func:`slow_tokenizer_is_legacy`) changes:
    the result is a ``tokenizers``-backed copy that gives every segment between special tokens its
    own leading ``▁``, as sentencepiece did segment by segment (a plain fast tokenizer class, so
    that saving and loading keeps this). Any other tokenizer is returned as it is.
    """
    import transformers
    from tokenizers import Tokenizer, normalizers

    # transformers 4 has the slow class itself (already right) and LlamaTokenizerFast; 5 one fast class
    llama = tuple(getattr(transformers, n) for n in ("LlamaTokenizer", "LlamaTokenizerFast") if hasattr(transformers, n))
    if (not isinstance(tokenizer, llama) or not getattr(tokenizer, "is_fast", False)
            or not slow_tokenizer_is_legacy(tokenizer.name_or_path)):
        return tokenizer
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())  # a copy: the caller's is unchanged
    # the normaliser runs on each segment the special tokens leave, so each gets the "▁" prefix
    backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    backend.pre_tokenizer = None
    return transformers.PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=tokenizer.bos_token,
                                   eos_token=tokenizer.eos_token, unk_token=tokenizer.unk_token,
                                   pad_token=tokenizer.pad_token, clean_up_tokenization_spaces=False,
                                   padding_side=tokenizer.padding_side)
