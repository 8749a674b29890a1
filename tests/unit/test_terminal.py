"""The terminal presentation: rich tables and bars on a TTY, the plain renderers' text elsewhere."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from rich.console import Console

from policyengine.demo.progress import ReleaseLine
from policyengine.gitops.history import HistoryEntry, render_history_text
from policyengine.terminal import ReleaseBars, Terminal

ENTRIES = [
    HistoryEntry(
        datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
        "fraud-detection/fraud-detector",
        "rollback",
        "v1=100,v2=0",
        "0123456789abcdef",
        "error-rate fail",
    )
]


def _console(tty: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=tty, width=120, color_system="standard"), out


def test_not_a_tty_prints_the_plain_text_byte_for_byte() -> None:
    console, out = _console(tty=False)
    terminal = Terminal(console)
    assert not terminal.is_rich  # a StringIO is no TTY
    plain = render_history_text(ENTRIES)
    terminal.history(ENTRIES, plain)
    assert out.getvalue() == plain


def test_a_tty_gets_a_coloured_table() -> None:
    console, out = _console(tty=True)
    Terminal(console, rich=True).history(ENTRIES, render_history_text(ENTRIES))
    text = out.getvalue()
    assert "\x1b[" in text  # colour
    assert "fraud-detection/fraud-detector" in text and "0123456789" in text
    assert "0123456789abcdef" not in text  # the short commit id, as in the plain table


def test_release_bars_track_the_candidate_share() -> None:
    console, out = _console(tty=True)
    terminal = Terminal(console, rich=True)
    line = ReleaseLine("ns/model", 40, "v1=60,v2=40", "progressing", "advance", "error-rate pass")
    with ReleaseBars(terminal) as bars:
        bars.update(line)
        bars.echo("a change line")
    text = out.getvalue()
    assert "ns/model" in text and "40 %" in text and "a change line" in text
    assert "━" in text  # rich's bar
