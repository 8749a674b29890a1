"""PromQL text from metric templates: placeholder rendering and injection-proof label matchers.

Pure: label values (version names, namespaces, models) come from Git and are escaped twice —
as RE2 literals inside `=~` alternations, then as PromQL double-quoted strings — so no value can
close the string, widen the regex or append an operator.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from string import Template

from policyengine.errors import InvalidPolicyError

PLACEHOLDERS = frozenset({"selector", "groupBy", "window", "namespace", "model"})
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
MAX_ALTERNATIVES = 200
"""Above this many values a matcher becomes `label=~".+"` and the caller filters client-side."""

# Go's regexp.QuoteMeta set: what RE2 (Prometheus' regex engine) treats as syntax.
_REGEX_META = frozenset("\\.+*?()|[]{}^$")
_STRING_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def quote_string(value: str) -> str:
    """A PromQL double-quoted string literal whose content is exactly `value`."""
    return f'"{escape_string_content(value)}"'


def escape_string_content(value: str) -> str:
    """The inside of a PromQL double-quoted string for `value` (without the quotes)."""
    _require_encodable(value)
    parts = []
    for char in value:
        if char in _STRING_ESCAPES:
            parts.append(_STRING_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            # Other control characters: \x escapes are understood by the PromQL lexer.
            parts.append(f"\\x{ord(char):02x}")
        else:
            parts.append(char)
    return "".join(parts)


def regex_escape(value: str) -> str:
    """An RE2 pattern matching exactly `value` (what Go's regexp.QuoteMeta produces)."""
    _require_encodable(value)
    return "".join(f"\\{char}" if char in _REGEX_META else char for char in value)


def equality_matcher(label: str, value: str) -> str:
    _require_label_name(label)
    return f"{label}={quote_string(value)}"


def alternation_matcher(label: str, values: Iterable[str]) -> str:
    """`label=~"a|b"` matching exactly the given values (Prometheus anchors regex matchers)."""
    _require_label_name(label)
    distinct = sorted(set(values))
    if not distinct:
        raise ValueError(f"no values for label {label}")
    if any(value == "" for value in distinct):
        # An empty alternative would also select series that lack the label altogether.
        raise ValueError(f"an empty value for label {label} would select unlabelled series")
    if len(distinct) > MAX_ALTERNATIVES:
        return f'{label}=~".+"'
    return f"{label}=~{quote_string('|'.join(regex_escape(v) for v in distinct))}"


def build_selector(
    version_label: str,
    version_values: Iterable[str],
    namespace_label: str | None = None,
    namespaces: Iterable[str] = (),
) -> str:
    """The `${selector}` matchers: the namespace label (when the set has one), then the versions."""
    matchers = []
    if namespace_label is not None:
        matchers.append(alternation_matcher(namespace_label, namespaces))
    matchers.append(alternation_matcher(version_label, version_values))
    return ", ".join(matchers)


def selects_everything(selector_values: Iterable[str]) -> bool:
    """Whether a matcher on these values is the broad `=~".+"` one (so results need filtering)."""
    return len(set(selector_values)) > MAX_ALTERNATIVES


def group_by(version_label: str, namespace_label: str | None = None) -> str:
    """The `${groupBy}` label list: the version label, plus the namespace label when there is one."""
    labels = [version_label] if namespace_label is None else [namespace_label, version_label]
    for label in labels:
        _require_label_name(label)
    return ", ".join(labels)


def placeholders_of(template: str) -> frozenset[str]:
    return frozenset(Template(template).get_identifiers())


def check_template(template: str) -> None:
    """Raise InvalidPolicyError when a template uses an unknown placeholder or a stray `$`."""
    parsed = Template(template)
    if not parsed.is_valid():
        raise InvalidPolicyError(
            f"invalid placeholder in metric template {template!r}: write a literal $ as $$"
        )
    unknown = set(parsed.get_identifiers()) - PLACEHOLDERS
    if unknown:
        known = ", ".join(f"${{{name}}}" for name in sorted(PLACEHOLDERS))
        raise InvalidPolicyError(
            f"unknown placeholder(s) {', '.join(sorted(unknown))} in metric template "
            f"{template!r} (known: {known})"
        )


def render(
    template: str,
    *,
    selector: str,
    group_by_labels: str,
    window: str,
    namespace: str = "",
    model: str = "",
) -> str:
    """Fill a template. `namespace` and `model` are escaped for use inside "..." in the template."""
    check_template(template)
    if not re.fullmatch(r"([0-9]+(ms|s|m|h|d))+", window):
        raise ValueError(f"not a PromQL duration: {window!r}")
    return Template(template).substitute(
        selector=selector,
        groupBy=group_by_labels,
        window=window,
        namespace=escape_string_content(namespace),
        model=escape_string_content(model),
    )


_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "bool",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "inf",
        "nan",
        "atan2",
    }
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_LABEL_LIST = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_IDENTIFIER = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(\s*\()?")


def metric_names(template: str) -> frozenset[str]:
    """The metric names a PromQL template selects (`name{...}` or a bare `name`), without its
    functions, keywords, label names, strings and placeholders: what must exist in Prometheus
    for the template to mean anything. A lexical scan, enough for the selectors templates use."""
    text = re.sub(r"\$\{\w+\}|\$\w+", " ", template)
    text = _STRING.sub(" ", text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _LABEL_LIST.sub(" ", text)
    text = re.sub(r"\boffset\s+\S+", " ", text, flags=re.IGNORECASE)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return frozenset(names)


def _require_label_name(label: str) -> None:
    if not LABEL_NAME.fullmatch(label):
        raise ValueError(f"not a Prometheus label name: {label!r}")


def _require_encodable(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"label value is not valid UTF-8: {value!r}") from error
