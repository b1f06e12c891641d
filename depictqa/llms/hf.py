"""Any Hugging Face causal LM (``AutoModelForCausalLM``), optionally LoRA-tuned with PEFT.

From a local folder or hub id (``path``), or built from a config dict with random weights
(``config``: from-scratch tiny models and tests). The LM head is applied only where a caller asks
(:meth:`HFLanguageModel.logits`), so training computes vocabulary logits at answer positions only.
``embed_init``/``freeze_embeddings`` give a from-config model pretrained word embeddings
(:mod:`depictqa.llms.words`); ``output_vocab: answers`` an output head over the words its training
answers use (:mod:`depictqa.llms.answer_head`).
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn

from depictqa.llms.answer_head import AnswerHead, answer_head, restrict_on_load
from depictqa.llms.tokenizers import NAMED, load_tokenizer, train_bpe
from depictqa.llms.words import init_embeddings


class HFLanguageModel(nn.Module):
    def __init__(self, model: nn.Module, tokenizer: Any, freeze_embeddings: bool = False,
                 output_vocab: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.hidden_size: int = self._base().config.hidden_size
        self.freeze_embeddings = freeze_embeddings
        self.output_vocab = output_vocab  # "answers": `fit` restricts the head to the data's answer tokens
        if freeze_embeddings:
            self._base().get_input_embeddings().weight.requires_grad_(False)
        self.register_load_state_dict_pre_hook(restrict_on_load)

    def requires_grad_(self, requires_grad: bool = True) -> "HFLanguageModel":
        """As ``nn.Module.requires_grad_``, except that frozen token embeddings stay frozen: the
        builder sets a whole part trainable (``train: full``) after building it."""
        super().requires_grad_(requires_grad)
        if self.freeze_embeddings:
            self._base().get_input_embeddings().weight.requires_grad_(False)
        return self

    def _base(self) -> nn.Module:
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    @property
    def is_lora(self) -> bool:
        return hasattr(self.model, "peft_config")

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """[B, L] -> [B, L, hidden]"""
        return self._base().get_input_embeddings()(ids)

    def hidden(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None,
               position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """[B, L, hidden] -> last hidden states [B, L, hidden].

        With ``attention_mask=None`` and restarting ``position_ids``, transformers treats a row as
        several packed sequences and keeps attention inside each one.
        """
        out = self._base().get_decoder()(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                          position_ids=position_ids, use_cache=False)
        return out.last_hidden_state

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """[..., hidden] -> [..., vocab]"""
        return self._base().get_output_embeddings()(hidden)

    def answer_logits(self, hidden: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """hidden [N, hidden], target ids [N] -> (logits [N, C], target [N] in 0..C-1) over the C
        tokens the head scores: the vocabulary, or the answer tokens of an :class:`AnswerHead`."""
        head = self._base().get_output_embeddings()
        if isinstance(head, AnswerHead):
            return head.scores(hidden), head.rows(target)
        return head(hidden), target

    def output_head_name(self) -> str:
        """The output head's name among this module's submodules (``model.lm_head``, ...)."""
        head = self._base().get_output_embeddings()
        return next(name for name, module in self.named_modules() if module is head)

    def restrict_output(self, ids: torch.Tensor | Iterable[int]) -> None:
        """Score only ``ids`` from now on (:class:`AnswerHead`); rows the head has are kept. Not
        for heads tied to the input embeddings (the rows would no longer be the embeddings')."""
        base = self._base()
        if base.config.tie_word_embeddings:
            raise ValueError("llm 'hf': output_vocab needs an output head of its own (tie_word_embeddings: false)")
        current = base.get_output_embeddings()
        ids = sorted({int(i) for i in ids})
        if isinstance(current, AnswerHead) and current.ids.tolist() == ids:
            return  # already this head: keep its parameter (an optimiser may hold it)
        head = answer_head(current, ids, base.get_input_embeddings().weight.shape[0], std=base.config.initializer_range)
        head.weight.requires_grad_(current.weight.requires_grad)
        base.set_output_embeddings(head)

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, **kwargs: Any) -> Any:
        return self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                          position_ids=position_ids, **kwargs)

    def generate(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any) -> Any:
        kwargs.setdefault("pad_token_id", self.tokenizer.pad_token_id)
        kwargs.setdefault("eos_token_id", self.tokenizer.eos_token_id)
        return self.model.generate(inputs_embeds=inputs_embeds, attention_mask=attention_mask, **kwargs)

    def wrap_classes(self) -> set[type[nn.Module]]:
        return {type(self._base().get_decoder().layers[0])}


def build_hf(path: str | None = None, config: dict[str, Any] | None = None,
             tokenizer: str | dict[str, Any] | None = None, lora: dict[str, Any] | None = None,
             attn_implementation: str = "sdpa", dtype: str = "float32", gradient_checkpointing: bool = False,
             trust_remote_code: bool = False, texts: Iterable[str] | None = None, embed_init: str | None = None,
             freeze_embeddings: bool = False, output_vocab: str | None = None) -> HFLanguageModel:
    """Hugging Face causal LM from ``path`` (folder or hub id) or ``config`` (random weights).

    ``tokenizer``: a folder/hub id, a name of :data:`~depictqa.llms.tokenizers.NAMED` (``minilm``),
    ``{"train": {"vocab_size": N}}`` to train a BPE on ``texts`` (supplied by the library), or None
    for ``path``'s own. ``lora``: ``{r, alpha, dropout, targets}``. ``embed_init``: fill the token
    embeddings of a ``config`` model from a pretrained source (``minilm``, with ``tokenizer: minilm``);
    ``freeze_embeddings``: keep the token embeddings (and a head tied to them) fixed in training.
    ``output_vocab``: ``answers`` for a ``config`` model with an untied head: ``depictqa fit`` then
    scores only the tokens its data's answers use (:mod:`depictqa.llms.answer_head`).
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    if attn_implementation == "depictqa_varlen":
        import depictqa.attention  # noqa: F401  registers the name (and its mask function) with transformers
    if output_vocab not in (None, "answers"):
        raise ValueError(f"llm 'hf': output_vocab must be 'answers' or null, got {output_vocab!r}")
    if output_vocab and path is not None:
        raise ValueError("llm 'hf': output_vocab: answers is for models built from 'config' (a pretrained "
                         "head keeps its whole vocabulary)")
    tok = _tokenizer(path, tokenizer, texts)
    torch_dtype = getattr(torch, dtype)
    if path is not None:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, attn_implementation=attn_implementation,
                                                     trust_remote_code=trust_remote_code)
    elif config is not None:
        cfg = dict(config)
        model_type = cfg.pop("model_type", "llama")
        cfg.setdefault("vocab_size", len(tok))
        cfg.update(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        hf_config = AutoConfig.for_model(model_type, **cfg)
        hf_config._attn_implementation = attn_implementation
        model = AutoModelForCausalLM.from_config(hf_config, dtype=torch_dtype)
    else:
        raise ValueError("llm 'hf' needs 'path' (a folder or hub id) or 'config'")
    if model.get_input_embeddings().weight.shape[0] < len(tok):
        model.resize_token_embeddings(len(tok))
    if embed_init is not None:
        if path is not None:
            raise ValueError("llm 'hf': embed_init is for models built from 'config'; a 'path' model has its own "
                             "embeddings")
        init_embeddings(model.get_input_embeddings(), tok, embed_init, std=model.config.initializer_range)
    if output_vocab and model.config.tie_word_embeddings:
        raise ValueError("llm 'hf': output_vocab: answers needs an output head of its own: set "
                         "config.tie_word_embeddings: false")
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if lora:
        model = _apply_lora(model, **lora)
    return HFLanguageModel(model, tok, freeze_embeddings=freeze_embeddings, output_vocab=output_vocab)


def _tokenizer(path: str | None, spec: str | dict[str, Any] | None, texts: Iterable[str] | None) -> Any:
    if isinstance(spec, str):
        return NAMED[spec]() if spec in NAMED else load_tokenizer(spec)
    if spec is None:
        if path is None:
            raise ValueError("llm 'hf' built from 'config' needs a 'tokenizer' (a folder or {train: {...}})")
        return load_tokenizer(path)
    if "train" in spec:
        if texts is None:
            raise ValueError("llm.tokenizer.train needs texts to train on (the data's conversations)")
        return train_bpe(texts, **dict(spec["train"]))
    if "path" in spec:
        return load_tokenizer(spec["path"])
    raise ValueError(f"llm.tokenizer: expected a path or {{train: ...}}, got keys {sorted(spec)}")


def _apply_lora(model: nn.Module, r: int = 16, alpha: int = 16, dropout: float = 0.05,
                targets: list[str] | None = None) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout,
                        target_modules=list(targets or ["q_proj", "k_proj", "v_proj", "o_proj"]),
                        task_type="CAUSAL_LM")
    return get_peft_model(model, config)
