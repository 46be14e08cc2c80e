"""Safe YAML parsing that remembers where every key and value stood in the file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[Any, ...]


@dataclass
class SourceMap:
    """Line/column (1-based) of every key and value, addressed by their path in the document."""

    file: str
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    block_scalars: set[Path] = field(default_factory=set)

    def locate(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """The position of ``path`` (its key if ``key``), else of its nearest known ancestor."""
        path = tuple(path)
        while True:
            table = (self.keys, self.values) if key else (self.values, self.keys)
            for t in table:
                if path in t:
                    return t[path]
            if not path:
                return (1, 1)
            path = path[:-1]


class DuplicateKey(Exception):
    def __init__(self, key: Any, line: int, col: int, first_line: int) -> None:
        super().__init__(key)
        self.key, self.line, self.col, self.first_line = key, line, col, first_line


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def parse_yaml(text: str, file: str) -> tuple[Any, SourceMap, list[DuplicateKey]]:
    """Parse one YAML document safely; return the data, its source map and duplicate keys.

    Raises ``yaml.YAMLError`` (with a ``problem_mark``) for text that is not YAML.
    """
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.YAMLError:
        loader.dispose()
        raise
    smap = SourceMap(file)
    duplicates: list[DuplicateKey] = []
    if root is None:
        return None, smap, duplicates

    def convert(node: yaml.Node, path: Path) -> Any:
        smap.values[path] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            loader.flatten_mapping(node)
            result: dict[Any, Any] = {}
            first_seen: dict[Any, int] = {}
            for key_node, value_node in node.value:
                key = loader.construct_object(key_node, deep=True)
                if not isinstance(key, (str, int, float, bool)) and key is not None:
                    key = str(key)
                line, col = _mark(key_node)
                if key in result:
                    duplicates.append(DuplicateKey(key, line, col, first_seen[key]))
                first_seen.setdefault(key, line)
                smap.keys[path + (key,)] = (line, col)
                result[key] = convert(value_node, path + (key,))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [convert(item, path + (i,)) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
            smap.block_scalars.add(path)
        return loader.construct_object(node, deep=True)

    try:
        return convert(root, ()), smap, duplicates
    finally:
        loader.dispose()
