"""Reading a phase file that may be hostile: bounded in size, depth, expansion and time.

Only a regular file is read (a FIFO would block, ``/dev/zero`` never ends), at most
MAX_BYTES of it, as UTF-8. The YAML loader refuses a key given twice at any level (PyYAML
keeps the last one silently: a second ``tickets:`` dropped tickets), nesting deeper than
MAX_DEPTH (PyYAML's composer recurses) and documents whose aliases expand past MAX_NODES
values ("billion laughs"); both are found in a first pass over the parser's events, which
builds nothing. Every problem is one PhaseFileError line.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from runner.errors import PhaseFileError

MAX_BYTES = 16 << 20      # a phase file of ten thousand tickets with long prompts fits
MAX_DEPTH = 32            # a phase file needs 5 (tickets[0].paths[0]); 32 is room to spare
MAX_NODES = 2_000_000     # values in the document, each use of an alias counted in full

# libyaml's parser when PyYAML was built with it: the same documents, about 20 times faster.
_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"


def read_text(path: Path) -> str:
    """The phase file's text; PhaseFileError for anything but a readable regular UTF-8 file
    of at most MAX_BYTES."""
    try:
        info = os.stat(path)
    except FileNotFoundError as e:
        raise PhaseFileError(path, "no such file; give the path of a phase YAML file") from e
    except OSError as e:
        raise PhaseFileError(path, f"cannot read it: {e.strerror}") from e
    _check_regular(path, info.st_mode)
    try:
        # O_NONBLOCK: should it have become a FIFO since the stat, opening does not hang.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise PhaseFileError(path, f"cannot read it: {e.strerror}") from e
    with os.fdopen(fd, "rb") as f:
        _check_regular(path, os.fstat(fd).st_mode)
        try:
            data = f.read(MAX_BYTES + 1)
        except OSError as e:
            raise PhaseFileError(path, f"cannot read it: {e.strerror}") from e
    if len(data) > MAX_BYTES:
        raise PhaseFileError(path, f"larger than {MAX_BYTES >> 20} MiB, more than a phase "
                             "file needs; split the phase or shorten its prompts")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = len(data[data.rfind(b"\n", 0, e.start) + 1:e.start].decode("utf-8")) + 1
        raise PhaseFileError(path, f"not UTF-8: byte 0x{data[e.start]:02x} at line {line}, "
                             f"column {column}; save the file as UTF-8") from e


def _check_regular(path: Path, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
    raise PhaseFileError(path, f"is {kind}, not a file; give the path of a phase YAML file")


def parse(path: Path, text: str) -> Any:
    """The YAML document in ``text``, bounded as the module says; PhaseFileError naming the
    line (or the field) at fault."""
    try:
        _check_shape(path, text)
        loader = _StrictLoader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except DuplicateKey as e:
        raise PhaseFileError(path, e.message, field=e.field) from e
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = _one_line(e.problem or e.context or "invalid YAML")
        raise PhaseFileError(path, f"not valid YAML{where}: {problem}") from e
    except yaml.YAMLError as e:   # the reader's: a character YAML does not allow
        raise PhaseFileError(path, f"not valid YAML: {_one_line(str(e))}") from e
    except (ValueError, TypeError, OverflowError) as e:
        # A tagged or implicit value its constructor cannot make (2001-02-30, !!int x).
        raise PhaseFileError(path, f"a value cannot be read: {_one_line(str(e))}") from e
    except RecursionError as e:   # the depth check should make this unreachable
        raise PhaseFileError(path, f"nested too deeply (more than {MAX_DEPTH} levels)") from e


def _check_shape(path: Path, text: str) -> None:
    """Depth and expanded size from the parser's events, before anything is built."""
    open_sizes: list[list[Any]] = []      # [anchor, values so far] of each open collection
    sizes: dict[str, int] = {}            # anchor -> values its node holds, expanded
    total = 0
    for event in yaml.parse(text, Loader=_Base):
        if isinstance(event, yaml.CollectionStartEvent):
            if len(open_sizes) >= MAX_DEPTH:
                raise PhaseFileError(path, f"nested more than {MAX_DEPTH} levels deep at "
                                     f"line {event.start_mark.line + 1}; a phase file needs "
                                     "a few")
            open_sizes.append([event.anchor, 1])
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, count = open_sizes.pop()
        elif isinstance(event, yaml.ScalarEvent):
            if "\0" in event.value:   # git, Docker and the OS cut an argument or path there
                raise PhaseFileError(path, f"a NUL character at line "
                                     f"{event.start_mark.line + 1}; no value may hold one")
            anchor, count = event.anchor, 1
        elif isinstance(event, yaml.AliasEvent):
            anchor, count = None, sizes.get(event.anchor, 1)
        else:
            continue
        if anchor is not None:
            sizes[anchor] = count
        if open_sizes:
            open_sizes[-1][1] += count
        else:
            total += count
        if total > MAX_NODES or (open_sizes and open_sizes[-1][1] > MAX_NODES):
            raise PhaseFileError(path, f"holds more than {MAX_NODES:,} values (each use of "
                                 f"an alias counted in full) by line "
                                 f"{event.start_mark.line + 1}; a phase file needs far fewer")


class _StrictLoader(_Base):  # type: ignore[misc, valid-type]
    """A safe loader that refuses a key given twice in one mapping."""

    def construct_document(self, node: Node) -> Any:
        self._paths = _paths(node)
        return super().construct_document(node)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> Any:
        seen: dict[Hashable, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE or not isinstance(key_node, ScalarNode):
                continue   # `<<:` merges (explicit keys win); complex keys: the base's error
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue   # the base's error: an unhashable key
            if key in seen:
                field = _join(self._paths.get(id(node), ""), key)
                raise DuplicateKey(field, f"given twice ({_places(seen[key], key_node)}); "
                                   "a key may appear once in a mapping")
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


class DuplicateKey(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


def _paths(root: Node) -> dict[int, str]:
    """The field path (``tickets[1]``) of every mapping node, walked without recursion."""
    paths: dict[int, str] = {}
    todo: list[tuple[Node, str]] = [(root, "")]
    while todo:
        node, at = todo.pop()
        if id(node) in paths:      # an alias: named where it is first met
            continue
        if isinstance(node, MappingNode):
            paths[id(node)] = at
            for key_node, value in node.value:
                key = key_node.value if isinstance(key_node, ScalarNode) else "?"
                todo.append((value, _join(at, key)))
        elif isinstance(node, SequenceNode):
            paths[id(node)] = at
            todo.extend((item, f"{at}[{i}]") for i, item in enumerate(node.value))
    return paths


def _places(first: Any, node: Node) -> str:
    second = node.start_mark
    if first.line == second.line:
        return f"line {first.line + 1}, columns {first.column + 1} and {second.column + 1}"
    return f"lines {first.line + 1} and {second.line + 1}"


def _join(parent: str, key: object) -> str:
    return f"{parent}.{key}" if parent else str(key)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
