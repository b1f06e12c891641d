"""The task table: every official name resolves, prompts and shards follow its slots, and the
per-batch layout gives each image its role."""

import pytest

from depictqa.tasks import KINDS, OFFICIAL, OFFICIAL_FIELDS, TABLE, ImageLayout, TaskError, spec
from tests.conftest import TEXTS


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_every_official_name_resolves_to_a_row_with_its_fields(name):
    row = spec(name)
    assert (row.kind, row.reference) == OFFICIAL[name]
    assert row.keys == tuple(OFFICIAL_FIELDS[name])            # official image fields, in prompt order
    assert spec(row.official) is row                            # the row's own official name maps back
    assert ("ref" in row.keys) == row.reference == (name != "description" and not name.endswith("_noref"))


def test_our_names_take_the_reference_flag_and_a_caption_never_has_one():
    assert spec("assess", True).keys == ("ref", "a") and spec("assess").keys == ("a",)
    assert spec("compare", True).keys == ("ref", "a", "b") and spec("compare").keys == ("a", "b")
    assert spec("caption", True) is spec("caption") and spec("caption").keys == ("img",)
    assert [s.role for s in spec("compare", True).slots] == ["reference", "a", "b"]
    assert {s.role for r in TABLE.values() for s in r.slots} == {"reference", "image", "a", "b"}
    with pytest.raises(TaskError, match="unknown task 'judge'; valid: assess, compare, caption, quality_"):
        spec("judge")


def test_layout_gives_each_image_its_sample_role_reference_and_partner():
    tasks = [spec("compare", True), spec("assess"), spec("caption"), spec("compare"), spec("assess", True)]
    layout = ImageLayout.of(tasks)
    assert len(layout) == sum(len(t.slots) for t in tasks) == 9
    assert layout.sample == (0, 0, 0, 1, 2, 3, 3, 4, 4)
    assert layout.role == ("reference", "a", "b", "image", "image", "a", "b", "reference", "image")
    assert layout.reference == (None, 0, 0, None, None, None, None, None, 7)
    assert layout.other == (None, 2, 1, None, None, 6, 5, None, None)


@pytest.mark.parametrize("template", ["depictqa-vicuna", "compact"])
@pytest.mark.parametrize("key", sorted(TABLE), ids=lambda k: f"{k[0]}-{'ref' if k[1] else 'noref'}")
def test_prompts_are_built_from_the_table(key, template):
    from depictqa.llms.tokenizers import train_bpe
    from depictqa.prompts import PromptBuilder

    row = TABLE[key]
    tok = _tokenizer(train_bpe)
    pieces, _ = PromptBuilder(tok, template).pieces(row, row.reference, "Q?", "A")
    assert len(pieces) == len(row.slots) + 1
    for piece, slot in zip(pieces, row.slots):                   # each slot opens with its label and tag
        # (the official description layout puts its one image in the user turn, without a label)
        assert piece.endswith(f"{slot.label}: <{slot.tag}>" if row.quality or template == "compact" else f"<{slot.tag}>")
    for piece, slot in zip(pieces[1:], row.slots):               # and the next piece closes it
        assert piece.startswith(f"</{slot.tag}>")
    enc = PromptBuilder(tok, template).encode(row, row.reference, "Q?", "A", [3] * len(row.slots))
    assert int(enc.image_mask.sum()) == 3 * len(row.slots)


def test_shard_schema_asks_for_the_table_keys():
    from depictqa.data.schema import SchemaError, validate_record

    conv = [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]
    for kind in KINDS:
        for reference in (False, True):
            row = spec(kind, reference)
            record = {"task": kind, "reference": reference, "conversations": conv}
            validate_record(record, set(row.keys), "s")
            with pytest.raises(SchemaError, match=f"needs image"):
                validate_record(record, set(row.keys[:-1]), "s")


_TOK = {}


def _tokenizer(train):
    if "tok" not in _TOK:
        _TOK["tok"] = train(TEXTS, vocab_size=320)
    return _TOK["tok"]
