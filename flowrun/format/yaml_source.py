"""Safe YAML parsing that remembers where every key and value stood in the file.

The document is composed with libyaml (``CSafeLoader``) when it is available, which is
several times faster than the pure-Python parser; a document that fails to parse is parsed
again with the pure-Python ``SafeLoader``, whose error messages are more precise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from flowrun.errors import DuplicateKey as DuplicateKey
from flowrun.errors import YamlTooLarge as YamlTooLarge

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


# A workflow has hundreds of values; aliases that expand beyond this are an attack (a
# "billion laughs" document), refused before anything is built.
MAX_VALUES = 100_000
# A workflow, schema or inputs file nests a few levels; deeper is a mistake or an attack on
# every recursive reader after the parser.
MAX_NESTING = 100
_MERGE = "tag:yaml.org,2002:merge"


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _too_deep(line: int, col: int) -> YamlTooLarge:
    return YamlTooLarge(
        line,
        col,
        f"nested more than {MAX_NESTING} levels deep, the limit of a file flowrun reads",
    )


def bracket_depth_position(text: str, limit: int = MAX_NESTING) -> tuple[int, int] | None:
    """Line and column of the first ``[`` or ``{`` (outside quotes) nested deeper than
    ``limit``, in JSON or flow-style YAML; None when there is none. Only for error messages."""
    depth, line, start, quote, escaped = 0, 1, 0, "", False
    for index, char in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif char == "\\" and quote == '"':
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
            if depth > limit:
                return line, index - start + 1
        elif char in "]}":
            depth -= 1
        if char == "\n":
            line, start = line + 1, index + 1
    return None


def _compose(text: str) -> tuple[Any, yaml.Node | None]:
    loader = _FastLoader(text)
    try:
        return loader, loader.get_single_node()
    except yaml.YAMLError as exc:
        loader.dispose()
        mark = getattr(exc, "problem_mark", None)
        if "maximum nesting depth" in str(getattr(exc, "problem", "")) and mark is not None:
            # libyaml's own limit; its mark is not the place in flow style ([[[...)
            where = bracket_depth_position(text) or (mark.line + 1, mark.column + 1)
            raise _too_deep(*where) from None
    # Parse again with the pure-Python parser: its messages name what it found.
    slow = yaml.SafeLoader(text)
    try:
        return slow, slow.get_single_node()
    except yaml.YAMLError:
        slow.dispose()
        raise
    except RecursionError:
        slow.dispose()
        raise _too_deep(1, 1) from None


def _check_expansion(root: yaml.Node) -> dict[int, set[int]]:
    """Refuse a node graph that expands to more than ``MAX_VALUES`` values, or into itself.

    Aliases share nodes, so sizes are memoized per node: the pass is linear in the text.
    Returns the ids of each mapping's own key nodes (not merged in), read before any merge.
    """
    own_keys: dict[int, set[int]] = {}
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    aliased = False  # whether a collection is reached twice (through an alias)

    def size(node: yaml.Node, depth: int) -> int:
        nonlocal aliased
        if not isinstance(node, yaml.CollectionNode):
            return 1
        if depth > MAX_NESTING:
            raise _too_deep(*_mark(node))
        known = sizes.get(id(node))
        if known is not None:
            aliased = True
            return known
        if id(node) in open_nodes:
            line, col = _mark(node)
            raise YamlTooLarge(
                line,
                col,
                "this value contains an alias to itself; YAML aliases must not be recursive",
            )
        open_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            own_keys[id(node)] = {id(k) for k, _ in node.value if k.tag != _MERGE}
            children = [n for pair in node.value for n in pair]
        else:
            children = node.value
        total = 1
        for child in children:
            total += size(child, depth + 1)
            if total > MAX_VALUES:
                line, col = _mark(node)
                raise YamlTooLarge(
                    line,
                    col,
                    (
                        f"through its aliases this value expands to more than {MAX_VALUES:,} "
                        "values; flowrun refuses documents that large (write the data out, or "
                        "use fewer nested aliases)"
                    )
                    if aliased
                    else (
                        f"this value holds more than {MAX_VALUES:,} values (keys, items and "
                        "scalars), the limit of a file flowrun reads; split the file"
                    ),
                )
        open_nodes.discard(id(node))
        sizes[id(node)] = total
        return total

    size(root, 1)
    return own_keys


def parse_yaml(text: str, file: str) -> tuple[Any, SourceMap, list[DuplicateKey]]:
    """Parse one YAML document safely; return the data, its source map and duplicate keys.

    Explicit keys override keys merged in with ``<<:``; a key written twice is a duplicate.
    Raises ``yaml.YAMLError`` (with a ``problem_mark``) for text that is not YAML, and
    ``YamlTooLarge`` for aliases that expand beyond ``MAX_VALUES`` values.
    """
    loader, root = _compose(text)
    smap = SourceMap(file, lines=text.splitlines())
    duplicates: list[DuplicateKey] = []
    if root is None:
        loader.dispose()
        return None, smap, duplicates
    own_keys = _check_expansion(root)
    flat: dict[int, dict[str, tuple[yaml.Node, yaml.Node]]] = {}

    def pairs(node: yaml.MappingNode) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """The mapping's keys after merging (once per node, however often it is aliased)."""
        known = flat.get(id(node))
        if known is not None:
            return known
        explicit = own_keys[id(node)]
        loader.flatten_mapping(node)  # merged pairs first, then the node's own
        chosen: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            # Keys are text: a step called `no`, `on` or `1` keeps that name.
            if isinstance(key_node, yaml.ScalarNode):
                key = key_node.value
            else:
                key = str(loader.construct_object(key_node, deep=True))
            if id(key_node) in explicit:
                line, col = _mark(key_node)
                if key in first_line:
                    duplicates.append(DuplicateKey(key, line, col, first_line[key]))
                first_line.setdefault(key, line)
            chosen[key] = (key_node, value_node)  # a later pair overrides an earlier one
        flat[id(node)] = chosen
        return chosen

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
            result: dict[Any, Any] = {}
            for key, (key_node, value_node) in pairs(node).items():
                smap.keys[path + (key,)] = _mark(key_node)
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
    ("expected a single document", "a workflow is one YAML document: remove the '---' line"),
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
    if problem.startswith("but ") and context:  # "expected X" "but found Y"
        message = f"invalid YAML: {context} {problem}"
    else:
        message = f"invalid YAML: {problem}" + (f" {context}" if context else "")
    if at_end and context_mark is not None:
        message += " that starts here"
    hint = next((h for key, h in _YAML_HINTS if key in f"{problem} {context}"), None)
    if hint:
        message += f"; {hint}"
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    return line, col, message
