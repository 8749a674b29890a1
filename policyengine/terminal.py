"""What a person at a terminal sees: rich tables, colour and live progress bars, and on anything
else (a pipe, a CI log, a test) the plain text the other renderers produce, byte for byte.

`Terminal.is_rich`: standard output is a TTY (and TERM is not dumb); FORCE_COLOR alone does not
turn tables on, so scripts and CI logs always get the plain renderers' text, their contract.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table

from policyengine.gitops.commits import format_rfc3339
from policyengine.gitops.history import HistoryEntry

if TYPE_CHECKING:
    from policyengine.demo.progress import ReleaseLine
    from policyengine.reconciler import PassPlan

DECISION_STYLES = {
    "advance": "cyan",
    "promote": "bold green",
    "rollback": "bold red",
    "hold": "yellow",
    "done": "dim",
    "begin": "cyan",
}


class Terminal:
    """Where the CLI's human-facing output goes."""

    def __init__(self, console: Console | None = None, rich: bool | None = None) -> None:
        self.console = console or Console(highlight=False, soft_wrap=True)
        if rich is None:
            isatty = getattr(self.console.file, "isatty", None)
            rich = bool(isatty and isatty()) and not self.console.is_dumb_terminal
        self._rich = rich

    @property
    def is_rich(self) -> bool:
        return self._rich

    def history(self, entries: Sequence[HistoryEntry], plain: str) -> None:
        if not self.is_rich or not entries:
            self.console.file.write(plain)
            return
        table = Table("time", "policy", "decision", "weights", "commit", "reason", box=None)
        for entry in entries:
            table.add_row(
                format_rfc3339(entry.time),
                entry.policy,
                f"[{DECISION_STYLES.get(entry.decision, '')}]{entry.decision}[/]",
                entry.weights,
                entry.commit[:10],
                entry.reason,
            )
        self.console.print(table)

    def plan(self, plan: PassPlan, plain: str) -> None:
        if not self.is_rich or not plan.policies:
            self.console.file.write(plain)
            return
        table = Table(
            "policy",
            "decision",
            "weights",
            "phase",
            "reason",
            title=f"plan at {format_rfc3339(plan.now)} on {plan.head[:10] or 'working tree'}",
            box=None,
        )
        for policy in plan.policies:
            outcome = policy.outcome
            if outcome is None:
                table.add_row(policy.key, "[red]error[/]", "", "", policy.error or "")
                continue
            decision = str(outcome.decision)
            table.add_row(
                policy.key,
                f"[{DECISION_STYLES.get(decision, '')}]{decision}[/]",
                outcome.split.trailer(),
                str(outcome.phase),
                outcome.reason,
            )
        self.console.print(table)
        # the diffs, as plain text below the table (the plain renderer's lines after the headlines)
        for policy in plan.policies:
            for diff in policy.diffs.values():
                self.console.print(diff.rstrip("\n"), markup=False, style="dim")


class ReleaseBars:
    """Live bars of the candidate's share of traffic per release while the demo runs (rich
    terminals only); the demo's change lines print above them."""

    def __init__(self, terminal: Terminal) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=30),
            TextColumn("{task.completed:>3.0f} %  {task.fields[state]}"),
            console=terminal.console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    @property
    def echo(self) -> Callable[[str], None]:
        return lambda text: self._progress.console.print(text, markup=False, highlight=False)

    def update(self, line: ReleaseLine) -> None:
        if line.policy not in self._tasks:
            self._tasks[line.policy] = self._progress.add_task(
                line.policy, total=100, state=line.phase
            )
        state = line.phase if line.phase not in ("progressing", "idle") else line.decision
        style = "red" if line.phase == "rolled back" else None
        self._progress.update(
            self._tasks[line.policy],
            completed=line.candidate_weight,
            state=state,
            description=f"[{style}]{line.policy}[/]" if style else line.policy,
        )

    def __enter__(self) -> ReleaseBars:
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._progress.stop()
