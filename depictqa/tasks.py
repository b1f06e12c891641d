"""The task table: which images a task shows, in which order, under which tag and role.

Every module that needs to know what a task's images are reads it here: prompts (labels and tags),
the shard schema (which image files a sample carries), the collators (the per-batch image roles),
the Assessor, conditioners and objectives. Nothing else decides roles from a task string.

=========  =========  =======================================  ==========================
task       reference  slots in prompt order (key: role)         official DepictQA names
=========  =========  =======================================  ==========================
assess     no         a: image                                  quality_single_{A,B}_noref
assess     yes        ref: reference, a: image                  quality_single_{A,B}
compare    no         a: a, b: b                                quality_compare_noref
compare    yes        ref: reference, a: a, b: b                quality_compare
caption    no         img: image                                description
=========  =========  =======================================  ==========================

A slot's ``key`` is where a training shard stores the image (``ref.png``, ``a.png``, ...) and
what an inference request names it by; its ``role`` is what the image is to the question.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


class TaskError(ValueError):
    """A task name (or image count) that the table does not know."""


@dataclass(frozen=True)
class Slot:
    key: str    # ref | a | b | img
    role: str   # reference | image | a | b
    label: str  # how the prompt names it ("Image A")
    tag: str    # the tag its tokens sit between (<Img-A> ... </Img-A>)


REFERENCE = Slot("ref", "reference", "Reference Image", "Img-Reference")
IMAGE = Slot("a", "image", "Image", "Img")
CAPTIONED = Slot("img", "image", "Image", "Img")
IMAGE_A = Slot("a", "a", "Image A", "Img-A")
IMAGE_B = Slot("b", "b", "Image B", "Img-B")


@dataclass(frozen=True)
class TaskSpec:
    """One row of the table: a task kind, whether a reference is shown, and its image slots."""

    kind: str  # assess | compare | caption
    reference: bool
    slots: tuple[Slot, ...]
    official: str  # the official DepictQA task name of this row

    @property
    def keys(self) -> tuple[str, ...]:
        """Image keys in prompt order."""
        return tuple(s.key for s in self.slots)

    @property
    def compared(self) -> tuple[int, ...]:
        """Indices (into ``slots``) of the images the question judges (not the reference)."""
        return tuple(i for i, s in enumerate(self.slots) if s.role != "reference")

    @property
    def quality(self) -> bool:
        """A quality question (assess / compare), not a caption."""
        return self.kind != "caption"


KINDS: tuple[str, ...] = ("assess", "compare", "caption")

TABLE: dict[tuple[str, bool], TaskSpec] = {
    ("assess", True): TaskSpec("assess", True, (REFERENCE, IMAGE), "quality_single_A"),
    ("assess", False): TaskSpec("assess", False, (IMAGE,), "quality_single_A_noref"),
    ("compare", True): TaskSpec("compare", True, (REFERENCE, IMAGE_A, IMAGE_B), "quality_compare"),
    ("compare", False): TaskSpec("compare", False, (IMAGE_A, IMAGE_B), "quality_compare_noref"),
    ("caption", False): TaskSpec("caption", False, (CAPTIONED,), "description"),
}

# official task name -> (kind, reference). quality_single_B* assess the official record's image_B
# (the converter stores it under ``a``, like every assessed image).
OFFICIAL: dict[str, tuple[str, bool]] = {
    "quality_single_A": ("assess", True),
    "quality_single_B": ("assess", True),
    "quality_single_A_noref": ("assess", False),
    "quality_single_B_noref": ("assess", False),
    "quality_compare": ("compare", True),
    "quality_compare_noref": ("compare", False),
    "description": ("caption", False),
}


# official task name -> {image key: the official record field holding that image}, prompt order
OFFICIAL_FIELDS: dict[str, dict[str, str]] = {
    "quality_single_A": {"ref": "image_ref", "a": "image_A"},
    "quality_single_B": {"ref": "image_ref", "a": "image_B"},
    "quality_single_A_noref": {"a": "image_A"},
    "quality_single_B_noref": {"a": "image_B"},
    "quality_compare": {"ref": "image_ref", "a": "image_A", "b": "image_B"},
    "quality_compare_noref": {"a": "image_A", "b": "image_B"},
    "description": {"img": "image"},
}


def spec(task: str | TaskSpec, reference: bool = False) -> TaskSpec:
    """The table row for ``task``: one of :data:`KINDS` (with ``reference``; a caption never has
    one) or an official name (which says itself whether there is a reference)."""
    if isinstance(task, TaskSpec):
        return task
    if task in OFFICIAL:
        return TABLE[OFFICIAL[task]]
    if task in KINDS:
        return TABLE[(task, bool(reference) and task != "caption")]
    raise TaskError(f"unknown task {task!r}; valid: {', '.join([*KINDS, *OFFICIAL])}")


@dataclass(frozen=True)
class ImageLayout:
    """What each image of a batch is, for everything between encoder and LM that looks across
    images. All tuples run over the batch's images in order of appearance (sample by sample, each
    in prompt order): ``sample`` is the owning sample's index, ``role`` the slot role,
    ``reference`` the index of that sample's reference image and ``other`` the index of the other
    compared image (``None`` where there is none; a reference has neither)."""

    sample: tuple[int, ...]
    role: tuple[str, ...]
    reference: tuple[int | None, ...]
    other: tuple[int | None, ...]

    @classmethod
    def of(cls, tasks: Sequence[TaskSpec]) -> "ImageLayout":
        sample, role, ref, other = [], [], [], []
        start = 0
        for i, task in enumerate(tasks):
            ref_at = next((start + j for j, s in enumerate(task.slots) if s.role == "reference"), None)
            compared = [start + j for j in task.compared]
            for j, slot in enumerate(task.slots):
                sample.append(i)
                role.append(slot.role)
                if slot.role == "reference":
                    ref.append(None)
                    other.append(None)
                    continue
                ref.append(ref_at)
                others = [c for c in compared if c != start + j]
                other.append(others[0] if task.kind == "compare" else None)
            start += len(task.slots)
        return cls(tuple(sample), tuple(role), tuple(ref), tuple(other))

    def __len__(self) -> int:
        return len(self.sample)
