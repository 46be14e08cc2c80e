"""Safe YAML parsing that remembers where every key and value stood in the file.

The document is composed with libyaml (``CSafeLoader``) when it is available, which is
several times faster than the pure-Python parser; a document that fails to parse is parsed
again with the pure-Python ``SafeLoader``, whose error messages are more precise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[Any, ...]

_FastLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_PLAIN = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


@dataclass
class SourceMap:
    """Line/column (1-based) of every key and value, addressed by their path in the document."""

    file: str
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    # Paths of literal block scalars (``|``): line N of the string is file line (mark + N).
    block_scalars: set[Path] = field(default_factory=set)
    lines: list[str] = field(default_factory=list)

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

    def locate_in_string(self, path: Path, lineno: int | None) -> tuple[int, int]:
        """The position of line ``lineno`` (1-based) of the string value at ``path``.

        Exact for literal block scalars (``|``), where each line of the string is a line of
        the file; any other string is reported at its start.
        """
        line, col = self.locate(path)
        if not lineno or tuple(path) not in self.block_scalars:
            return line, col
        line += lineno
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        return line, len(text) - len(text.lstrip(" ")) + 1


class DuplicateKey(Exception):
    def __init__(self, key: Any, line: int, col: int, first_line: int) -> None:
        super().__init__(key)
        self.key, self.line, self.col, self.first_line = key, line, col, first_line


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _compose(text: str) -> tuple[Any, yaml.Node | None]:
    loader = _FastLoader(text)
    try:
        return loader, loader.get_single_node()
    except yaml.YAMLError:
        loader.dispose()
    # Parse again with the pure-Python parser: its messages name what it found.
    slow = yaml.SafeLoader(text)
    try:
        return slow, slow.get_single_node()
    except yaml.YAMLError:
        slow.dispose()
        raise


def parse_yaml(text: str, file: str) -> tuple[Any, SourceMap, list[DuplicateKey]]:
    """Parse one YAML document safely; return the data, its source map and duplicate keys.

    Raises ``yaml.YAMLError`` (with a ``problem_mark``) for text that is not YAML.
    """
    loader, root = _compose(text)
    smap = SourceMap(file, lines=text.splitlines())
    duplicates: list[DuplicateKey] = []
    if root is None:
        loader.dispose()
        return None, smap, duplicates

    def convert(node: yaml.Node, path: Path) -> Any:
        smap.values[path] = _mark(node)
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _PLAIN:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"could not determine a constructor for the tag {node.tag!r}",
                node.start_mark,
            )
        if isinstance(node, yaml.MappingNode):
            loader.flatten_mapping(node)
            result: dict[Any, Any] = {}
            first_seen: dict[Any, int] = {}
            for key_node, value_node in node.value:
                # Keys are text: a step called `no`, `on` or `1` keeps that name.
                if isinstance(key_node, yaml.ScalarNode):
                    key = key_node.value
                else:
                    key = str(loader.construct_object(key_node, deep=True))
                line, col = _mark(key_node)
                if key in result:
                    duplicates.append(DuplicateKey(key, line, col, first_seen[key]))
                first_seen.setdefault(key, line)
                smap.keys[path + (key,)] = (line, col)
                result[key] = convert(value_node, path + (key,))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [convert(item, path + (i,)) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.ScalarNode) and node.style == "|":
            smap.block_scalars.add(path)
        return loader.construct_object(node, deep=True)

    try:
        return convert(root, ()), smap, duplicates
    finally:
        loader.dispose()


_YAML_HINTS = (
    ("while scanning a quoted scalar", "is a closing quote missing?"),
    ("while scanning a double-quoted scalar", "is a closing quote missing?"),
    ("while scanning a single-quoted scalar", "is a closing quote missing?"),
    ("while parsing a flow mapping", "is a closing '}' missing?"),
    ("while parsing a flow sequence", "is a closing ']' missing?"),
    ("mapping values are not allowed", "quote a value that contains ': '"),
    (
        "that cannot start any token",
        "indent with spaces, not tabs; quote values starting with @ or `",
    ),
    ("expected <block end>", "check the indentation of this line"),
    ("undefined alias", "define the &anchor before using *alias"),
    ("could not determine a constructor", "flowrun reads plain YAML: remove the !tag"),
)


def describe_yaml_error(exc: yaml.YAMLError, text: str) -> tuple[int, int, str]:
    """Line, column and a one-line message (with a hint) for a YAML syntax error.

    The position is where the problem is, except when the parser only noticed it at the end
    of the file (an unclosed quote or bracket): then it is where the unclosed thing starts.
    """
    problem_mark = getattr(exc, "problem_mark", None)
    context_mark = getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None) or ""
    mark = problem_mark or context_mark
    at_end = problem_mark is not None and problem_mark.index >= len(text.rstrip())
    if at_end and context_mark is not None:
        mark = context_mark
    message = f"invalid YAML: {problem}" + (f" {context}" if context else "")
    if at_end and context_mark is not None:
        message += " that starts here"
    hint = next((h for key, h in _YAML_HINTS if key in f"{problem} {context}"), None)
    if hint:
        message += f"; {hint}"
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    return line, col, message
