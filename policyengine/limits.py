"""What every file the engine reads from a repository must stay within, checked before parsing.

A config repository is written by many hands, so any file in it may be hostile or broken: a link
out of the repository (`status → /somewhere`, `zero.yaml → /dev/zero`), an alias bomb, a document
nested a thousand levels deep, a 20 MB manifest, a byte that is not UTF-8. Each is refused here with
the file named, before any parser sees it, so the failure stays with the policies that read that
file. The same limits apply to policies, target manifests and release-status files.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

import yaml

from policyengine.errors import PolicyEngineError

MAX_FILE_BYTES = 1024 * 1024
"""Files above this size are refused before parsing (policies are a few kilobytes; Kubernetes
itself refuses objects much above a megabyte)."""
MAX_EXPANDED_NODES = 100_000
"""Documents whose aliases expand beyond this many nodes are refused (billion laughs)."""
MAX_DEPTH = 100
"""Collections nested deeper than this are refused: the parsers recurse, and no manifest nests
more than a few tens of levels."""


class UnsafeFileError(PolicyEngineError):
    """A repository file the engine must not read or write: a link on the way, not a regular
    file, too large, not UTF-8, or YAML beyond the limits."""


def link_on_the_way(root: Path, path: str) -> str | None:
    """The first component of `path` (repository-relative) that is a symbolic link, as a message.

    Components that do not exist yet are fine (a status file about to be written).
    """
    current = root
    for part in PurePosixPath(path).parts:
        current = current / part
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            return None
        except OSError as error:
            return f"{path}: cannot inspect {current.relative_to(root)}: {error.strerror}"
        if stat.S_ISLNK(info.st_mode):
            try:
                target = os.readlink(current)
            except OSError:
                target = "?"
            shown = current.relative_to(root).as_posix()
            return (
                f"{path}: {shown} is a symbolic link (to {target}); the engine reads and writes "
                "only regular files of the repository, never through links"
            )
    return None


def check_writable(root: Path, path: str) -> None:
    """Raise unless writing `path` would stay inside the repository (no link on the way)."""
    problem = link_on_the_way(root, path)
    if problem is not None:
        raise UnsafeFileError(problem)


def read_repository_text(root: Path, path: str, max_bytes: int = MAX_FILE_BYTES) -> str:
    """A repository file's text, refused when a link is on the way, it is not a regular file, it
    is above `max_bytes`, it is not UTF-8, or its YAML breaks the limits (`check_yaml_limits`)."""
    problem = link_on_the_way(root, path)
    if problem is not None:
        raise UnsafeFileError(problem)
    file = root / path
    try:
        info = os.lstat(file)
    except OSError as error:
        raise UnsafeFileError(f"{path}: cannot read the file: {error.strerror}") from error
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeFileError(f"{path}: not a regular file")
    if info.st_size > max_bytes:
        raise UnsafeFileError(
            f"{path}: file is {info.st_size} bytes, above the limit of {max_bytes} bytes; not parsed"
        )
    with open(file, "rb") as handle:
        raw = handle.read(max_bytes + 1)
    if len(raw) > max_bytes:  # grew since lstat
        raise UnsafeFileError(f"{path}: file is above the limit of {max_bytes} bytes; not parsed")
    text = decode_utf8(raw, path)
    check_yaml_limits(text, path)
    return text


def decode_utf8(raw: bytes, source: str) -> str:
    """UTF-8 text (a leading byte-order mark dropped), or an error naming the line and column."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        before = raw[: error.start]
        line = before.count(b"\n") + 1
        column = error.start - (before.rfind(b"\n") + 1) + 1
        raise UnsafeFileError(
            f"{source}:{line}:{column}: not UTF-8: byte 0x{raw[error.start]:02x} at offset "
            f"{error.start} cannot be decoded"
        ) from None


def yaml_limit_problem(
    text: str, max_nodes: int = MAX_EXPANDED_NODES, max_depth: int = MAX_DEPTH
) -> tuple[int, int, str] | None:
    """(line, column, message) of the first document beyond the limits, else None.

    Reads the event stream only: it neither recurses nor expands aliases, so it costs the text's
    length whatever the text holds. Each anchored node's expanded size is remembered, and an alias
    counts as that many nodes. A syntax error is left to the real parser, which reports it better.
    """
    sizes: dict[str, int] = {}
    stack: list[list[int | str | None]] = []  # [nodes so far, anchor] per open collection
    document_nodes = 0
    try:
        for event in yaml.parse(text, Loader=yaml.CSafeLoader):
            if isinstance(event, yaml.DocumentStartEvent):
                document_nodes = 0
                continue
            if isinstance(event, yaml.CollectionStartEvent):
                if len(stack) >= max_depth:
                    line, column = _position(event)
                    return (
                        line,
                        column,
                        f"YAML nested more than {max_depth} levels deep; not parsed",
                    )
                stack.append([1, event.anchor])
                continue
            if isinstance(event, yaml.CollectionEndEvent):
                count, anchor = stack.pop()
                assert isinstance(count, int)
                if isinstance(anchor, str):
                    sizes[anchor] = count
                added = count
            elif isinstance(event, yaml.AliasEvent):
                added = sizes.get(str(event.anchor), 1)
            elif isinstance(event, yaml.ScalarEvent):
                if event.anchor is not None:
                    sizes[event.anchor] = 1
                added = 1
            else:
                continue
            if stack:
                top = stack[-1][0]
                assert isinstance(top, int)
                stack[-1][0] = min(top + added, max_nodes + 1)
            else:
                document_nodes += added
            total = document_nodes + sum(int(frame[0] or 0) for frame in stack)
            if total > max_nodes:
                line, column = _position(event)
                return (
                    line,
                    column,
                    f"YAML aliases expand to more than {max_nodes} nodes (an alias bomb?); not parsed",
                )
    except yaml.YAMLError:
        return None
    return None


def _position(event: yaml.Event) -> tuple[int, int]:
    mark = event.start_mark
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def check_yaml_limits(text: str, source: str) -> None:
    """Raise `UnsafeFileError` naming `source:line:column` when the text breaks a YAML limit."""
    if "*" not in text and sum(text.count(c) for c in "[{-:") < MAX_DEPTH:
        return  # no alias, and fewer collections in all than the depth limit
    problem = yaml_limit_problem(text)
    if problem is not None:
        line, column, message = problem
        raise UnsafeFileError(f"{source}:{line}:{column}: {message}")
