"""Reading ReleasePolicy and MetricSet documents from YAML files, with errors located by line and column.

Files are parsed with libyaml (fast); only documents that need a location are re-parsed with
ruamel.yaml round-trip, whose `.lc` gives the line and column of every key and item.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from policyengine.limits import MAX_DEPTH, MAX_EXPANDED_NODES, MAX_FILE_BYTES, yaml_limit_problem
from policyengine.policy.models import API_VERSION, POLICY_KINDS, MetricSet, ReleasePolicy
from policyengine.policy.validation import (
    FieldPath,
    FieldProblem,
    PolicyIssue,
    check_document,
    did_you_mean,
    format_field,
)

__all__ = [
    "MAX_FILE_BYTES",
    "FieldLocator",
    "FileLoad",
    "LoadResult",
    "LoadedMetricSet",
    "LoadedPolicy",
    "PolicyIssue",
    "config_root",
    "display_path",
    "find_repository_root",
    "load_file",
    "load_tree",
    "merge_loads",
    "parse_field",
    "policy_files",
]

POLICY_API_GROUP = API_VERSION.split("/", 1)[0] + "/"
CONFIG_ROOT_MARKER = ".policyengine"
"""A folder holding this one (where the engine keeps release status) is a config repository's root."""
YAML_SUFFIXES = (".yaml", ".yml")


def parse_field(text: str) -> FieldPath:
    """("spec", "strategy", "steps", 2) from spec.strategy.steps[2]."""
    parts: list[str | int] = []
    for piece in text.split("."):
        name, _, indexes = piece.partition("[")
        if name:
            parts.append(name)
        if indexes:
            parts += [int(index) for index in indexes.rstrip("]").split("][")]
    return tuple(parts)


class _FileSource:
    """A file's documents re-parsed with ruamel.yaml round-trip, on first need only."""

    def __init__(self, file: Path, display: str, root: Path) -> None:
        self.file = file
        self.display = display
        self.root = root
        self._documents: list[Any] | None = None

    def documents(self) -> list[Any]:
        if self._documents is None:
            self._documents = round_trip_documents(self.file)
        return self._documents

    def position(
        self, doc_index: int, field: FieldPath, fallback: tuple[int, int]
    ) -> tuple[int, int]:
        documents = self.documents()
        if doc_index >= len(documents):
            return fallback
        return position_in(documents[doc_index], field) or fallback


def round_trip_documents(file: Path) -> list[Any]:
    parser = YAML(typ="rt", pure=True)
    # The fast path reports duplicate keys itself; here they must not stop the search for a line.
    parser.allow_duplicate_keys = True
    try:
        return list(parser.load_all(file.read_text(encoding="utf-8-sig")))
    except Exception:
        return []


def position_in(document: Any, field: FieldPath) -> tuple[int, int] | None:
    """1-based line and column of the deepest part of `field` found in a round-trip document."""
    found: tuple[int, int] | None = None
    current = document
    for part in field:
        if isinstance(current, CommentedMap) and part in current:
            line, column = current.lc.key(part)
            found = (line + 1, column + 1)
            current = current[part]
        elif isinstance(current, CommentedSeq) and isinstance(part, int) and part < len(current):
            line, column = current.lc.item(part)
            found = (line + 1, column + 1)
            current = current[part]
        else:
            break
    if found is None and isinstance(current, CommentedMap | CommentedSeq):
        return (current.lc.line + 1, current.lc.col + 1)
    return found


@dataclass(frozen=True)
class FieldLocator:
    """Maps a field of one document to its line and column in the file."""

    source: _FileSource = field(repr=False, compare=False)
    doc_index: int
    start: tuple[int, int]

    def locate(self, field_path: FieldPath | str) -> tuple[int, int]:
        parts = parse_field(field_path) if isinstance(field_path, str) else field_path
        return self.source.position(self.doc_index, parts, self.start)

    def issue(self, field_path: FieldPath | str, message: str) -> PolicyIssue:
        parts = parse_field(field_path) if isinstance(field_path, str) else field_path
        line, column = self.locate(parts)
        return PolicyIssue(self.source.display, line, column, format_field(parts), message)

    def where(self, field_path: FieldPath | str) -> str:
        line, column = self.locate(field_path)
        return f"{self.source.display}:{line}:{column}"


@dataclass(frozen=True)
class LoadedPolicy:
    """A ReleasePolicy that passed the shape checks, and where it came from."""

    policy: ReleasePolicy
    path: str
    """Repository-relative (POSIX) when the file is inside the repository, else as given."""
    file: Path
    """Absolute path of the file."""
    doc_index: int
    locator: FieldLocator = field(repr=False, compare=False)
    root: Path = Path(".")
    """Root of the config repository the policy belongs to: its manifest paths start there."""

    @property
    def key(self) -> str:
        return self.policy.key

    def locate(self, field_path: FieldPath | str) -> tuple[int, int]:
        return self.locator.locate(field_path)

    def issue(self, field_path: FieldPath | str, message: str) -> PolicyIssue:
        return self.locator.issue(field_path, message)

    def where(self, field_path: FieldPath | str) -> str:
        return self.locator.where(field_path)


@dataclass(frozen=True)
class LoadedMetricSet:
    """A MetricSet document found in the repository, and where it came from."""

    metric_set: MetricSet
    path: str
    file: Path
    doc_index: int
    locator: FieldLocator = field(repr=False, compare=False)

    def issue(self, field_path: FieldPath | str, message: str) -> PolicyIssue:
        return self.locator.issue(field_path, message)

    def where(self, field_path: FieldPath | str) -> str:
        return self.locator.where(field_path)


@dataclass(frozen=True)
class FileLoad:
    """The policy documents of one file, and its errors."""

    path: str
    documents: tuple[LoadedPolicy | LoadedMetricSet, ...]
    errors: tuple[PolicyIssue, ...]

    @property
    def policies(self) -> list[LoadedPolicy]:
        return [d for d in self.documents if isinstance(d, LoadedPolicy)]

    @property
    def metric_sets(self) -> list[LoadedMetricSet]:
        return [d for d in self.documents if isinstance(d, LoadedMetricSet)]


@dataclass(frozen=True)
class LoadResult:
    """Every policy document under some paths, by kind, with every error met on the way."""

    policies: list[LoadedPolicy]
    metric_sets: dict[str, LoadedMetricSet]
    errors: list[PolicyIssue]
    files: int

    def metric_set_models(self) -> dict[str, MetricSet]:
        """The repository's metric sets as `metrics.catalog` takes them."""
        return {name: loaded.metric_set for name, loaded in self.metric_sets.items()}


class _StrictLoader(yaml.CSafeLoader):
    """libyaml's safe loader, counting alias uses and noting duplicate keys on the way."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.alias_uses = 0
        self.duplicate_keys: list[tuple[yaml.MappingNode, yaml.Node, yaml.Node]] = []

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # The composer shares one node among all its aliases: meeting a node twice is an alias.
        if node in self.constructed_objects:
            self.alias_uses += 1
        return super().construct_object(node, deep)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[tuple[str, str], yaml.Node] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = (key_node.tag, key_node.value)
                if key in seen:
                    self.duplicate_keys.append((node, seen[key], key_node))
                seen.setdefault(key, key_node)
        return super().construct_mapping(node, deep)


def _link_problem(path: Path, repo_root: Path) -> str | None:
    """Why a symbolic link is not read ("" when it is skipped quietly), None for other files.

    A link to a regular file inside the repository is skipped: its target is read at its own
    path. A link out of the repository (`/etc/passwd`, `/dev/zero`, a policy kept elsewhere) is
    refused and reported: policies come only from the repository's own files.
    """
    if not path.is_symlink():
        return None
    target = os.readlink(path)
    resolved = path.resolve()
    if resolved.is_relative_to(repo_root.resolve()) and (resolved.is_file() or resolved.is_dir()):
        return ""
    return (
        f"a symbolic link to {target}, outside the repository or not a regular file; not read "
        "(the engine reads only the repository's own files)"
    )


def _mark_position(mark: Any) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1)


def config_root(path: Path, repo_root: Path) -> Path:
    """The nearest folder above `path`, within `repo_root`, holding `.policyengine/`; else repo_root.

    Lets one repository carry several config repositories (examples/*), each with its own root.
    """
    # Strings rather than Paths: a cold pass asks this for every YAML file of a large repository.
    root = str(repo_root.absolute())
    inside = root.rstrip("/") + "/"
    folder = str(path.absolute().parent)
    while folder != root and folder.startswith(inside):
        if os.path.exists(os.path.join(folder, CONFIG_ROOT_MARKER)):
            return Path(folder)
        folder = os.path.dirname(folder)
    return repo_root


def load_file(path: Path, repo_root: Path, max_bytes: int = MAX_FILE_BYTES) -> FileLoad:
    """The ReleasePolicy and MetricSet documents of one YAML file; other documents are ignored."""
    display = display_path(path, repo_root)
    source = _FileSource(path.absolute(), display, config_root(path, repo_root))

    def file_error(message: str, line: int = 1, column: int = 1) -> FileLoad:
        return FileLoad(display, (), (PolicyIssue(display, line, column, "", message),))

    link = _link_problem(path, repo_root)
    if link is not None:
        return file_error(link) if link else FileLoad(display, (), ())
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode):
            return file_error("not a regular file; not read")
        size = info.st_size
        if size > max_bytes:
            return file_error(
                f"file is {size} bytes, above the limit of {max_bytes} bytes "
                f"({max_bytes // 1024} KiB) for policy files; not parsed"
            )
        with open(path, "rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as error:
        return file_error(f"cannot read the file: {error.strerror or error}")
    if len(raw) > max_bytes:  # grew since stat
        return file_error(f"file is above the limit of {max_bytes} bytes; not parsed")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        before = raw[: error.start]
        line = before.count(b"\n") + 1
        column = error.start - (before.rfind(b"\n") + 1) + 1
        return file_error(
            f"not UTF-8: byte 0x{raw[error.start]:02x} at offset {error.start} cannot be decoded",
            line,
            column,
        )
    if "*" in text or sum(text.count(c) for c in "[{-:") >= MAX_DEPTH:
        # Alias expansion is judged per document below (a policy may not use aliases at all);
        # here only what would stop the parser itself: nesting deeper than it can recurse.
        deep = yaml_limit_problem(text, max_nodes=sys.maxsize)
        if deep is not None:
            return file_error(deep[2], deep[0], deep[1])
    documents: list[LoadedPolicy | LoadedMetricSet] = []
    errors: list[PolicyIssue] = []
    loader = _StrictLoader(text)
    seen_content = False
    doc_index = 0
    # Without aliases a foreign document (a manifest) needs no Python objects: its node says so.
    aliases_possible = "*" in text
    try:
        while loader.check_node():
            node = loader.get_node()
            assert node is not None  # check_node said there is one
            if not aliases_possible and _is_foreign(node):
                seen_content = True
                doc_index += 1
                continue
            loader.alias_uses = 0
            loader.duplicate_keys = []
            data = loader.construct_document(node)
            if data is not None:
                seen_content = True
            located = _document(loader, node, data, source, doc_index, text)
            if isinstance(located, list):
                errors += located
            elif located is not None:
                documents.append(located)
            doc_index += 1
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = _mark_position(mark) if mark is not None else (1, 1)
        problem = error.problem or "invalid YAML"
        context = f" ({error.context})" if error.context else ""
        return FileLoad(
            display,
            tuple(documents),
            (
                *errors,
                PolicyIssue(display, line, column, "", f"YAML syntax error: {problem}{context}"),
            ),
        )
    except yaml.YAMLError as error:
        errors.append(PolicyIssue(display, 1, 1, "", f"YAML error: {error}"))
        return FileLoad(display, tuple(documents), tuple(errors))
    finally:
        loader.dispose()
    if not seen_content:
        errors.append(PolicyIssue(display, 1, 1, "", "empty file: no YAML document in it"))
    return FileLoad(display, tuple(documents), tuple(errors))


_STR_TAG = "tag:yaml.org,2002:str"


def _is_foreign(node: yaml.Node) -> bool:
    """Whether a mapping's plain `kind` and `apiVersion` make it certainly not a policy document.

    Anything less plain (a merge key, a tagged or non-scalar value) is left to the full path.
    """
    if not isinstance(node, yaml.MappingNode):
        return False
    found: dict[str, str] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR_TAG:
            if key_node.tag == "tag:yaml.org,2002:merge":
                return False
            continue
        if key_node.value in ("kind", "apiVersion"):
            if not isinstance(value_node, yaml.ScalarNode) or value_node.tag != _STR_TAG:
                return False
            found[key_node.value] = value_node.value
        elif key_node.value == "<<":
            return False
    kind, api_version = found.get("kind"), found.get("apiVersion")
    if kind in POLICY_KINDS:
        return False
    return not (api_version is not None and api_version.startswith(POLICY_API_GROUP))


def _document(
    loader: _StrictLoader,
    node: yaml.Node,
    data: Any,
    source: _FileSource,
    doc_index: int,
    text: str,
) -> LoadedPolicy | LoadedMetricSet | list[PolicyIssue] | None:
    """One document: a loaded policy document, its errors, or None when it is not ours."""
    start = _mark_position(node.start_mark)
    locator = FieldLocator(source, doc_index, start)
    kind_value = data.get("kind") if isinstance(data, dict) else None
    # A Helm values file may well have `kind:` as a map or a list: not ours, and no crash.
    kind = kind_value if isinstance(kind_value, str) else None
    api_version = data.get("apiVersion") if isinstance(data, dict) else None
    ours = kind in POLICY_KINDS or _mentions_policy(api_version)
    if loader.alias_uses and (ours or _expanded_size(node) > MAX_EXPANDED_NODES):
        line, column = _first_alias(text, doc_index) or start
        message = (
            "YAML aliases (*name) are not allowed in policy documents; write the value out"
            if ours
            else f"YAML aliases expand to more than {MAX_EXPANDED_NODES} nodes (an alias bomb?)"
        )
        return [PolicyIssue(source.display, line, column, "", message)]
    if isinstance(data, list):
        return _listed_policies(data, locator)
    if not ours:
        return None
    assert isinstance(data, dict)
    if loader.duplicate_keys:
        return [_duplicate_issue(source.display, node, entry) for entry in loader.duplicate_keys]
    if not isinstance(kind, str) or kind not in POLICY_KINDS:
        known = ", ".join(POLICY_KINDS)
        hint = did_you_mean(kind, POLICY_KINDS) if isinstance(kind, str) else ""
        if kind_value is not None and kind is None:
            return [locator.issue(("kind",), f"must be a string, one of {known}")]
        if kind is None:
            return [locator.issue(("kind",), f"required field is missing (one of {known})")]
        return [locator.issue(("kind",), f"unknown kind {kind!r}{hint} (expected one of {known})")]
    checked = check_document(data, str(kind))
    if checked.problems:
        return [_issue(locator, problem) for problem in checked.problems]
    if isinstance(checked.model, ReleasePolicy):
        return LoadedPolicy(
            checked.model, source.display, source.file, doc_index, locator, source.root
        )
    assert isinstance(checked.model, MetricSet)
    return LoadedMetricSet(checked.model, source.display, source.file, doc_index, locator)


def _mentions_policy(api_version: Any) -> bool:
    return isinstance(api_version, str) and api_version.startswith(POLICY_API_GROUP)


def _listed_policies(data: list[Any], locator: FieldLocator) -> list[PolicyIssue] | None:
    """A document that is a list holding policies: an error, never a silent "0 policies"."""
    issues = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            continue
        kind = item.get("kind")
        if (isinstance(kind, str) and kind in POLICY_KINDS) or _mentions_policy(
            item.get("apiVersion")
        ):
            issues.append(
                locator.issue(
                    (index,),
                    f"a {kind if isinstance(kind, str) else 'policy'} written as a list item is "
                    "not read; write each policy as its own document (separate documents with ---)",
                )
            )
    return issues or None


def _issue(locator: FieldLocator, problem: FieldProblem) -> PolicyIssue:
    return locator.issue(problem.field, problem.message)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _expanded_size(root: yaml.Node, limit: int = MAX_EXPANDED_NODES) -> int:
    """Nodes the document would have with every alias expanded, capped above `limit`.

    Memoised per node, so it costs the distinct nodes, not the expansion; a cycle counts as
    unbounded.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = _children(node)
        if not children_done:
            if id(node) in on_path:
                return limit + 1
            on_path.add(id(node))
            stack.append((node, True))
            stack += [(child, False) for child in children if id(child) not in sizes]
            continue
        on_path.discard(id(node))
        sizes[id(node)] = min(
            limit + 1, 1 + sum(sizes.get(id(child), limit + 1) for child in children)
        )
    return sizes[id(root)]


def _first_alias(text: str, doc_index: int) -> tuple[int, int] | None:
    """Where the first alias of a document is: events do not expand aliases, so this is cheap."""
    document = -1
    for event in yaml.parse(text, Loader=yaml.CSafeLoader):
        if isinstance(event, yaml.DocumentStartEvent):
            document += 1
        elif isinstance(event, yaml.AliasEvent) and document == doc_index:
            return _mark_position(event.start_mark)
    return None


def _path_to(root: yaml.Node, target: yaml.Node) -> FieldPath:
    """The field path of a node inside a document's node tree (for duplicate-key reports)."""
    stack: list[tuple[yaml.Node, FieldPath]] = [(root, ())]
    visited: set[int] = set()
    while stack:
        node, path = stack.pop()
        if node is target:
            return path
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                stack.append((value_node, (*path, str(key))))
        elif isinstance(node, yaml.SequenceNode):
            stack += [(item, (*path, index)) for index, item in enumerate(node.value)]
    return ()


def _duplicate_issue(
    display: str, root: yaml.Node, entry: tuple[yaml.MappingNode, yaml.Node, yaml.Node]
) -> PolicyIssue:
    mapping, first, duplicate = entry
    line, column = _mark_position(duplicate.start_mark)
    first_line = first.start_mark.line + 1
    field_path = (*_path_to(root, mapping), str(duplicate.value))
    return PolicyIssue(
        display,
        line,
        column,
        format_field(field_path),
        f"duplicate key {duplicate.value!r} (first at line {first_line}); YAML keeps only one",
    )


def display_path(path: Path, repo_root: Path) -> str:
    """Repository-relative POSIX path when the file is inside the repository, else as given."""
    absolute, root = path.absolute(), repo_root.absolute()
    if absolute.is_relative_to(root):
        return absolute.relative_to(root).as_posix()
    # Only when the plain spelling differs (a symlinked folder on the way) pay for resolving.
    resolved, resolved_root = path.resolve(), repo_root.resolve()
    if resolved.is_relative_to(resolved_root):
        return resolved.relative_to(resolved_root).as_posix()
    return str(path)


def policy_files(paths: Iterable[Path]) -> list[Path]:
    """The YAML files named, and those under the folders named (hidden folders skipped)."""
    found: dict[Path, None] = {}
    for path in paths:
        if path.is_dir():
            for folder, subfolders, names in os.walk(path):
                subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
                for name in sorted(names):
                    if name.endswith(YAML_SUFFIXES):
                        found.setdefault(Path(folder) / name, None)
        else:
            found.setdefault(path, None)
    return list(found)


def load_tree(
    paths: Sequence[Path], repo_root: Path, max_bytes: int = MAX_FILE_BYTES
) -> LoadResult:
    """Every ReleasePolicy and MetricSet under `paths` (files or folders), with every error."""
    files = policy_files(paths)
    return merge_loads([load_file(file, repo_root, max_bytes) for file in files])


def merge_loads(loads: Sequence[FileLoad]) -> LoadResult:
    """The loads of many files as one result, in their order; metric sets defined twice are errors.

    The engine keeps each file's `FileLoad` between passes (by Git blob id) and merges them here.
    """
    policies: list[LoadedPolicy] = []
    metric_sets: dict[str, LoadedMetricSet] = {}
    errors: list[PolicyIssue] = []
    for loaded in loads:
        errors += loaded.errors
        policies += loaded.policies
        for metric_set in loaded.metric_sets:
            name = metric_set.metric_set.metadata.name
            first = metric_sets.setdefault(name, metric_set)
            if first is not metric_set:
                where = ("metadata", "name")
                errors.append(
                    metric_set.issue(
                        where, f"metric set {name} is also defined at {first.where(where)}"
                    )
                )
                errors.append(
                    first.issue(
                        where, f"metric set {name} is also defined at {metric_set.where(where)}"
                    )
                )
    return LoadResult(policies, metric_sets, errors, len(loads))


def find_repository_root(path: Path) -> Path:
    """The Git top-level folder holding `path`, else the current directory."""
    folder = path if path.is_dir() else path.parent
    try:
        completed = subprocess.run(
            ["git", "-C", str(folder or Path(".")), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return Path.cwd()
    if completed.returncode != 0 or not completed.stdout.strip():
        return Path.cwd()
    return Path(completed.stdout.strip())
