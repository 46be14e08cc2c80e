"""The model table shipped with the package: context windows, output limits, capabilities."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

_SNAPSHOT_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")
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


def load_data_file(name: str) -> dict[str, Any]:
    """A JSON table from ``flowrun/data`` without its ``_comment`` keys."""
    text = resources.files("flowrun").joinpath("data", name).read_text(encoding="utf-8")
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
    return ModelInfo(name=name, **entry) if entry else None
