"""The one place manifests are parsed and written: multi-document YAML, ruamel.yaml round-trip.

A file dumps back byte for byte when nothing changed, and when something did, only the lines that
hold the changed values differ: comments, key order, quoting and indentation survive. The common
edit, integers replaced in place (a router's weights), is spliced into the text without a dump.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from dataclasses import dataclass
from difflib import SequenceMatcher
from itertools import pairwise
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from policyengine.errors import RenderError

# A document marker at column 0 always starts a document, even inside a block scalar, so splitting
# on these lines is exact. Markers that carry content (`--- !tag`, `--- |`) are left to ruamel.
_SEPARATOR = re.compile(r"^---[ \t]*(#[^\n]*)?$", re.MULTILINE)
_BLOCK_KEY = re.compile(
    r"^(?P<indent> *)(?P<dash>(?:- +)*)(?P<key>[^\s#\-][^#]*?|-[^\s#][^#]*?):[ \t]*(#.*)?$"
)
_SEQUENCE_ITEM = re.compile(r"^(?P<indent> *)-(?P<gap> +)\S")
_MAPPING_KEY = re.compile(r"^(?P<indent> *)[^\s#\-]")
_COMMENT_OR_BLANK = re.compile(r"^\s*(#.*)?$")
_WIDTH = 4096  # never re-wrap long scalars (image references, PromQL, URLs)
_INTEGER = re.compile(r"-?[0-9]+")
# ruamel counts these as line breaks (or skips them), so its lines and columns would not be ours.
_ODD_BREAKS = re.compile("[\r\x85\u2028\u2029\ufeff]")


@dataclass(frozen=True)
class Indentation:
    """ruamel.yaml's three indentation settings, as detected in a hand-written or kubectl file."""

    mapping: int = 2
    sequence: int = 2
    offset: int = 0


def detect_indentation(text: str) -> Indentation:
    """The indentation most used in the text: mapping step, and where `- ` sits under its key.

    `kubectl` writes `- name:` flush with its key (sequence 2, offset 0); many hand-written files
    indent it by two (sequence 4, offset 2). ruamel cannot mix both in one document; the merge in
    `ManifestFile.dump` keeps the raw lines of a document that mixes them.
    """
    mappings: Counter[int] = Counter()
    sequences: Counter[tuple[int, int]] = Counter()
    opener: int | None = None  # column of the key whose value is the next (nested) block
    for line in text.splitlines():
        if _COMMENT_OR_BLANK.match(line):
            continue
        if opener is not None:
            item = _SEQUENCE_ITEM.match(line)
            if item:
                dash = len(item.group("indent"))
                offset = dash - opener
                if offset >= 0:
                    sequences[(offset + 1 + len(item.group("gap")), offset)] += 1
            else:
                key = _MAPPING_KEY.match(line)
                if key and len(key.group("indent")) > opener:
                    mappings[len(key.group("indent")) - opener] += 1
        block = _BLOCK_KEY.match(line)
        opener = len(block.group("indent")) + len(block.group("dash")) if block else None
    mapping = mappings.most_common(1)[0][0] if mappings else 2
    sequence, offset = sequences.most_common(1)[0][0] if sequences else (mapping, 0)
    return Indentation(mapping=mapping, sequence=max(sequence, offset + 2), offset=offset)


def _yaml(indentation: Indentation) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = _WIDTH
    yaml.allow_unicode = True
    yaml.indent(
        mapping=indentation.mapping, sequence=indentation.sequence, offset=indentation.offset
    )
    return yaml


@dataclass
class _Chunk:
    """One stretch of the file: the `---` line that opens it (if any) and what follows."""

    separator: str  # raw, with its line break; "" for the text before the first marker
    raw_body: str  # raw bytes as read (line breaks untouched)
    body: str  # raw_body with "\n" line breaks
    document: Any  # the parsed node; None when the chunk holds only comments or blank lines
    indentation: Indentation
    snapshot: Any  # the document's shape and scalar values when loaded (see _snapshot)
    _pristine: str | None = None

    @property
    def pristine(self) -> str:
        """How ruamel dumps the document as loaded: parsed again, only when a dump needs it.

        Dumping every document at load cost a third of each round trip, and most edits (integers
        in place) never need it.
        """
        if self._pristine is None:
            if self.document is None:
                self._pristine = self.body
            else:
                yaml = _yaml(self.indentation)
                self._pristine = _dump_node(yaml, next(iter(yaml.load_all(self.body))))
        return self._pristine


class ManifestFile:
    """A multi-document manifest file, parsed for round-trip editing."""

    def __init__(self, text: str, source: str = "<string>") -> None:
        self.text = text
        self.source = source
        self._newline = "\r\n" if "\r\n" in text else "\n"
        self._chunks = list(self._split(text))

    @property
    def documents(self) -> tuple[Any, ...]:
        """The parsed documents in file order (ruamel CommentedMap, edited in place)."""
        return tuple(chunk.document for chunk in self._chunks if chunk.document is not None)

    def dump(self) -> str:
        """The file's text with the documents' current values; identical bytes when unchanged."""
        return "".join(chunk.separator + self._dump_chunk(chunk) for chunk in self._chunks)

    def is_modified(self) -> bool:
        return self.dump() != self.text

    def round_trips_exactly(self) -> bool:
        """Whether ruamel itself re-creates every document's bytes.

        When it does not (a document mixing indentation styles), an edit still changes only its
        own lines thanks to the merge, unless the edit falls on a line ruamel would rewrite.
        """
        return all(c.document is None or c.pristine == c.body for c in self._chunks)

    def _split(self, text: str) -> list[_Chunk]:
        starts = [m.start() for m in _SEPARATOR.finditer(text)]
        bounds = [0, *starts, len(text)]
        chunks = []
        for begin, end in pairwise(bounds):
            piece = text[begin:end]
            separator = ""
            if begin in starts:
                line_end = piece.find("\n")
                cut = len(piece) if line_end < 0 else line_end + 1
                separator, piece = piece[:cut], piece[cut:]
            if begin == 0 and end == 0:
                continue
            first_line = text.count("\n", 0, begin) + (1 if separator else 0)
            chunks.append(self._parse_chunk(separator, piece, first_line))
        return chunks

    def _parse_chunk(self, separator: str, raw_body: str, first_line: int) -> _Chunk:
        body = raw_body.replace("\r\n", "\n")
        indentation = detect_indentation(body)
        yaml = _yaml(indentation)
        try:
            loaded = list(yaml.load_all(body))
        except MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            where = f"{self.source}:{first_line + mark.line + 1}" if mark else self.source
            raise RenderError(f"{where}: not valid YAML: {error.problem or error}") from error
        except YAMLError as error:
            raise RenderError(f"{self.source}: not valid YAML: {error}") from error
        if len(loaded) > 1:
            raise RenderError(
                f"{self.source}:{first_line + 1}: a document marker with content on its line "
                "(such as `--- !tag`) is not supported; put the content on the next line"
            )
        document = loaded[0] if loaded else None
        return _Chunk(separator, raw_body, body, document, indentation, _snapshot(document))

    def _dump_chunk(self, chunk: _Chunk) -> str:
        if chunk.document is None:
            return chunk.raw_body
        changes = _scalar_changes(chunk.snapshot, chunk.document)
        if changes == []:
            return chunk.raw_body
        spliced = _splice(chunk, changes) if changes is not None else None
        if spliced is not None:
            return spliced
        current = _dump_node(_yaml(chunk.indentation), chunk.document)
        if current == chunk.pristine:
            return chunk.raw_body
        merged = _merge(chunk.body, chunk.pristine, current)
        if not chunk.body.endswith("\n") and merged.endswith("\n"):
            merged = merged[:-1]
        return merged.replace("\n", self._newline) if self._newline != "\n" else merged


@dataclass(frozen=True)
class _ScalarChange:
    holder: Any  # the mapping or sequence holding the scalar
    key: Any  # its key or index there
    before: Any
    after: Any


def _snapshot(node: Any) -> Any:
    """The node's shape (container types, keys, flow style) and its scalar values, as tuples."""
    if isinstance(node, dict):
        return (type(node), _flow_style(node), tuple((k, _snapshot(v)) for k, v in node.items()))
    if isinstance(node, list):
        return (type(node), _flow_style(node), tuple(_snapshot(v) for v in node))
    return (type(node), node)


def _flow_style(node: Any) -> bool | None:
    fa = getattr(node, "fa", None)
    return fa.flow_style() if fa is not None else None


def _scalar_changes(snapshot: Any, node: Any) -> list[_ScalarChange] | None:
    """The scalars whose value changed since the snapshot; None when the shape changed."""
    changes: list[_ScalarChange] = []

    def compare(before: Any, holder: Any, key: Any, node: Any) -> bool:
        if type(node) is not before[0]:
            return False
        if isinstance(node, dict | list):
            _, style, children = before
            if _flow_style(node) != style or len(node) != len(children):
                return False
            if isinstance(node, dict):
                return all(
                    type(k) is type(child_key)
                    and k == child_key
                    and compare(child, node, k, node[k])
                    for k, (child_key, child) in zip(node, children, strict=True)
                )
            return all(
                compare(child, node, index, value)
                for index, (value, child) in enumerate(zip(node, children, strict=True))
            )
        if node is not before[1] and node != before[1]:
            changes.append(_ScalarChange(holder, key, before[1], node))
        return True

    return changes if compare(snapshot, None, None, node) else None


def _splice(chunk: _Chunk, changes: list[_ScalarChange]) -> str | None:
    """The raw text with each changed integer's digits replaced where they stand, or None.

    Only when every change is a plain integer to a plain integer whose digits sit where ruamel
    says, so the result is what ruamel writes on that line and every other byte stays.
    """
    if _ODD_BREAKS.search(chunk.body):
        return None  # ruamel would count lines or columns differently from splitlines
    lines = chunk.raw_body.split("\n")
    edits: dict[tuple[int, int], _ScalarChange] = {}
    for change in changes:
        if type(change.before) is not int or type(change.after) is not int:
            return None
        position = _value_position(change.holder, change.key)
        if position is None or position in edits or position[0] >= len(lines):
            return None
        line_number, column = position
        line = lines[line_number]
        digits = str(change.before)
        found = _INTEGER.match(line, column)
        if found is None or found.group() != digits:
            return None
        rest = line[found.end() :].removesuffix("\r")
        if rest and len(str(change.after)) != len(digits):
            return None  # ruamel keeps a trailing comment's column; flow text would shift
        edits[position] = change
    for (line_number, column), change in sorted(edits.items(), reverse=True):
        line = lines[line_number]
        end = column + len(str(change.before))
        lines[line_number] = line[:column] + str(change.after) + line[end:]
    return "\n".join(lines)


def _value_position(holder: Any, key: Any) -> tuple[int, int] | None:
    """(line, column) of a scalar value in the chunk, as ruamel recorded it when parsing."""
    lc = getattr(holder, "lc", None)
    data = getattr(lc, "data", None) if lc is not None else None
    if not isinstance(data, dict) or key not in data:
        return None
    if isinstance(holder, CommentedMap):
        _, _, line, column = data[key]
    elif isinstance(holder, CommentedSeq):
        line, column = data[key]
    else:
        return None
    return int(line), int(column)


def _dump_node(yaml: YAML, document: Any) -> str:
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    return buffer.getvalue()


def _merge(raw: str, pristine: str, current: str) -> str:
    """Apply the change pristine→current to the raw text (a three-way merge, line by line).

    Where ruamel reproduces the raw text exactly, raw == pristine and this returns current. Where
    it does not (a document mixing indentation styles), the raw lines around the change are kept;
    when a changed line is one ruamel rewrote, the merge is ambiguous and current wins.
    """
    if raw == pristine:
        return current
    raw_lines = raw.splitlines(keepends=True)
    pristine_lines = pristine.splitlines(keepends=True)
    current_lines = current.splitlines(keepends=True)
    # raw_at[i]: where pristine line boundary i falls in raw, when the two agree around it
    raw_at: dict[int, int] = {}
    same: set[int] = set()  # pristine lines that are byte-identical in raw
    for tag, p1, p2, r1, r2 in SequenceMatcher(
        None, pristine_lines, raw_lines, autojunk=False
    ).get_opcodes():
        raw_at.setdefault(p1, r1)
        raw_at[p2] = r2  # raw-only lines join the stretch before the boundary
        if tag == "equal":
            same.update(range(p1, p2))
            raw_at.update({p1 + k: r1 + k for k in range(p2 - p1)})
    merged: list[str] = []
    for tag, p1, p2, c1, c2 in SequenceMatcher(
        None, pristine_lines, current_lines, autojunk=False
    ).get_opcodes():
        if tag == "equal":
            if p1 not in raw_at or p2 not in raw_at:
                return current
            merged.extend(raw_lines[raw_at[p1] : raw_at[p2]])
        else:
            untouched_in_raw = (
                p1 in raw_at
                and p2 in raw_at
                and raw_at[p2] - raw_at[p1] == p2 - p1
                and all(line in same for line in range(p1, p2))
            )
            if not untouched_in_raw:
                return current
            merged.extend(current_lines[c1:c2])
    return "".join(merged)


def load_documents(text: str, source: str = "<string>") -> ManifestFile:
    """Parse a manifest file's text; `source` (its path) names it in error messages."""
    return ManifestFile(text, source)


def describe(document: Any) -> str:
    """`Kind namespace/name` of a Kubernetes object, for messages."""
    if not isinstance(document, dict):
        return "a non-object YAML document"
    metadata = document.get("metadata")
    name = namespace = None
    if isinstance(metadata, dict):
        name, namespace = metadata.get("name"), metadata.get("namespace")
    qualified = f"{namespace}/{name}" if namespace else str(name)
    return f"{document.get('kind', 'object')} {qualified}"


def find_document(file: ManifestFile, kind: str | None = None, name: str | None = None) -> Any:
    """The one document of that kind (and metadata.name, when given) in the file.

    Raises RenderError when none or several match: editing the wrong object must never be silent.
    """
    matches = []
    for document in file.documents:
        if not isinstance(document, dict):
            continue
        metadata = document.get("metadata")
        found_name = metadata.get("name") if isinstance(metadata, dict) else None
        if (kind is None or document.get("kind") == kind) and (name is None or found_name == name):
            matches.append(document)
    wanted = " ".join(
        part for part in (kind or "object", f"named {name!r}" if name else "") if part
    )
    if not matches:
        present = ", ".join(describe(d) for d in file.documents) or "no documents"
        raise RenderError(f"{file.source}: no {wanted} (the file holds: {present})")
    if len(matches) > 1:
        raise RenderError(
            f"{file.source}: {len(matches)} documents match {wanted}; name the object in the "
            "policy's target.manifests[].name"
        )
    return matches[0]
