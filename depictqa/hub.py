"""Models named by Hugging Face hub id: find them before building, fetch a shared checkpoint.

Everything here answers within seconds without a network: the local cache is read first, and the
hub is asked (once, with a short timeout) only about a model the cache lacks. ``HF_HUB_OFFLINE``
is read, never set: the library changes no process-wide environment.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

PROBE_TIMEOUT = 3.0  # seconds per hub question; a firewalled connect otherwise hangs for minutes
# owner/name as the hub spells it (no leading dot or dash: "./run" and "../x" are folders)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
# a file every model / tokenizer folder on the hub has: a cached one means the repo was fetched
_MARKERS = ("config.json", "tokenizer_config.json")


def offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` (as huggingface_hub read it) forbids reaching the hub."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def is_hub_id(ref: str | os.PathLike) -> bool:
    """``owner/name`` that is not a path on this machine."""
    return bool(_HUB_ID.match(str(ref))) and not Path(ref).expanduser().exists()


def is_cached(repo_id: str) -> bool:
    """Whether the local Hugging Face cache holds a snapshot of ``repo_id`` (no network)."""
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo_id, name), str) for name in _MARKERS)


def probe(repo_id: str, timeout: float = PROBE_TIMEOUT) -> Literal["found", "absent", "unreachable"]:
    """Ask the hub whether it has ``repo_id``: one metadata request with a short timeout."""
    if offline():
        return "unreachable"
    from huggingface_hub import model_info
    from huggingface_hub.utils import RepositoryNotFoundError

    try:
        model_info(repo_id, timeout=timeout)
    except RepositoryNotFoundError:
        return "absent"
    except Exception:  # no route, DNS failure, timeout, proxy refusal: all mean "not from here"
        return "unreachable"
    return "found"


def hub_refs(model: Any) -> dict[str, str]:
    """``{recipe key: hub id}`` for every model folder a recipe's ``model`` block names by hub id.

    Model folders are the components' ``path`` arguments (encoder, LLM, a tokenizer's ``path``)
    and ``llm.tokenizer`` given as a string; values that exist on this machine are folders, and a
    tokenizer named in :data:`depictqa.llms.tokenizers.NAMED` (``minilm``) ships offline.
    """
    from omegaconf import DictConfig, OmegaConf

    from depictqa.config import flatten
    from depictqa.llms.tokenizers import NAMED

    block = OmegaConf.to_container(model, resolve=True) if isinstance(model, DictConfig) else model
    refs = {}
    for key, value in flatten(block, "model.").items():
        named_folder = key.rsplit(".", 1)[-1] == "path" or key == "model.llm.tokenizer"
        if key == "model.llm.tokenizer" and value in NAMED:
            continue
        if named_folder and isinstance(value, str) and not Path(value).expanduser().exists():
            refs[key] = value
    return refs


def missing_models(model: Any, timeout: float = PROBE_TIMEOUT) -> list[str]:
    """One sentence per hub model of ``model`` (a recipe's model block) that cannot be had now:
    not in the local cache, and the hub is unreachable or has no such model. Once the hub has
    proved unreachable it is not asked again, so an offline check costs one timeout at most."""
    problems: list[str] = []
    unreachable = offline()
    for key, repo in hub_refs(model).items():
        if is_cached(repo):
            continue
        answer = "unreachable" if unreachable else probe(repo, timeout)
        if answer == "found":
            continue
        unreachable = unreachable or answer == "unreachable"
        why = ("the hub has no model by that name (a private or gated one needs `hf auth login`)"
               if answer == "absent" else
               "HF_HUB_OFFLINE is set" if offline() else "the hub cannot be reached")
        problems.append(f"{key}: {repo} is not in the local Hugging Face cache and {why}")
    return problems


def checkpoint_folder(ref: str | os.PathLike, revision: str | None = None) -> Path:
    """A checkpoint as a local folder: ``ref`` itself, or the hub repo ``owner/name`` downloaded
    into (or found in) the Hugging Face cache. Raises ``FileNotFoundError`` naming ``ref``."""
    if not is_hub_id(ref):
        return Path(ref).expanduser()
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(ref), revision=revision))
    except Exception as err:  # offline, unknown repo, gated, network: one readable sentence
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        where = "HF_HUB_OFFLINE is set and it is not in the local cache" if offline() else first
        raise FileNotFoundError(f"{ref} is neither a folder here nor a hub checkpoint that can be "
                                f"downloaded ({where})") from None
