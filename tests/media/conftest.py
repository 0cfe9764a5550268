"""Fixtures for the media tests: a MediaStore over a real run directory in tmp_path."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from wandblite.media import MediaStore, read_blob


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "run"
    d.mkdir()
    return d


@pytest.fixture
def store(run_dir: Path) -> Iterator[MediaStore]:
    s = MediaStore(run_dir)
    yield s
    s.close()


def _pil(run_dir: Path, ref: dict[str, Any]) -> Any:
    from PIL import Image

    im = Image.open(io.BytesIO(read_blob(run_dir, ref)))
    im.load()
    return im


def _table(run_dir: Path, ref: dict[str, Any]) -> dict[str, Any]:
    return json.loads(read_blob(run_dir, ref))  # type: ignore[no-any-return]


@pytest.fixture
def pil() -> Callable[[Path, dict[str, Any]], Any]:
    """pil(run_dir, ref): the stored image bytes opened (and loaded) with Pillow."""
    return _pil


@pytest.fixture
def table() -> Callable[[Path, dict[str, Any]], dict[str, Any]]:
    """table(run_dir, ref): the stored table file parsed."""
    return _table
