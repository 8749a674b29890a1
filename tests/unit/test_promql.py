"""PromQL rendering and escaping: a label value can never change a query's meaning."""

from __future__ import annotations

import ast
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policyengine.errors import InvalidPolicyError
from policyengine.metrics import promql

NASTY_VALUES = [
    'x"} or vector(1) #',
    'v2"}',
    "v1|v2",
    "=~",
    'a=~".*"',
    ".*",
    ".+",
    "a.b",
    "back\\slash",
    "trailing\\",
    "new\nline",
    "tab\there",
    "carriage\rreturn",
    "(group)",
    "[class]",
    "{1,3}",
    "^anchored$",
    "$dollar",
    "${selector}",
    "plus+star*?",
    "quote'single",
    "ünïcødé-模型",
    "\x00nul",
    "\x7fdel",
    "\\x41",
]

# A PromQL double-quoted literal: quotes only at the ends, every backslash escaping one char.
QUOTED = re.compile(r'^"(?:[^"\\\n]|\\.)*"$', re.DOTALL)


def decode_literal(literal: str) -> str:
    """What the PromQL lexer makes of the literal: Go and Python agree on these escapes."""
    assert QUOTED.match(literal), literal
    decoded = ast.literal_eval(literal)
    assert isinstance(decoded, str)
    return decoded


def pattern_of(matcher: str, label: str) -> str:
    prefix = f"{label}=~"
    assert matcher.startswith(prefix)
    return decode_literal(matcher[len(prefix) :])


@pytest.mark.parametrize("value", NASTY_VALUES)
def test_quoted_string_round_trips(value: str) -> None:
    assert decode_literal(promql.quote_string(value)) == value


@pytest.mark.parametrize("value", NASTY_VALUES)
def test_alternation_of_one_nasty_value_matches_only_it(value: str) -> None:
    pattern = pattern_of(promql.alternation_matcher("vModelId", [value]), "vModelId")
    # Prometheus anchors matchers: ^(?:pattern)$ — fullmatch is the same question.
    assert re.fullmatch(pattern, value)
    for other in [*NASTY_VALUES, "", "x", "v1", "v2", value + "x", "x" + value]:
        if other != value:
            assert not re.fullmatch(pattern, other), (value, other)


def test_alternation_matches_exactly_the_listed_values() -> None:
    values = ["v1", "v1.5", "v|2", 'x"}']
    pattern = pattern_of(promql.alternation_matcher("name", values), "name")
    for value in values:
        assert re.fullmatch(pattern, value)
    for other in ["v15", "v1x5", "v", "2", "v|2|v1", "", 'x"']:
        assert not re.fullmatch(pattern, other), other


@given(st.text(min_size=1), st.lists(st.text(min_size=1), max_size=5))
def test_any_value_is_selected_exactly(value: str, others: list[str]) -> None:
    matcher = promql.alternation_matcher("version", [value])
    pattern = pattern_of(matcher, "version")
    assert re.fullmatch(pattern, value)
    for other in others:
        assert bool(re.fullmatch(pattern, other)) == (other == value)


@given(st.lists(st.text(min_size=1), min_size=1, max_size=8), st.text())
def test_alternations_select_exactly_their_members(values: list[str], probe: str) -> None:
    pattern = pattern_of(promql.alternation_matcher("version", values), "version")
    assert bool(re.fullmatch(pattern, probe)) == (probe in values)


@given(st.text())
def test_any_string_round_trips(value: str) -> None:
    assert decode_literal(promql.quote_string(value)) == value


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["v1"], 'vModelId=~"v1"'),
        (["v2", "v1", "v1"], 'vModelId=~"v1|v2"'),
        (["a.b"], 'vModelId=~"a\\\\.b"'),
        (['q"'], 'vModelId=~"q\\""'),
        ([f"v{i}" for i in range(201)], 'vModelId=~".+"'),
    ],
)
def test_alternation_matcher_text(values: list[str], expected: str) -> None:
    assert promql.alternation_matcher("vModelId", values) == expected


@pytest.mark.parametrize(
    ("values", "error"),
    [([], "no values"), (["v1", ""], "empty value")],
)
def test_alternation_matcher_refuses(values: list[str], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        promql.alternation_matcher("vModelId", values)


@pytest.mark.parametrize("label", ["", "1abc", "a-b", 'x"}', "a b"])
def test_label_names_are_checked(label: str) -> None:
    with pytest.raises(ValueError, match="label name"):
        promql.alternation_matcher(label, ["v1"])


@pytest.mark.parametrize(
    ("namespace_label", "expected"),
    [
        (None, 'vModelId=~"a|b"'),
        ("namespace_name", 'namespace_name=~"ns1|ns2", vModelId=~"a|b"'),
    ],
)
def test_build_selector(namespace_label: str | None, expected: str) -> None:
    selector = promql.build_selector("vModelId", ["b", "a"], namespace_label, ["ns2", "ns1"])
    assert selector == expected


@pytest.mark.parametrize(
    ("namespace_label", "expected"),
    [(None, "vModelId"), ("namespace_name", "namespace_name, vModelId")],
)
def test_group_by(namespace_label: str | None, expected: str) -> None:
    assert promql.group_by("vModelId", namespace_label) == expected


TEMPLATE = (
    'sum by (${groupBy}) (increase(m_count{${selector}, code!="OK", '
    'ns="${namespace}", model="${model}"}[${window}]))'
)


def test_render_fills_every_placeholder() -> None:
    text = promql.render(
        TEMPLATE,
        selector=promql.build_selector("vModelId", ["v1"]),
        group_by_labels="vModelId",
        window="1m",
        namespace="team-a",
        model='m"}',
    )
    assert text == (
        'sum by (vModelId) (increase(m_count{vModelId=~"v1", code!="OK", '
        'ns="team-a", model="m\\"}"}[1m]))'
    )


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("m{${selector}}[${windw}]", "unknown placeholder"),
        ('m{x=~"a$"}', "invalid placeholder"),
        ("m{${selector}}[$1m]", "invalid placeholder"),
        ("m{${selector}}[$windw]", "unknown placeholder"),
    ],
)
def test_bad_templates_are_rejected(template: str, error: str) -> None:
    with pytest.raises(InvalidPolicyError, match=error):
        promql.check_template(template)


def test_literal_dollar_is_written_twice() -> None:
    text = promql.render(
        'm{${selector}, x=~"a$$"}', selector='v="1"', group_by_labels="v", window="5m"
    )
    assert text == 'm{v="1", x=~"a$"}'


@pytest.mark.parametrize("window", ["1 m", "1m]) or vector(1", "", "1.5m"])
def test_render_refuses_bad_windows(window: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        promql.render("m[${window}]", selector="", group_by_labels="v", window=window)


@pytest.mark.parametrize(
    ("template", "names"),
    [
        (
            'sum by (${groupBy}) (increase(modelmesh_api_request_milliseconds_count{${selector}, code!="OK"}[${window}]))',
            {"modelmesh_api_request_milliseconds_count"},
        ),
        (
            "sum(increase(errors_total[${window}])) / on(pod) group_left sum(x:rate5m offset 5m) > bool 3",
            {"errors_total", "x:rate5m"},
        ),
        ('histogram_quantile(0.99, sum by (le) (rate(http_bucket{a="b}"}[5m])))', {"http_bucket"}),
        ("vector(1e3) and on() up", {"up"}),
    ],
)
def test_metric_names_are_the_selected_families(template: str, names: set[str]) -> None:
    assert promql.metric_names(template) == names
