"""A server as the checks and the engine see it (``ServerEntry``), and keys written in a file
where only the name of their environment variable belongs.

A server's key is never written in a workflow or config file: ``api_key`` (and its spellings)
under ``servers:`` is reported and dropped before the file is read into its models, so the
one problem is the clear one, not "unknown key".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flowrun.errors import Problem
from flowrun.format.spec import ServerSpec
from flowrun.format.yaml_source import SourceMap

KEY_FIELDS = ("api_key", "apikey", "key", "token", "api_token", "secret")
NO_KEYS = (
    "a key is never written in a file: put it in an environment variable and name that "
    "variable in api_key_env"
)


def keys_in_file(data: dict[str, Any], smap: SourceMap) -> list[Problem]:
    """Problems for keys written under ``servers:`` (removed from ``data``)."""
    problems: list[Problem] = []
    servers = data.get("servers")
    if not isinstance(servers, dict):
        return problems
    for name, entry in servers.items():
        if not isinstance(entry, dict):
            continue
        for field in [k for k in entry if str(k).lower() in KEY_FIELDS]:
            line, col = smap.locate(("servers", name, field), key=True)
            problems.append(Problem(smap.file, line, col, f"server '{name}': {field}: {NO_KEYS}"))
            del entry[field]
    return problems


@dataclass
class ServerEntry:
    """A server a workflow can use, and where it is written."""

    name: str
    spec: ServerSpec
    source: SourceMap
    in_config: bool = False  # written in the user configuration file

    def where(self, *keys: Any, key: bool = False) -> tuple[str, int, int]:
        line, col = self.source.locate(("servers", self.name, *keys), key=key)
        return self.source.file, line, col

    def problem(self, keys: tuple[Any, ...], message: str, *, key: bool = False) -> Problem:
        file, line, col = self.where(*keys, key=key)
        return Problem(file, line, col, f"server '{self.name}': {message}")
