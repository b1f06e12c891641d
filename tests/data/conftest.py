"""Fixtures of the data tests: tiny shards built in tmp_path."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
from data_builders import tiny_sample

from depictqa.data.shards import write_shards


@pytest.fixture
def make_source(tmp_path: Path) -> Callable[..., list[str]]:
    """make_source(name, n_samples, samples_per_shard, **sample_kwargs) -> shard paths."""

    def make(name: str, n: int, per_shard: int = 10, **kwargs: object) -> list[str]:
        samples = (tiny_sample(f"{name}_{i:05d}", source=name, **kwargs) for i in range(n))
        return write_shards(samples, tmp_path / name, prefix=name, samples_per_shard=per_shard)

    return make
