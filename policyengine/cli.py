"""The command line: parse, call, print. Only this module catches broadly and maps to exit codes."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from policyengine import __version__
from policyengine.controller.leases import LeaseApi, LeaseSettings, ShardLeaser
from policyengine.controller.loop import Controller
from policyengine.controller.metrics import ControllerMetrics
from policyengine.controller.notify import Notifier, NotifySettings
from policyengine.controller.server import ControllerServer, ServerSettings, webhook_secret
from policyengine.errors import PolicyEngineError
from policyengine.gates.gatekeeper import Gatekeeper, cluster_reader, forge_factory
from policyengine.gitops.forges import FORGE_KINDS
from policyengine.gitops.history import release_history, render_history_json, render_history_text
from policyengine.gitops.pullrequests import FORGE_ENV, FORGE_REPO_ENV, FORGE_URL_ENV, WriteMode
from policyengine.gitops.signing import ALLOWED_SIGNERS_ENV, SIGNING_KEY_ENV
from policyengine.gitops.status import parse_status
from policyengine.metrics.settings import PROVIDERS_ENV, load_provider_settings
from policyengine.plan_output import plan_json, plan_markdown, plan_text
from policyengine.policy.duration import parse_duration
from policyengine.policy.loader import find_repository_root, load_tree
from policyengine.policy.validation import check_repository
from policyengine.reconciler import Engine, EngineSettings, PassPlan, PassResult
from policyengine.routekey import SEED_KEY, parse_weights, release_seed, route_key
from policyengine.terminal import ReleaseBars, Terminal

log = logging.getLogger("policyengine")


class EngineGroup(click.Group):
    """Maps the engine's own errors to their exit codes: 1 invalid input, 3 unreachable dependency."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PolicyEngineError as error:
            click.echo(f"error: {error}", err=True)
            ctx.exit(error.exit_code)


@click.group(cls=EngineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="policyengine")
def main() -> None:
    """Git-native release engine for ML models served on Kubernetes."""


@main.command()
@click.argument(
    "paths",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, path_type=Path),
)
@click.option(
    "--repo",
    "repo",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Repository root that manifest paths are relative to "
    "[default: the Git top-level of the first PATH, else the current directory].",
)
@click.option(
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: one line per error; json: a document for CI tools.",
)
@click.option(
    "--prometheus",
    "prometheus_url",
    metavar="URL",
    help="Also forecast, from the baselines' last hour in this Prometheus, how long each canary "
    "needs to pass its relative objectives; warn when maxDuration cannot reach a decision.",
)
@click.option("--now", "now_text", metavar="TIME", help="Evaluate the forecast as of this time.")
def validate(
    paths: tuple[Path, ...],
    repo: Path | None,
    output: str,
    prometheus_url: str | None,
    now_text: str | None,
) -> None:
    """Check ReleasePolicy and MetricSet files (folders: every *.yaml/*.yml below).

    Prints every error as path:line:col: error: field: message and exits 1 when there is one.
    """
    repo_root = repo if repo is not None else find_repository_root(paths[0])
    report = check_repository(load_tree(list(paths), repo_root), repo_root)
    forecasts: list[str] = []
    if prometheus_url is not None and report.valid:
        from policyengine.forecast_report import policy_forecasts

        now = _parse_now(now_text)
        sets = {name: loaded.metric_set for name, loaded in report.metric_sets.items()}
        for loaded in report.policies:
            forecasts += policy_forecasts(loaded, sets, prometheus_url, now)
    if output == "json":
        document = report.to_dict()
        if prometheus_url is not None:
            document["forecasts"] = forecasts
        click.echo(json.dumps(document, indent=2))
    else:
        for issue in report.errors:
            click.echo(str(issue))
        for line in forecasts:
            click.echo(line)
        if report.valid:
            click.echo(report.summary())
        else:
            click.echo(report.failure_summary(), err=True)
    if not report.valid:
        raise SystemExit(1)


# -- the reconciler's commands -------------------------------------------------------------


def _parse_now(value: str | None) -> datetime:
    """--now: RFC 3339 or unix seconds; the wall clock when absent (the only place it is read)."""
    if value is None:
        return datetime.now(UTC)
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):  # 1e20, nan, inf: no such instant
            raise click.BadParameter(
                f"{value!r} is not an instant a clock can show (unix seconds out of range)",
                param_hint="--now",
            ) from None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither RFC 3339 (2026-11-25T10:00:00Z) nor unix seconds",
            param_hint="--now",
        ) from None
    if parsed.tzinfo is None:
        raise click.BadParameter(
            f"{value!r} has no time zone (add Z or +00:00)", param_hint="--now"
        )
    return parsed.astimezone(UTC)


def _default_cache_dir(repo: str, branch: str) -> Path:
    base = os.environ.get("POLICYENGINE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "policyengine"
    )
    digest = hashlib.sha256(f"{repo}\0{branch}".encode()).hexdigest()[:16]
    return Path(base) / digest


def _repo_argument(repo: str) -> str:
    """A local path is made absolute (clones run elsewhere); URLs pass through."""
    if "://" in repo or repo.startswith("git@"):
        return repo
    return str(Path(repo).resolve())


def engine_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--repo, --branch, --cache-dir, --prometheus and --now, shared by the engine's commands."""
    options = [
        click.option(
            "--repo",
            default=".",
            show_default=True,
            envvar="POLICYENGINE_REPO",
            help="The config repository: a path, file://, https:// or ssh URL "
            "[env POLICYENGINE_REPO].",
        ),
        click.option(
            "--branch",
            default="main",
            show_default=True,
            envvar="POLICYENGINE_BRANCH",
            help="Branch to reconcile [env POLICYENGINE_BRANCH].",
        ),
        click.option(
            "--cache-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Where the engine keeps its clone [default: ~/.cache/policyengine/<hash>].",
        ),
        click.option(
            "--prometheus",
            "prometheus_url",
            envvar="POLICYENGINE_PROMETHEUS_URL",
            help="Prometheus base URL, overriding every policy's spec.metrics.provider.url "
            "[env POLICYENGINE_PROMETHEUS_URL].",
        ),
        click.option(
            "--providers",
            "providers_file",
            envvar=PROVIDERS_ENV,
            type=click.Path(dir_okay=False, path_type=Path),
            help="YAML file of the metrics providers (URL and credentials) that policies may "
            "name in spec.metrics.provider.name [env POLICYENGINE_PROVIDERS].",
        ),
        click.option(
            "--now",
            "now_text",
            help="Evaluate as of this instant (RFC 3339 or unix seconds) [default: now].",
        ),
        # Trust settings go to the engine through the context (see _engine), not parameters.
        click.option(
            "--signing-key",
            envvar=SIGNING_KEY_ENV,
            type=click.Path(dir_okay=False, exists=True, path_type=Path),
            expose_value=False,
            callback=_remember,
            help="Sign the engine's commits with this SSH private key (unencrypted file) "
            f"[env {SIGNING_KEY_ENV}].",
        ),
        click.option(
            "--allowed-signers",
            envvar=ALLOWED_SIGNERS_ENV,
            type=click.Path(dir_okay=False, exists=True, path_type=Path),
            expose_value=False,
            callback=_remember,
            help="Act only on policies whose last change is in a commit signed by a key of this "
            "ssh-keygen allowed-signers file (GPG: keys in $GNUPGHOME); hold the others "
            f"[env {ALLOWED_SIGNERS_ENV}].",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _remember(context: click.Context, parameter: click.Parameter, value: Any) -> Any:
    context.meta[f"policyengine.{parameter.name}"] = value
    return value


def gate_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The forge (pull-request write-back) and the cluster (Argo CD sync gate)."""
    options = [
        click.option(
            "--forge",
            type=click.Choice(FORGE_KINDS),
            envvar=FORGE_ENV,
            help="Forge of the pull requests (writeBack.mode pullRequest) [env POLICYENGINE_FORGE].",
        ),
        click.option(
            "--forge-url",
            envvar=FORGE_URL_ENV,
            help="Forge API base URL [default: the public service; env POLICYENGINE_FORGE_URL].",
        ),
        click.option(
            "--forge-repo",
            envvar=FORGE_REPO_ENV,
            help="owner/name (GitLab: group/project) on the forge [env POLICYENGINE_FORGE_REPO]. "
            "The token: POLICYENGINE_FORGE_TOKEN or POLICYENGINE_FORGE_TOKEN_FILE.",
        ),
        click.option(
            "--kubeconfig",
            envvar="POLICYENGINE_KUBECONFIG",
            type=click.Path(dir_okay=False),
            help="Read Argo CD Applications with this kubeconfig (enables the sync gate).",
        ),
        click.option(
            "--in-cluster",
            is_flag=True,
            envvar="POLICYENGINE_IN_CLUSTER",
            help="Read Argo CD Applications with the pod's service account (enables the gate).",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _engine(
    repo: str,
    branch: str,
    cache_dir: Path | None,
    prometheus_url: str | None,
    gate: dict[str, Any] | None = None,
    providers_file: Path | None = None,
) -> Engine:
    remote = _repo_argument(repo)
    context = click.get_current_context(silent=True)
    meta = context.meta if context is not None else {}
    settings = EngineSettings(
        repo=remote,
        branch=branch,
        cache_dir=cache_dir or _default_cache_dir(remote, branch),
        prometheus_url=prometheus_url,
        providers=load_provider_settings(providers_file) if providers_file else {},
        author=(
            os.environ.get("POLICYENGINE_AUTHOR_NAME", "policyengine"),
            os.environ.get("POLICYENGINE_AUTHOR_EMAIL", "policyengine@users.noreply.local"),
        ),
        # s3://bucket/prefix; S3 endpoint and credentials from the environment (docs/golden.md).
        evidence_archive=os.environ.get("POLICYENGINE_EVIDENCE_ARCHIVE") or None,
        signing_key=meta.get("policyengine.signing_key"),
        allowed_signers=meta.get("policyengine.allowed_signers"),
    )
    if gate is None:
        return Engine(settings)
    gatekeeper = Gatekeeper(
        base_branch=branch,
        write=WriteMode(gate["write"]) if gate.get("write") else None,
        forge=forge_factory(gate["forge"], gate["forge_url"], gate["forge_repo"]),
        cluster=cluster_reader(gate["kubeconfig"], gate["in_cluster"]),
        author=settings.author,
    )
    return Engine(settings, gatekeeper=gatekeeper)


def _echo_problems(plan: PassPlan) -> None:
    for notice in plan.notices:
        click.echo(f"warning: {notice}", err=True)
    for issue in plan.load_errors:
        click.echo(str(issue), err=True)
    for policy in plan.policies:
        if policy.error:
            click.echo(f"{policy.path}: error: {policy.key}: {policy.error}", err=True)
        if policy.unreachable:
            click.echo(f"error: {policy.key}: {policy.unreachable}", err=True)


@main.command()
@engine_options
@gate_options
@click.option(
    "--output",
    type=click.Choice(["text", "markdown", "json"]),
    default="text",
    show_default=True,
)
def plan(
    repo: str,
    branch: str,
    cache_dir: Path | None,
    prometheus_url: str | None,
    providers_file: Path | None,
    now_text: str | None,
    output: str,
    **gate: Any,
) -> None:
    """Dry run: each policy's decision and the diff it would commit. Writes nothing."""
    now = _parse_now(now_text)
    pass_plan = _engine(repo, branch, cache_dir, prometheus_url, gate, providers_file).plan(now)
    if output == "text":
        Terminal().plan(pass_plan, plan_text(pass_plan))
    else:
        render = {"markdown": plan_markdown, "json": plan_json}[output]
        click.echo(render(pass_plan), nl=False)
    _echo_problems(pass_plan)
    raise SystemExit(pass_plan.exit_code)


@main.command()
@engine_options
@gate_options
@click.option(
    "--write",
    type=click.Choice([mode.value for mode in WriteMode]),
    help="Override every policy's writeBack.mode: commit to the branch, or pull-request.",
)
@click.option("--once", is_flag=True, help="Run one pass and exit with its status.")
@click.option(
    "--interval",
    "interval_text",
    help="Run a pass every D (e.g. 30s), with jitter, until SIGTERM or SIGINT.",
)
def reconcile(
    repo: str,
    branch: str,
    cache_dir: Path | None,
    prometheus_url: str | None,
    providers_file: Path | None,
    now_text: str | None,
    once: bool,
    interval_text: str | None,
    **gate: Any,
) -> None:
    """Decide every policy and write the decisions to Git (one commit each, one push)."""
    if once == (interval_text is not None):
        raise click.UsageError("give exactly one of --once and --interval")
    engine = _engine(repo, branch, cache_dir, prometheus_url, gate, providers_file)
    if once:
        result = engine.reconcile_once(_parse_now(now_text))
        _report_pass(result)
        raise SystemExit(result.exit_code)
    assert interval_text is not None
    try:
        interval = parse_duration(interval_text).total_seconds()
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--interval") from None
    if now_text is not None:
        raise click.UsageError("--now applies to one pass: use it with --once")
    _loop(engine, interval)


def _loop(engine: Engine, interval: float) -> None:
    """Pass after pass; a signal lets the running pass finish, then the loop ends."""
    controller = Controller(
        engine,
        interval,
        report=_report_pass,
        # A pass that cannot reach Git or Prometheus is retried on the next tick, not fatal.
        report_error=lambda message: click.echo(f"error: {message}", err=True),
    )
    _stop_on_signals(controller)
    controller.run()


def _stop_on_signals(controller: Controller) -> None:
    def stop(signum: int, _frame: object) -> None:
        click.echo(f"received {signal.Signals(signum).name}: finishing the pass", err=True)
        controller.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


@main.command()
@engine_options
@gate_options
@click.option(
    "--write",
    type=click.Choice([mode.value for mode in WriteMode]),
    help="Override every policy's writeBack.mode: commit to the branch, or pull-request.",
)
@click.option(
    "--interval",
    "interval_text",
    default="30s",
    show_default=True,
    envvar="POLICYENGINE_INTERVAL",
    help="Time between passes when no webhook arrives [env POLICYENGINE_INTERVAL].",
)
@click.option(
    "--listen",
    default="0.0.0.0:8080",
    show_default=True,
    envvar="POLICYENGINE_LISTEN",
    help="HOST:PORT of /metrics, /healthz, /readyz and /webhooks/{github,gitlab,gitea} "
    "(port 0: any free port, printed at start). The webhook secret: "
    "POLICYENGINE_WEBHOOK_SECRET or POLICYENGINE_WEBHOOK_SECRET_FILE.",
)
@click.option(
    "--shards",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    envvar="POLICYENGINE_SHARDS",
    help="Spread policies over N shards, each a coordination.k8s.io Lease; a replica reconciles "
    "only the shards it holds. 0: no Leases (one replica) [env POLICYENGINE_SHARDS].",
)
@click.option(
    "--lease-namespace",
    envvar="POD_NAMESPACE",
    default="default",
    show_default=True,
    help="Namespace of the shard Leases [env POD_NAMESPACE].",
)
@click.option(
    "--identity",
    envvar="POD_NAME",
    help="This replica's name in the Leases and the Holder trailer [env POD_NAME; "
    "default: the host name].",
)
@click.option(
    "--lease-duration",
    "lease_duration_text",
    default="15s",
    show_default=True,
    help="How long a Lease lasts without renewal (renewed every third of it).",
)
@click.option(
    "--notify-hold-after",
    "notify_hold_after_text",
    default="30m",
    show_default=True,
    envvar="POLICYENGINE_NOTIFY_HOLD_AFTER",
    help="Notify when a policy has held this long [env POLICYENGINE_NOTIFY_HOLD_AFTER]. Sinks: "
    "POLICYENGINE_NOTIFY_SLACK_URL, _TEAMS_URL, _WEBHOOK_URL (or each with _FILE).",
)
@click.option(
    "--notify-link",
    default="",
    envvar="POLICYENGINE_NOTIFY_LINK",
    help="Link to a commit in notifications, {sha} replaced, e.g. "
    "https://github.com/org/repo/commit/{sha} [env POLICYENGINE_NOTIFY_LINK].",
)
def run(
    repo: str,
    branch: str,
    cache_dir: Path | None,
    prometheus_url: str | None,
    providers_file: Path | None,
    now_text: str | None,
    interval_text: str,
    listen: str,
    shards: int,
    lease_namespace: str,
    identity: str | None,
    lease_duration_text: str,
    notify_hold_after_text: str,
    notify_link: str,
    **gate: Any,
) -> None:
    """Run in the cluster: the reconcile loop, forge webhooks, /metrics and health probes.

    A pass runs every --interval and at once when a signed push or merged pull request arrives
    on /webhooks/<forge>. SIGTERM lets the running pass finish, then exits 0.
    """
    if now_text is not None:
        raise click.UsageError("--now applies to one pass: use it with reconcile --once")
    try:
        interval = parse_duration(interval_text).total_seconds()
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--interval") from None
    host, _, port_text = listen.rpartition(":")
    if not host or not port_text.isdigit():
        raise click.BadParameter(f"{listen!r} is not HOST:PORT", param_hint="--listen")
    engine = _engine(repo, branch, cache_dir, prometheus_url, gate, providers_file)
    metrics = ControllerMetrics()
    leaser = None
    if shards:
        try:
            duration = round(parse_duration(lease_duration_text).total_seconds())
            lease_settings = LeaseSettings(
                namespace=lease_namespace,
                identity=identity or socket.gethostname(),
                shards=shards,
                duration=duration,
                renew_every=duration / 3,
            )
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--lease-duration") from None
        api = LeaseApi.from_cluster(gate.get("kubeconfig"), bool(gate.get("in_cluster")))
        leaser = ShardLeaser(api, lease_settings, on_change=metrics.shards_held.set)
    try:
        hold_after = parse_duration(notify_hold_after_text)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--notify-hold-after") from None
    notify_settings = NotifySettings.from_environment(
        hold_after=hold_after, link_template=notify_link
    )
    notifier = None
    if notify_settings.sinks:
        notifier = Notifier(
            notify_settings,
            on_result=lambda sink, result: metrics.notifications.labels(
                sink=sink, result=result
            ).inc(),
        )
        click.echo(f"notifications: {', '.join(sorted(notify_settings.sinks))}")
    controller = Controller(
        engine,
        interval,
        metrics=metrics,
        scopes=leaser,
        listeners=(notifier,) if notifier is not None else (),
        report=_report_pass,
        report_error=lambda message: click.echo(f"error: {message}", err=True),
    )
    settings = ServerSettings(
        host=host,
        port=int(port_text),
        webhook_secret=webhook_secret(),
        branch=branch,
        stuck_after=max(600.0, 10 * interval),
    )
    server = ControllerServer(controller, settings)
    server.start()
    click.echo(f"listening on {host}:{server.port}")
    if not settings.webhook_secret:
        click.echo("no webhook secret set: every webhook is refused with 401", err=True)
    _stop_on_signals(controller)
    if leaser is not None:
        leaser.start()
        click.echo(
            f"shards: {shards}, Leases in namespace {lease_namespace} as {leaser.settings.identity}"
        )
    try:
        controller.run()
    finally:
        if leaser is not None:
            leaser.stop(release=True)  # the others take the shards at once, not after expiry
        if notifier is not None:
            notifier.stop()
        server.stop()


def _report_pass(result: PassResult) -> None:
    click.echo(plan_text(result.plan, diffs=False), nl=False)
    if result.commits:
        click.echo(f"pushed {len(result.commits)} commit(s) to the remote")
    for key in result.yielded:
        click.echo(f"{key}: yielded to a human commit on the same lines; re-planning next pass")
    for proposal in result.proposals:
        click.echo(proposal.line(), err=bool(proposal.exit_code))
        for line in proposal.warning_lines():
            click.echo(line, err=True)
    _echo_problems(result.plan)


@main.command()
@click.argument("policy", required=False)
@click.option("--repo", default=".", show_default=True, help="The config repository.")
@click.option("--branch", default="main", show_default=True)
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def history(
    policy: str | None, repo: str, branch: str, cache_dir: Path | None, output: str
) -> None:
    """The release timeline from the engine's commit trailers (POLICY is namespace/name)."""
    engine = _engine(repo, branch, cache_dir, None)
    entries = release_history(engine.workspace.root, branch, policy)
    if output == "json":
        click.echo(render_history_json(entries), nl=False)
    else:
        Terminal().history(entries, render_history_text(entries))


@main.command("route-key")
@click.argument("keys", nargs=-1, required=True)
@click.option(
    "--status",
    "status_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A release status file (.policyengine/status/NS/NAME.yaml): its weights and seed.",
)
@click.option("--weights", help="Weights instead of a status file, as v1=90,v2=10.")
@click.option("--seed", help="Seed instead of a status file (its extra.routeSeed).")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def route_key_command(
    keys: tuple[str, ...],
    status_file: Path | None,
    weights: str | None,
    seed: str | None,
    output: str,
) -> None:
    """The version that serves each user KEY (sticky A/B/n assignment, proportional to weights).

    Send the answer in the x-policyengine-version header: the routers' pin routes keep the user
    on that version.
    """
    if status_file is not None:
        status = parse_status(status_file.read_text(encoding="utf-8"))
        split = {name: float(weight) for name, weight in status.split.weights}
        seed = seed or status.extra.get(SEED_KEY) or release_seed(status.release_id)
    elif weights is not None and seed is not None:
        try:
            split = parse_weights(weights)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--weights") from error
    else:
        raise click.UsageError("give --status FILE, or --weights and --seed")
    if weights is not None and status_file is not None:
        split = parse_weights(weights)
    if not any(weight > 0 for weight in split.values()):
        raise click.BadParameter("no version has a positive weight", param_hint="--weights")
    assigned = {key: route_key(key, split, seed) for key in keys}
    if output == "json":
        click.echo(json.dumps(assigned, indent=2))
    else:
        for key, version in assigned.items():
            click.echo(f"{key}\t{version}")


# -- the demo ------------------------------------------------------------------------------


@main.command()
@click.option("--seed", default=1, show_default=True, help="Seed of the simulated fleet.")
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the GitOps repository at DIR (new or empty); `git -C DIR log` shows the decisions.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the HTML report here [default: a new temporary folder].",
)
@click.option(
    "--metrics",
    type=click.Choice(["auto", "prometheus", "embedded"]),
    default="auto",
    show_default=True,
    help="auto: the real Prometheus when the binary is on PATH, else the embedded stand-in.",
)
def demo(seed: int, keep: Path | None, report_path: Path | None, metrics: str) -> None:
    """Two canary releases on a simulated fleet against Prometheus and Git: one promoted, one
    rolled back. Exits 0 when both end as expected."""
    from policyengine.demo.prometheus_process import find_prometheus
    from policyengine.demo.run import DemoOptions, run_demo

    binary = None if metrics == "embedded" else find_prometheus()
    if metrics == "prometheus" and binary is None:
        raise click.BadParameter("no prometheus binary on PATH", param_hint="--metrics")

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        options = DemoOptions(seed=seed, keep=keep, report=report_path, prometheus=binary)
        terminal = Terminal()
        if terminal.is_rich:
            with ReleaseBars(terminal) as bars:
                result = run_demo(options, bars.echo, bars.update)
        else:
            result = run_demo(options, click.echo)
    except KeyboardInterrupt:
        click.echo("interrupted: Prometheus stopped, temporary files removed", err=True)
        raise SystemExit(130) from None
    except FileExistsError as error:
        raise click.BadParameter(str(error), param_hint="--keep") from None
    except FileNotFoundError as error:  # examples/ missing: not run from a checkout
        click.echo(f"error: {error}", err=True)
        raise SystemExit(1) from None
    click.echo("")
    if result.repository is not None:
        click.echo(f"repository kept at {result.repository}: git -C {result.repository} log")
    click.echo(f"report: {result.report}")
    summary = ", ".join(f"{key} {outcome}" for key, outcome in result.outcomes.items())
    click.echo(f"{summary} in {result.minutes} simulated minutes ({result.seconds:.0f} s)")
    if not result.as_expected:
        expected = ", ".join(f"{key} {outcome}" for key, outcome in result.expected.items())
        click.echo(f"error: the demo expected {expected}", err=True)
    raise SystemExit(result.exit_code)


# -- backtest -----------------------------------------------------------------------------------


@main.command()
@click.argument("policy")
@click.option(
    "--from", "from_text", required=True, help="First instant (RFC 3339 or unix seconds)."
)
@click.option("--to", "to_text", required=True, help="Last instant (RFC 3339 or unix seconds).")
@click.option("--step", "step_text", default="1m", show_default=True, help="Time between passes.")
@click.option(
    "--repo",
    default=".",
    show_default=True,
    help="The config repository: a working tree (copied as it is), a bare repository or a URL.",
)
@click.option("--branch", default="main", show_default=True, help="Branch, when cloning.")
@click.option(
    "--prometheus",
    "prometheus_url",
    help="Prometheus base URL, overriding the policy's spec.metrics.provider.url.",
)
@click.option(
    "--providers",
    "providers_file",
    envvar=PROVIDERS_ENV,
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML file of the metrics providers policies may name [env POLICYENGINE_PROVIDERS].",
)
@click.option(
    "--fresh",
    is_flag=True,
    help="Ignore the release status at the head: replay as a new release from --from.",
)
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def backtest(
    policy: str,
    from_text: str,
    to_text: str,
    step_text: str,
    repo: str,
    branch: str,
    prometheus_url: str | None,
    providers_file: Path | None,
    fresh: bool,
    output: str,
) -> None:
    """Replay POLICY (namespace/name) over stored Prometheus history: the decision it would have
    taken at each step, with its evidence. Writes nothing, neither to the repository nor the remote.
    """
    from policyengine.backtest import (
        backtest_json,
        backtest_repository,
        backtest_text,
        check_policy_key,
        parse_instant,
        replay_instants,
    )

    try:
        check_policy_key(policy)
        start, end = parse_instant(from_text), parse_instant(to_text)
        step = parse_duration(step_text)
        instants = replay_instants(start, end, step)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    result = backtest_repository(
        _repo_argument(repo),
        policy,
        instants,
        branch=branch,
        prometheus_url=prometheus_url,
        fresh=fresh,
        known_providers=load_provider_settings(providers_file) if providers_file else None,
    )
    click.echo((backtest_json if output == "json" else backtest_text)(result), nl=False)


# -- loadtest -----------------------------------------------------------------------------------


def _rate_option(text: str) -> tuple[float, float | None]:
    """ "50" or a ramp "50:500" (requests per second)."""
    start, _, end = text.partition(":")
    try:
        return float(start), (float(end) if end else None)
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: give requests per second, e.g. 50 or a ramp 50:500"
        ) from None


@main.command()
@click.argument("url")
@click.option(
    "--protocol",
    type=click.Choice(["v2-rest", "v2-grpc", "openai"]),
    default="v2-rest",
    show_default=True,
    help="KServe V2 / Open Inference Protocol over REST or gRPC, or OpenAI-compatible streaming.",
)
@click.option("--model", help="Model name (V2: the path's model; OpenAI: the request's model).")
@click.option("--model-version", help="V2 model version (optional).")
@click.option("--vmodel-id", help="ModelMesh: send this mm-vmodel-id header / gRPC metadata.")
@click.option(
    "--rate",
    "rate_text",
    default="10",
    show_default=True,
    help="Requests per second, or a linear ramp START:END over the duration.",
)
@click.option("--duration", "duration_text", default="10s", show_default=True)
@click.option(
    "--requests", "count", type=click.IntRange(min=1), help="Stop after N measured requests."
)
@click.option("--warmup", "warmup_text", default="2s", show_default=True, help="Not measured.")
@click.option(
    "--payloads",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON lines of request bodies, sent round-robin [default: made up from the model's "
    "metadata (V2) or a few prompts (OpenAI)].",
)
@click.option("--header", "headers", multiple=True, help="Extra header NAME=VALUE (repeatable).")
@click.option("--connections", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--timeout", "timeout_text", default="10s", show_default=True)
@click.option("--openai-path", default="/v1/completions", show_default=True)
@click.option("--max-tokens", type=click.IntRange(min=1), default=64, show_default=True)
@click.option(
    "--slo", "slo_texts", multiple=True, help="An SLO such as 'p99 <= 200ms' (repeatable)."
)
@click.option(
    "--output", type=click.Choice(["text", "markdown", "json"]), default="text", show_default=True
)
@click.option(
    "--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), help="HTML report."
)
@click.option("--progress/--no-progress", default=None, help="[default: when stderr is a terminal]")
def loadtest(
    url: str,
    protocol: str,
    model: str | None,
    model_version: str | None,
    vmodel_id: str | None,
    rate_text: str,
    duration_text: str,
    count: int | None,
    warmup_text: str,
    payloads: Path | None,
    headers: tuple[str, ...],
    connections: int,
    timeout_text: str,
    openai_path: str,
    max_tokens: int,
    slo_texts: tuple[str, ...],
    output: str,
    html_path: Path | None,
    progress: bool | None,
) -> None:
    """Open-loop load test of an inference endpoint at URL: requests leave at a fixed rate whatever
    the server does, and latency counts from each request's intended send time.

    Exit 0 when every --slo is met, 4 when one is missed, 1 on bad input, 3 when the endpoint
    cannot be reached.
    """
    import sys

    from policyengine.loadtest.html import render_html
    from policyengine.loadtest.result import render_markdown
    from policyengine.loadtest.runner import LoadTestConfig, run_loadtest
    from policyengine.loadtest.schedule import Schedule
    from policyengine.loadtest.slo import assess, checks_markdown, parse_all

    start_rate, end_rate = _rate_option(rate_text)
    try:
        slos = parse_all(slo_texts)
        schedule = Schedule(
            rate=start_rate,
            end_rate=end_rate,
            duration=parse_duration(duration_text).total_seconds(),
            requests=count,
            warmup=parse_duration(warmup_text).total_seconds(),
        )
        timeout = parse_duration(timeout_text).total_seconds()
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    extra: dict[str, str] = {}
    for header in headers:
        name, sep, value = header.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"--header {header!r}: write NAME=VALUE")
        extra[name] = value
    config = LoadTestConfig(
        url=url,
        protocol=protocol,  # type: ignore[arg-type]
        schedule=schedule,
        model=model,
        version=model_version,
        vmodel_id=vmodel_id,
        payloads=payloads,
        headers=extra,
        connections=connections,
        timeout=timeout,
        openai_path=openai_path,
        max_tokens=max_tokens,
    )
    show = sys.stderr.isatty() if progress is None else progress
    try:
        result = run_loadtest(config, _progress_bar if show else None)
    except LookupError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(3) from None
    if show:
        click.echo("", err=True)
    checks = assess(result.metrics(), slos)
    if output == "json":
        document = result.to_json()
        document["slos"] = [
            {"slo": c.slo.text, "value": c.value, "passed": c.passed} for c in checks
        ]
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo(render_markdown(result), nl=False)
        if checks:
            click.echo("\n" + checks_markdown(checks), nl=False)
    if html_path is not None:
        html_path.write_text(render_html(result, checks), encoding="utf-8")
    if result.sent and result.ok == 0 and result.errors.keys() <= {"connection"}:
        raise SystemExit(3)
    if any(not check.passed for check in checks):
        raise SystemExit(4)


def _progress_bar(state: Any) -> None:
    width = 30
    share = min(1.0, state.elapsed / state.total) if state.total else 1.0
    filled = int(share * width)
    click.echo(
        f"\r[{'#' * filled}{'.' * (width - filled)}] {state.elapsed:5.1f}/{state.total:.1f} s "
        f"sent {state.sent} done {state.done} errors {state.errors} in flight {state.in_flight}  ",
        err=True,
        nl=False,
    )
