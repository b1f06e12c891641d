"""Released DepictQA checkpoints import and answer as the official model computes: a tiny model in
the official key layout (LoRA + vision_proj, and the abstractor release) saved as the official
agent saves it, imported, equals a reference forward written here; `fit --init` starts from it."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F

from depictqa.official import OfficialImportError, import_official, read_official
from tests.conftest import TEXTS, TINY_OVERRIDES, make_item

R, ALPHA, PROJS = 4, 8, ("q", "k", "v", "o")


@pytest.fixture(scope="module")
def base_llm(tmp_path_factory):
    """A random tiny LLaMA + tokenizer in a folder: the stand-in for Vicuna-7B."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from depictqa.llms.tokenizers import train_bpe
    from depictqa.prompts import PromptBuilder

    folder = tmp_path_factory.mktemp("vicuna")
    tok = train_bpe([*PromptBuilder(None, "depictqa-vicuna").fixed_texts(), *TEXTS], vocab_size=320)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def recipe_for(base, projector: str = "linear"):
    from depictqa.config import load_recipe

    return load_recipe(overrides=[
        *(o for o in TINY_OVERRIDES if not o.startswith("model.llm=")), "model.template=depictqa-vicuna",
        "model.encoder={name: tiny-vit, train: frozen, patch_size: 8, embed_dim: 16, depth: 1, num_heads: 2, grid: 4}",
        f"model.projector={{name: {projector}, train: full}}",
        f"model.llm={{name: hf, train: lora, path: '{base}', lora: {{r: {R}, alpha: {ALPHA}, dropout: 0.0}}}}"],
        check_local=False)


def official_state(layers: int, hidden: int, width: int, default: bool = True, abstractor=None) -> OrderedDict:
    """The trainable tensors, under the official names, as the official agent's torch.save writes them."""
    g = torch.Generator().manual_seed(1)
    state = OrderedDict()
    suffix = ".default" if default else ""
    for i in range(layers):
        for p in PROJS:
            stem = f"llm.base_model.model.model.layers.{i}.self_attn.{p}_proj"
            state[f"{stem}.lora_A{suffix}.weight"] = torch.randn(R, hidden, generator=g) * 0.3
            state[f"{stem}.lora_B{suffix}.weight"] = torch.randn(hidden, R, generator=g) * 0.3
    if abstractor is not None:
        state["abstractor.query_embeds"] = torch.randn(64, 1, width, generator=g)
        for k, v in abstractor.state_dict().items():
            state[f"abstractor.abstractor.{k}"] = v.clone()
    state["vision_proj.weight"] = torch.randn(hidden, width, generator=g) * 0.2
    state["vision_proj.bias"] = torch.randn(hidden, generator=g) * 0.2
    return state


def reference_logits(base, state: dict, model, batch, abstractor=None) -> torch.Tensor:
    """The official forward, by hand: encoder features -> (abstractor) -> vision_proj, spliced into
    the token embeddings at the image positions, through the LLaMA with each LoRA merged into its weight."""
    from transformers import LlamaForCausalLM

    llm = LlamaForCausalLM.from_pretrained(base).eval()
    with torch.no_grad():
        for i, layer in enumerate(llm.model.layers):
            for p in PROJS:
                stem = f"llm.base_model.model.model.layers.{i}.self_attn.{p}_proj"
                a = next(v for k, v in state.items() if k.startswith(stem + ".lora_A"))
                b = next(v for k, v in state.items() if k.startswith(stem + ".lora_B"))
                getattr(layer.self_attn, f"{p}_proj").weight += (b @ a) * (ALPHA / R)
        tokens = []
        for pixels in batch.pixels:
            feats = model._encoder_features([pixels], None)  # the frozen encoder's [1, N, width]
            if abstractor is not None:
                queries = state["abstractor.query_embeds"].expand(-1, 1, -1)
                feats = abstractor(queries, feats.permute(1, 0, 2)).permute(1, 0, 2)
            tokens.append(F.linear(feats[0], state["vision_proj.weight"], state["vision_proj.bias"]))
        embeds = llm.model.embed_tokens(batch.input_ids)
        embeds[batch.image_mask] = torch.cat(tokens)
        return llm(inputs_embeds=embeds, attention_mask=batch.attention_mask).logits


def our_logits(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model.llm(inputs_embeds=model.embed(batch), attention_mask=batch.attention_mask).logits


def _batch(model):
    from depictqa.data.collate import collate

    p = model.patch_size
    items = [make_item(model, "compare", True, "Which image is better?", None, [(2 * p, 3 * p)] * 3, 1),
             make_item(model, "assess", False, "What distortion does the image have?", None, [(3 * p, 2 * p)], 2)]
    return collate(items, pad_id=model.tokenizer.pad_token_id or 0)


@pytest.mark.parametrize("default", [True, False], ids=["with-.default", "without-.default"])
def test_imported_linear_release_equals_the_official_forward(base_llm, tmp_path, default):
    from depictqa.checkpoint import load_pretrained

    recipe = recipe_for(base_llm)
    state = official_state(2, 32, 16, default=default)
    torch.save(state, tmp_path / "ckpt.pt")
    out = import_official(tmp_path / "ckpt.pt", recipe, tmp_path / "imported")
    model = load_pretrained(out).eval()
    batch = _batch(model)
    ours, ref = our_logits(model, batch), reference_logits(base_llm, state, model, batch)
    assert (ours - ref).abs().max() < 1e-5
    # control: one LoRA tensor changed gives other logits (the comparison can fail)
    key = next(k for k in state if ".lora_B" in k)
    state[key] = state[key] + 0.5
    torch.save(state, tmp_path / "changed.pt")
    changed = load_pretrained(import_official(tmp_path / "changed.pt", recipe, tmp_path / "changed")).eval()
    assert (our_logits(changed, batch) - ref).abs().max() > 1e-3


def test_imported_abstractor_release_equals_the_official_forward(base_llm, tmp_path):
    from depictqa.checkpoint import load_pretrained

    torch.manual_seed(5)
    layer = torch.nn.TransformerDecoderLayer(d_model=16, nhead=8, dim_feedforward=2048, dropout=0.1)
    decoder = torch.nn.TransformerDecoder(layer, num_layers=4).eval()  # the release's architecture
    state = official_state(2, 32, 16, abstractor=decoder)
    torch.save(state, tmp_path / "ckpt.pt")
    model = load_pretrained(import_official(tmp_path / "ckpt.pt", recipe_for(base_llm, "official-abstractor"),
                                            tmp_path / "imported")).eval()
    batch = _batch(model)
    ref = reference_logits(base_llm, state, model, batch, abstractor=decoder)
    assert model.image_tokens(16, 24) == 64
    assert (our_logits(model, batch) - ref).abs().max() < 1e-5


def test_a_file_with_pickled_objects_is_refused_and_nothing_is_written(base_llm, tmp_path):
    import fractions

    torch.save({"vision_proj.weight": torch.zeros(2, 2), "note": fractions.Fraction(1, 3)}, tmp_path / "evil.pt")
    with pytest.raises(OfficialImportError, match="refused"):
        import_official(tmp_path / "evil.pt", recipe_for(base_llm), tmp_path / "out")
    assert not (tmp_path / "out").exists()


class Payload:
    """A custom class a malicious ckpt.pt might pickle: unpickling it would call open()."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_a_file_pickling_a_custom_class_is_refused_without_running_it(base_llm, tmp_path):
    marker = tmp_path / "ran"
    state = official_state(2, 32, 16)
    state["extra"] = Payload(marker)
    torch.save(state, tmp_path / "ckpt.pt")
    with pytest.raises(OfficialImportError, match=r"ckpt\.pt: refused, it needs pickled Python objects"):
        import_official(tmp_path / "ckpt.pt", recipe_for(base_llm), tmp_path / "out")
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_missing_and_unexpected_tensors_are_listed_by_name(base_llm, tmp_path):
    state = official_state(2, 32, 16)
    dropped = "llm.base_model.model.model.layers.1.self_attn.v_proj.lora_A.default.weight"
    del state[dropped]
    state["mm_projector.weight"] = torch.zeros(3, 3)
    torch.save(state, tmp_path / "ckpt.pt")
    with pytest.raises(OfficialImportError) as err:
        import_official(tmp_path / "ckpt.pt", recipe_for(base_llm), tmp_path / "out")
    message = str(err.value)
    assert "layers.1.self_attn.v_proj.lora_A.default.weight" in message and "mm_projector.weight" in message
    assert "nothing was loaded" in message and not (tmp_path / "out").exists()
    assert read_official(tmp_path / "ckpt.pt")["mm_projector.weight"].shape == (3, 3)


def test_cli_import_then_fit_init_starts_from_the_imported_weights(base_llm, tmp_path):
    import lightning as L
    from omegaconf import OmegaConf

    from depictqa.cli import main
    from depictqa.train import fit
    from tests.conftest import write_tiny_shards

    state = official_state(2, 32, 16)
    torch.save(state, tmp_path / "ckpt.pt")
    recipe = recipe_for(base_llm)
    OmegaConf.save(recipe, tmp_path / "released.yaml")
    assert main(["import-official", str(tmp_path / "ckpt.pt"), "--recipe", str(tmp_path / "released.yaml"),
                 "--out", str(tmp_path / "imported")]) == 0
    assert main(["import-official", str(tmp_path / "ckpt.pt"), "--recipe", str(tmp_path / "released.yaml"),
                 "--out", str(tmp_path / "imported")]) == 2  # an existing folder is never overwritten

    class FirstWeights(L.Callback):
        def on_train_start(self, trainer, task):
            self.proj = task.model.projector.proj.weight.detach().clone()

    write_tiny_shards(tmp_path / "shards", n=8, prefix="brief")
    tuned = OmegaConf.merge(recipe, {"out_dir": str(tmp_path / "run"), "trainer": {"max_steps": 1},
                                     "data": {"sources": {"brief": {"shards": str(tmp_path / "shards/*.tar")}},
                                              "val": None, "batch_size": 2}})
    seen = FirstWeights()
    fit(tuned, init=tmp_path / "imported", callbacks=[seen])
    assert torch.equal(seen.proj, state["vision_proj.weight"])


# --- the tokenizer: the released models saw the ids of transformers 4.x's slow LlamaTokenizer ---

SPECIAL = {"<unk>": 0, "<s>": 1, "</s>": 2}


@pytest.fixture(scope="module")
def sp_model() -> bytes:
    """A tiny LLaMA-style sentencepiece model (BPE, byte fallback, dummy prefix) trained here."""
    spm = pytest.importorskip("sentencepiece")
    import io

    from tests.test_prompts import OFFICIAL_PIECES

    texts = [p for pieces in OFFICIAL_PIECES.values() for p in pieces] + list(TEXTS) + ["A\n </s>"]
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts * 5), model_writer=buf, vocab_size=420, model_type="bpe", byte_fallback=True,
        add_dummy_prefix=True, normalization_rule_name="identity", remove_extra_whitespaces=False,
        split_digits=True, allow_whitespace_only_pieces=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        character_coverage=1.0, hard_vocab_limit=False, minloglevel=2)
    return buf.getvalue()


def spm_folder(folder, model: bytes, legacy):
    """A tokenizer folder as Vicuna's: tokenizer.model + tokenizer_config.json (``legacy`` None: unset)."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.model").write_bytes(model)
    config = {"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
              "add_bos_token": True, "add_eos_token": False, "clean_up_tokenization_spaces": False,
              "pad_token": None, "padding_side": "right", "model_max_length": 4096}
    if legacy is not None:
        config["legacy"] = legacy
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


def slow_llama_ids(sp, text: str, legacy: bool) -> list[int]:
    """The ids transformers 4.35's slow LlamaTokenizer gives (add_special_tokens=False), written out:
    the text is cut at the special tokens and sentencepiece encodes each segment on its own. In
    legacy mode every segment gets sentencepiece's leading "▁"; otherwise a segment after a special
    token that starts with a space is encoded behind a throw-away "<unk>" so that it does not.
    (Checked against transformers 4.35.2 on every official prompt string: equal.)"""
    import re

    ids, first = [], True
    for part in re.split("(<unk>|<s>|</s>)", text):
        if part in SPECIAL:
            ids.append(SPECIAL[part])
        elif part and (legacy or first or not part.startswith(" ")):
            ids += sp.encode(part)
        elif part:
            ids += sp.encode("<unk>" + part)[len(sp.encode("<unk>")):]
        first = first and not part
    return ids


def expected_prompt(sp, task: str, legacy: bool) -> list:
    """[BOS] + each official piece's slow ids, image positions as None, then the target's ids."""
    from tests.test_prompts import OFFICIAL_PIECES

    pieces = OFFICIAL_PIECES[task]
    ids = [SPECIAL["<s>"]]
    for i, piece in enumerate(pieces):
        ids += slow_llama_ids(sp, piece, legacy) + ([None] * 2 if i < len(pieces) - 1 else [])
    return ids + slow_llama_ids(sp, "A\n </s>", legacy)


def prompt_ids(tokenizer, task: str) -> list:
    from depictqa.prompts import PromptBuilder
    from tests.test_prompts import OFFICIAL_PIECES

    query = "<image>\nQ?" if task == "description" else "Q?"
    enc = PromptBuilder(tokenizer, "depictqa-vicuna").encode(task, False, query, "A",
                                                            [2] * (len(OFFICIAL_PIECES[task]) - 1))
    return [None if m else int(i) for i, m in zip(enc.input_ids, enc.image_mask)]


@pytest.mark.parametrize("legacy", [None, True, False], ids=["legacy-unset", "legacy-true", "legacy-false"])
def test_prompt_ids_equal_the_slow_llama_tokenizer_for_every_task(sp_model, tmp_path, legacy):
    import sentencepiece as spm

    from depictqa.llms.tokenizers import load_tokenizer
    from depictqa.official import official_tokenizer
    from tests.test_prompts import OFFICIAL_PIECES

    sp = spm.SentencePieceProcessor(model_proto=sp_model)
    slow_legacy = legacy is None or legacy  # transformers 4.x: unset meant legacy
    loaded = load_tokenizer(str(spm_folder(tmp_path / "vicuna", sp_model, legacy)))  # depictqa's path
    tok = official_tokenizer(loaded)
    for task in sorted(OFFICIAL_PIECES):
        assert prompt_ids(tok, task) == expected_prompt(sp, task, slow_legacy), task
    later = "USER: Q?\n   ASSISTANT: "
    assert tok(later, add_special_tokens=False)["input_ids"] == slow_llama_ids(sp, later, slow_legacy)
    if slow_legacy:
        # the difference is real: transformers 5 alone drops the "▁" after each in-prompt </s>
        assert prompt_ids(loaded, "quality_compare") != expected_prompt(sp, "quality_compare", True)


def test_import_carries_the_slow_tokenizer_ids_into_the_checkpoint(sp_model, tmp_path):
    import sentencepiece as spm
    from transformers import LlamaConfig, LlamaForCausalLM

    from depictqa.checkpoint import load_pretrained

    sp = spm.SentencePieceProcessor(model_proto=sp_model)
    base = spm_folder(tmp_path / "vicuna", sp_model, None)  # no "legacy" key: legacy in transformers 4.x
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=sp.get_piece_size(), hidden_size=32, intermediate_size=64,
                                 num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                 max_position_embeddings=512)).save_pretrained(base)
    torch.save(official_state(2, 32, 16), tmp_path / "ckpt.pt")
    out = import_official(tmp_path / "ckpt.pt", recipe_for(base), tmp_path / "imported")
    assert (out / "tokenizer" / "tokenizer.json").is_file()
    model = load_pretrained(out)
    assert prompt_ids(model.tokenizer, "quality_single_A_noref") == expected_prompt(sp, "quality_single_A_noref", True)

    # fine-tuning from the import trains with that tokenizer, and its checkpoints carry it
    from omegaconf import OmegaConf

    from depictqa.train import fit
    from tests.conftest import write_tiny_shards

    write_tiny_shards(tmp_path / "shards", n=4, prefix="brief")
    tuned = OmegaConf.merge(recipe_for(base), {"out_dir": str(tmp_path / "run"), "trainer": {"max_steps": 1},
                                               "data": {"sources": {"brief": {"shards": str(tmp_path / "shards/*.tar")}},
                                                        "val": None, "batch_size": 2}})
    last = fit(tuned, init=out)
    assert (last / "tokenizer" / "tokenizer.json").is_file()
    again = load_pretrained(last)
    assert prompt_ids(again.tokenizer, "quality_compare") == expected_prompt(sp, "quality_compare", True)
