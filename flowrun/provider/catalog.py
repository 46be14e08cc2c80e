"""The model table shipped with the package: context windows, output limits, capabilities."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

_SNAPSHOT_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")
_O_SERIES = re.compile(r"^(ft:)?o\d")
DEFAULT_EMBED_MODEL = "text-embedding-3-small"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    context_window: int
    max_output_tokens: int
    reasoning: bool = False
    encoding: str = "o200k_base"
    vision: bool = False
    embedding: bool = False
    dimensions: int | None = None
    image_tokens: dict[str, float] | None = None
    rejects: tuple[str, ...] = ()  # request parameters the model refuses, beyond the usual
    system_messages: bool = True  # False: system and developer messages are refused


def load_data_file(name: str) -> dict[str, Any]:
    """A JSON table from ``flowrun/data`` without its ``_comment`` keys.

    Read next to this module (the package is installed as files; ``importlib.resources``
    would cost a cold ``validate`` more than the read).
    """
    text = (Path(__file__).parent / "data" / name).read_text(encoding="utf-8")
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def base_model_name(model: str, known: Any) -> str:
    """Resolve a dated snapshot (``gpt-4o-2024-08-06``) to its base model when the base is known."""
    if model in known:
        return model
    stripped = _SNAPSHOT_SUFFIX.sub("", model)
    return stripped if stripped in known else model


@lru_cache(maxsize=1)
def _models() -> dict[str, dict[str, Any]]:
    return load_data_file("models.json")


@lru_cache(maxsize=256)
def model_info(model: str | None) -> ModelInfo | None:
    """What the table knows about ``model`` (snapshots resolve to their base), or None."""
    if not model:
        return None
    table = _models()
    name = base_model_name(model, table)
    entry = table.get(name)
    if not entry:
        return None
    return ModelInfo(name=name, **{**entry, "rejects": tuple(entry.get("rejects", ()))})


@lru_cache(maxsize=256)
def checked_model_info(model: str) -> ModelInfo | None:
    """What validation holds ``model`` to: its table entry; a fine-tuned ``ft:BASE:...``
    as BASE; else an o-series name (``o3-pro``, ``ft:o1:...``) as a reasoning model whose
    limits are unknown. None for other unknown models (e.g. of compatible servers)."""
    info = model_info(model)
    if info is None and model.startswith("ft:"):
        info = model_info(model.split(":")[1])
    if info is None and _O_SERIES.match(model):
        info = ModelInfo(model, context_window=0, max_output_tokens=0, reasoning=True, vision=True)
    return info
