"""Functions that workflows converted from promptflow call in their ``tool`` steps.

They are part of flowrun's public surface: converted files name them as
``flowrun.convert.pf_runtime:<function>``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["not_converted", "prompt_text"]


def prompt_text(text: Any) -> str:
    """A promptflow ``prompt`` node: its template is the step's ``text`` argument, rendered by
    flowrun; the output is that text (values that are not text print as Jinja prints them)."""
    return text if isinstance(text, str) else str(text)


def not_converted(node: str, reason: str) -> None:
    """Stands in for a promptflow node that could not be converted: running it fails."""
    raise RuntimeError(f"promptflow node '{node}' was not converted: {reason}")
