"""Parsed repository documents kept between passes by Git blob id, so that a pass re-parses only the
files that changed and re-validates the repository only when its policies or its shape changed.

Manifests are read here with libyaml (YAML 1.2 core scalars, as ruamel.yaml reads them); ruamel's
round trip stays for the files the pass rewrites and for every error message.
"""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from policyengine.errors import RenderError
from policyengine.gitops.status import parse_status
from policyengine.limits import read_repository_text
from policyengine.policy.loader import (
    CONFIG_ROOT_MARKER,
    YAML_SUFFIXES,
    FileLoad,
    load_file,
    merge_loads,
)
from policyengine.policy.models import ReleasePolicy
from policyengine.policy.validation import ValidationReport, check_repository
from policyengine.routers.base import Router
from policyengine.strategies.status import ReleaseStatus
from policyengine.values import TrafficSplit

TreeEntries = Mapping[str, tuple[str, str]]
"""(mode, blob id) by repository path: `Workspace.tree_entries()`."""

_REGULAR_FILE_MODES = frozenset({"100644", "100755"})
_SYMLINK_MODE = "120000"
FREEZE_FROM_FILES = 2000
"""YAML files in the tree from which the cache freezes its objects (see _settle_heap)."""
THAW_EVERY = 50
"""Freezes between full garbage collections of everything frozen (see _settle_heap)."""
_freezes = [0]  # process-wide, as the frozen generation is


class _CoreSchemaLoader(yaml.CSafeLoader):
    """libyaml's safe loader resolving plain scalars by the YAML 1.2 core schema (ruamel's): `on`,
    `yes` and `010` stay the string, string and ten they are in a round-trip load."""


_CoreSchemaLoader.yaml_implicit_resolvers = {
    first: [
        (tag, pattern)
        for tag, pattern in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
    ]
    for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
}
_CoreSchemaLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)
_CoreSchemaLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
_CoreSchemaLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _core_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


_CoreSchemaLoader.add_constructor("tag:yaml.org,2002:int", _core_int)


def plain_documents(text: str) -> tuple[Any, ...] | None:
    """The documents of a manifest file as plain Python values; None when libyaml refuses it."""
    try:
        return tuple(yaml.load_all(text, Loader=_CoreSchemaLoader))
    except (yaml.YAMLError, ValueError):
        return None


def _find_plain(documents: Iterable[Any], kind: str | None, name: str | None) -> Any | None:
    """The one document of that kind and name, else None (the caller reports why, with ruamel)."""
    matches = []
    for document in documents:
        if not isinstance(document, dict):
            continue
        metadata = document.get("metadata")
        found_name = metadata.get("name") if isinstance(metadata, dict) else None
        if (kind is None or document.get("kind") == kind) and (name is None or found_name == name):
            matches.append(document)
    return matches[0] if len(matches) == 1 else None


def walk_order(path: str) -> tuple[tuple[int, str], ...]:
    """Sort key giving `policy_files`' order: a folder's files, then its subfolders, by name."""
    *folders, name = path.split("/")
    return (*((1, folder) for folder in folders), (0, name))


def is_policy_candidate(path: str) -> bool:
    """A YAML file outside hidden folders: what `load_tree` reads from a checkout."""
    *folders, name = path.split("/")
    return name.endswith(YAML_SUFFIXES) and not any(f.startswith(".") for f in folders)


def config_roots(paths: Iterable[str]) -> frozenset[str]:
    """Folders holding `.policyengine` (as a folder or a file), from the tree's paths."""
    roots: set[str] = set()
    for path in paths:
        if CONFIG_ROOT_MARKER not in path:
            continue
        parts = path.split("/")
        for index, part in enumerate(parts):
            if part == CONFIG_ROOT_MARKER:
                roots.add("/".join(parts[:index]))
    return frozenset(roots)


def config_root_of(path: str, roots: frozenset[str]) -> str:
    """The nearest folder above `path` holding `.policyengine`, else "" (the repository root)."""
    if not roots:
        return ""
    # String slicing: PurePosixPath cost a third of a second per pass at 20,000 files.
    folder = path.rpartition("/")[0]
    while folder:
        if folder in roots:
            return folder
        folder = folder.rpartition("/")[0]
    return ""


@dataclass
class CacheStats:
    """How much a pass re-used: the benchmark and the tests read these."""

    files_parsed: int = 0
    files_reused: int = 0
    validations: int = 0
    manifests_parsed: int = 0
    manifests_reused: int = 0
    statuses_parsed: int = 0
    statuses_reused: int = 0


class DocumentCache:
    """What the engine parsed in earlier passes, by Git blob id; one per engine process.

    `validated` starts a pass: it takes the tree at HEAD, re-loads only the YAML files whose blob
    (or config root) changed, and re-runs the repository checks only when a file holding policy
    documents or errors changed, or a path appeared, vanished or changed type. Manifest and status
    contents are looked up by blob during the pass. Without a tree (`entries` None) nothing is
    cached by blob, but manifests are still read with the fast loader.
    """

    def __init__(self) -> None:
        self.entries: TreeEntries | None = None
        self.stats = CacheStats()
        self._loads: dict[tuple[str, str, str], FileLoad] = {}
        self._report: tuple[Hashable, ValidationReport] | None = None
        self._manifests: dict[str, tuple[Any, ...] | None] = {}
        self._statuses: dict[str, ReleaseStatus] = {}
        # (manifest blob, kind, name, id of the policy) -> (that policy, the split it read)
        self._splits: dict[
            tuple[str, str | None, str | None, int], tuple[ReleasePolicy, TrafficSplit]
        ] = {}

    # -- policies ------------------------------------------------------------------------------

    def validated(self, root: Path, entries: TreeEntries) -> ValidationReport:
        """`check_repository(load_tree([root], root), root)` for a checkout equal to `entries`."""
        self.entries = entries
        parsed_before = self.stats.files_parsed
        roots = config_roots(entries)
        files = sorted((p for p in entries if is_policy_candidate(p)), key=walk_order)
        loads: list[FileLoad] = []
        kept: dict[tuple[str, str, str], FileLoad] = {}
        for path in files:
            mode, blob = entries[path]
            if mode == _SYMLINK_MODE and (root / path).is_dir():
                continue  # a link to a folder: the walk does not list it as a file
            key = (path, blob, config_root_of(path, roots))
            load = self._loads.get(key) if mode in _REGULAR_FILE_MODES else None
            if load is None:
                load = load_file(root / path, root)
                self.stats.files_parsed += 1
            else:
                self.stats.files_reused += 1
            kept[key] = load
            loads.append(load)
        self._loads = kept
        signature = (
            tuple(
                (load.path, entries[load.path][1]) if load.path in entries else (load.path, "")
                for load in loads
                if load.documents or load.errors
            ),
            len(loads),
            _shape(entries),
        )
        if self._report is not None and self._report[0] == signature:
            report = self._report[1]
        else:
            report = check_repository(merge_loads(loads), root)
            self.stats.validations += 1
            self._report = (signature, report)
        self._forget_unless_in(entries)
        self._settle_heap(parsed=self.stats.files_parsed - parsed_before)
        return report

    def _settle_heap(self, parsed: int) -> None:
        """Take what a large cache holds out of the cyclic garbage collector's full collections.

        At 10,000 policies the parsed policies and documents are 800,000 objects that live for
        the whole process, and Python's full collection walks them all two or three times per
        pass (1.4 s of a 5 s pass). They are frozen after a collection of the young generations
        (most garbage); every `THAW_EVERY` freezes, one full collection reclaims what was frozen
        and has since been dropped, so garbage cycles cannot pile up. Small repositories (tests, the demo) are left to the collector's defaults, and
        so is a cold or largely new tree: frozen early, the rest of that pass (manifests to read)
        would grow the unfrozen heap in steps that each trigger a full collection.
        """
        if len(self._loads) < FREEZE_FROM_FILES or parsed > len(self._loads) // 4:
            return
        _freezes[0] += 1
        if _freezes[0] % THAW_EVERY == 0:
            gc.unfreeze()
            gc.collect()
        else:
            gc.collect(1)  # young garbage only: a full collection is what this avoids
        gc.freeze()

    def _forget_unless_in(self, entries: TreeEntries) -> None:
        present = {blob for _, blob in entries.values()}
        self._manifests = {b: d for b, d in self._manifests.items() if b in present}
        self._statuses = {b: s for b, s in self._statuses.items() if b in present}
        policies = (
            {id(p.policy): p.policy for p in self._report[1].policies} if self._report else {}
        )
        self._splits = {
            key: value
            for key, value in self._splits.items()
            if key[0] in present and policies.get(key[3]) is value[0]
        }

    # -- manifests and status files -------------------------------------------------------------

    def _blob(self, path: str) -> str | None:
        entry = self.entries.get(path) if self.entries is not None else None
        return entry[1] if entry is not None and entry[0] in _REGULAR_FILE_MODES else None

    def manifest_documents(self, path: str, read_text: Callable[[], str]) -> tuple[Any, ...] | None:
        """A manifest file's documents as plain values (shared: never edit them)."""
        blob = self._blob(path)
        if blob is not None and blob in self._manifests:
            self.stats.manifests_reused += 1
            return self._manifests[blob]
        documents = plain_documents(read_text())
        self.stats.manifests_parsed += 1
        if blob is not None:
            self._manifests[blob] = documents
        return documents

    def read_split(
        self,
        path: str,
        read_text: Callable[[], str],
        router: Router,
        kind: str | None,
        name: str | None,
        policy: ReleasePolicy,
    ) -> TrafficSplit | None:
        """The split the router reads, from the fast documents; None when only the round-trip
        path can tell (a document not found, a route the router refuses): it reports the error."""
        blob = self._blob(path)
        key = (blob, kind, name, id(policy)) if blob is not None else None
        known = self._splits.get(key) if key is not None else None
        if known is not None and known[0] is policy:  # the same parsed policy, not a reused id
            return known[1]
        documents = self.manifest_documents(path, read_text)
        if documents is None:
            return None
        document = _find_plain(documents, kind, name)
        if document is None:
            return None
        try:
            split = router.read(document, policy)
        except (RenderError, AttributeError, TypeError, KeyError):
            return None
        if key is not None:
            self._splits[key] = (policy, split)
        return split

    def status(self, root: Path, path: str) -> ReleaseStatus | None:
        """The release status committed at `path`, None when there is none."""
        if self.entries is None:
            exists = os.path.lexists(root / path)
            return parse_status(read_repository_text(root, path)) if exists else None
        if path not in self.entries:
            return None
        blob = self._blob(path)
        if blob is not None and blob in self._statuses:
            self.stats.statuses_reused += 1
            return self._statuses[blob]
        status = parse_status(read_repository_text(root, path))
        self.stats.statuses_parsed += 1
        if blob is not None:
            self._statuses[blob] = status
        return status


def _shape(entries: TreeEntries) -> tuple[tuple[str, str, str], ...]:
    """Paths and types of the tree, plus symlink targets: what the file-system checks depend on
    (manifests exist, are files, stay inside the repository), but not file contents."""
    return tuple(
        (path, mode, blob if mode == _SYMLINK_MODE else "")
        for path, (mode, blob) in entries.items()
    )
