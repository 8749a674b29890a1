"""PrometheusProvider: the MetricsProvider over Prometheus's HTTP API, with auth, TLS and deadlines.

Works against Prometheus and OpenShift's thanos-querier (bearer token, custom CA or insecure).
Credentials come only from the operator's provider settings or `--prometheus` (metrics/settings.py),
never from a policy. Secrets are read from files or the environment, never logged, and removed from
every message (a URL's password, a token an error body echoes). Queries are POSTed as a form, so
long batched selectors stay out of URLs and access logs.

Every query has one deadline covering its retries and its whole answer, however slowly a server
trickles it, and every pass has a budget (`new_pass`): a hanging or trickling Prometheus costs a
pass a bounded time. Every answer is checked before use: a body that is not the API's JSON, a
missing field or a non-numeric sample is the provider failing (UNREACHABLE, exit 3), never a
traceback.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import requests
from urllib3.exceptions import InsecureRequestWarning

from policyengine.analysis.observations import DataStatus
from policyengine.errors import InvalidPolicyError
from policyengine.metrics.provider import Point, QueryResult, Series
from policyengine.metrics.settings import ProviderSettings, named_provider
from policyengine.policy.duration import parse_duration
from policyengine.policy.models import Provider

log = logging.getLogger(__name__)

RETRY_ON_STATUS = (500, 502, 503, 504)
MAX_ANSWER_BYTES = 256 * 1024 * 1024
"""An answer above this is refused: a pass's batched range queries stay far below it."""
PASS_BUDGET_SECONDS = 120.0
"""All queries to one provider in one pass: past this, the rest hold as unreachable."""
_READ_CHUNK = 256 * 1024
_AUTH_IN_TEXT = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")


class _Failure(Exception):
    """One attempt failed; `retry` when another attempt may succeed."""

    def __init__(self, status: DataStatus, message: str, retry: bool) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry = retry


class PrometheusProvider:
    """Sends PromQL to one Prometheus HTTP API; counts the queries it sends (`queries_sent`)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        retries: int = 2,
        bearer_token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        ca_file: str | None = None,
        insecure: bool = False,
        backoff: float = 0.2,
        pass_budget: float = PASS_BUDGET_SECONDS,
    ) -> None:
        clean, from_url = _split_userinfo(url)
        basic_auth = basic_auth or from_url
        self._url = clean.rstrip("/")
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff
        self._insecure = insecure
        self._pass_budget = pass_budget
        self._pass_deadline: float | None = None
        self.queries_sent = 0
        self.errors = 0  # answers that were not data: unreachable, refused, unreadable
        self._secrets = tuple(
            secret
            for secret in (bearer_token, *(basic_auth or ()), *(from_url or ()))
            if secret and len(secret) >= 3
        )
        self._session = requests.Session()
        self._session.verify = False if insecure else (ca_file or True)
        self._session.trust_env = False  # a proxy from the environment is not the operator's choice
        if bearer_token:
            self._session.headers["Authorization"] = f"Bearer {bearer_token}"
        elif basic_auth:
            self._session.auth = basic_auth

    @classmethod
    def from_settings(
        cls,
        settings: Provider,
        url_override: str | None = None,
        environ: Mapping[str, str] | None = None,
        known: Mapping[str, ProviderSettings] | None = None,
    ) -> PrometheusProvider:
        """Build from a policy's `spec.metrics.provider`; `url_override` is `--prometheus`.

        `--prometheus` replaces every policy's provider (with only the credentials its own URL
        carries). Otherwise a named provider comes from `known` (the operator's settings), with
        its URL and its credentials; a policy's own URL gets no credentials at all.
        """
        timeout = parse_duration(settings.timeout).total_seconds()
        if settings.name is not None and not url_override:
            return cls.from_operator(
                named_provider(settings.name, known or {}),
                timeout=timeout,
                retries=settings.retries,
                environ=environ,
            )
        url = url_override or settings.url
        if not url:
            raise InvalidPolicyError(
                "no Prometheus URL: set spec.metrics.provider.url or .name, or pass --prometheus"
            )
        return cls(_checked_url(url), timeout=timeout, retries=settings.retries)

    @classmethod
    def from_operator(
        cls,
        settings: ProviderSettings,
        *,
        timeout: float = 10.0,
        retries: int = 2,
        environ: Mapping[str, str] | None = None,
    ) -> PrometheusProvider:
        """A provider of the operator's settings, its secrets read from its files or variables."""
        env = os.environ if environ is None else environ
        bearer_token = None
        basic_auth = None
        if settings.bearer_token_file:
            bearer_token = _read_secret_file(settings.bearer_token_file, "bearer token")
        elif settings.bearer_token_env:
            bearer_token = _read_secret_env(env, settings.bearer_token_env, "bearer token")
        if settings.basic_auth is not None:
            basic = settings.basic_auth
            username = basic.username
            if basic.username_env:
                username = _read_secret_env(env, basic.username_env, "user name")
            if not username:
                raise InvalidPolicyError(
                    f"provider {settings.name}: basicAuth needs username or usernameEnv"
                )
            if basic.password_file:
                password = _read_secret_file(basic.password_file, "password")
            elif basic.password_env:
                password = _read_secret_env(env, basic.password_env, "password")
            else:
                raise InvalidPolicyError(
                    f"provider {settings.name}: basicAuth needs passwordFile or passwordEnv"
                )
            basic_auth = (username, password)
        return cls(
            _checked_url(settings.url),
            timeout=timeout,
            retries=retries,
            bearer_token=bearer_token,
            basic_auth=basic_auth,
            ca_file=settings.ca_file,
            insecure=settings.insecure_skip_verify,
        )

    @property
    def url(self) -> str:
        """The base URL without any user or password in it."""
        return self._url

    def new_pass(self) -> None:
        """Start a pass's budget: its queries together take at most `pass_budget` seconds."""
        self._pass_deadline = time.monotonic() + self._pass_budget

    def query(self, promql: str, at: datetime) -> QueryResult:
        self.queries_sent += 1
        log.debug("query at %s: %s", at.isoformat(), promql)
        return self._run("/api/v1/query", {"query": promql, "time": _seconds(at)}, promql)

    def query_range(
        self, promql: str, start: datetime, end: datetime, step: timedelta
    ) -> QueryResult:
        self.queries_sent += 1
        log.debug(
            "query_range %s..%s step %s: %s", start.isoformat(), end.isoformat(), step, promql
        )
        form = {
            "query": promql,
            "start": _seconds(start),
            "end": _seconds(end),
            "step": f"{step.total_seconds():g}",
        }
        return self._run("/api/v1/query_range", form, promql)

    def is_up(self) -> bool:
        """Whether the query API answers (a trivial query; not counted in `queries_sent`)."""
        result = self._run("/api/v1/query", {"query": "vector(1)"}, "vector(1)")
        return result.status in (DataStatus.OK, DataStatus.NO_DATA)

    def close(self) -> None:
        self._session.close()

    def redact(self, text: str) -> str:
        """The text without this provider's secrets or anything shaped like a credential."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _AUTH_IN_TEXT.sub(lambda match: f"{match.group(1)} ***", text)

    # -- sending -------------------------------------------------------------------------------

    def _run(self, path: str, form: Mapping[str, str], promql: str) -> QueryResult:
        result = self._send(path, form, promql)
        if result.status in (DataStatus.UNREACHABLE, DataStatus.QUERY_ERROR):
            self.errors += 1
        return result

    def _send(self, path: str, form: Mapping[str, str], promql: str) -> QueryResult:
        start = time.monotonic()
        deadline = start + self._timeout
        if self._pass_deadline is not None:
            if start >= self._pass_deadline:
                return QueryResult(
                    DataStatus.UNREACHABLE,
                    message=f"Prometheus at {self._url}: the pass's budget of "
                    f"{self._pass_budget:g} s for queries is spent; not sent",
                    query=promql,
                )
            deadline = min(deadline, self._pass_deadline)
        attempt = 0
        while True:
            try:
                with self._quiet_if_insecure():
                    body = self._attempt(path, form, deadline)
                return _parse(body, promql, self._url)
            except _Failure as failure:
                pause = self._backoff * (2**attempt)
                attempt += 1
                if (
                    not failure.retry
                    or attempt > self._retries
                    or time.monotonic() + pause >= deadline
                ):
                    message = self.redact(failure.message)
                    if failure.status is DataStatus.QUERY_ERROR:
                        message = f"{message}: {promql}"
                    return QueryResult(failure.status, message=message, query=promql)
                time.sleep(pause)

    def _attempt(self, path: str, form: Mapping[str, str], deadline: float) -> bytes:
        """One POST, its whole answer read before `deadline`; raises `_Failure`."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._timed_out()
        try:
            response = self._session.post(
                self._url + path,
                data=dict(form),
                timeout=(remaining, remaining),
                stream=True,
                allow_redirects=False,  # credentials are for this URL, not where it points
            )
        except requests.Timeout as error:
            raise self._timed_out() from error
        except (requests.RequestException, ValueError) as error:
            raise _Failure(
                DataStatus.UNREACHABLE,
                f"Prometheus at {self._url} is unreachable: {_reason(error)}",
                retry=True,
            ) from error
        try:
            body = self._read_body(response, deadline)
        finally:
            response.close()
        status = response.status_code
        if status == 200:
            return body
        detail = _error_detail(body, response.reason)
        if status >= 500 or status in (401, 403) or status < 200 or 300 <= status < 400:
            # 5xx is an overloaded or broken server; 401/403 means we cannot get in at all;
            # a redirect is not followed with credentials: all are "cannot measure".
            raise _Failure(
                DataStatus.UNREACHABLE,
                f"Prometheus at {self._url} failed with HTTP {status}: {detail}",
                retry=status in RETRY_ON_STATUS,
            )
        raise _Failure(
            DataStatus.QUERY_ERROR,
            f"Prometheus at {self._url} rejected the query (HTTP {status}: {detail})",
            retry=False,
        )

    def _read_body(self, response: requests.Response, deadline: float) -> bytes:
        """The answer, read piece by piece against the deadline (a read timeout alone restarts
        with every byte a trickling server sends)."""
        chunks: list[bytes] = []
        size = 0
        raw = response.raw
        try:
            while True:
                if time.monotonic() >= deadline:
                    raise self._timed_out()
                chunk = raw.read1(_READ_CHUNK, decode_content=True)
                if not chunk:
                    break
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raise _Failure(
                        DataStatus.UNREACHABLE,
                        f"Prometheus at {self._url} answered more than {MAX_ANSWER_BYTES} bytes",
                        retry=False,
                    )
                chunks.append(chunk)
        except requests.RequestException as error:
            raise _Failure(
                DataStatus.UNREACHABLE,
                f"Prometheus at {self._url} broke off its answer: {_reason(error)}",
                retry=True,
            ) from error
        except _Failure:
            raise
        except Exception as error:  # urllib3's own timeouts and protocol errors
            if "timed out" in str(error).lower():
                raise self._timed_out() from error
            raise _Failure(
                DataStatus.UNREACHABLE,
                f"Prometheus at {self._url} broke off its answer: {type(error).__name__}: "
                f"{str(error)[:300]}",
                retry=True,
            ) from error
        return b"".join(chunks)

    def _timed_out(self) -> _Failure:
        return _Failure(
            DataStatus.UNREACHABLE,
            f"Prometheus at {self._url} is unreachable: no complete answer within the "
            f"deadline of {self._timeout:g} s (spec.metrics.provider.timeout)",
            retry=False,
        )

    @contextmanager
    def _quiet_if_insecure(self) -> Iterator[None]:
        # insecureSkipVerify is an explicit choice; urllib3's warning on every request is noise.
        with warnings.catch_warnings():
            if self._insecure:
                warnings.simplefilter("ignore", InsecureRequestWarning)
            yield


def _split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """The URL without user and password, and them (for basic auth), when it has them."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, None
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return clean, (unquote(user), unquote(password))


def _checked_url(url: str) -> str:
    """The URL, or the policy's error when it cannot be a Prometheus base URL (`http://[::1`)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as error:
        shown = _split_userinfo(url)[0] if "[" not in url else url.split("@")[-1]
        raise InvalidPolicyError(f"not a usable Prometheus URL {shown!r}: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidPolicyError(
            f"not a usable Prometheus URL {_split_userinfo(url)[0]!r}: give http(s)://host[:port]"
        )
    return url


def _seconds(moment: datetime) -> str:
    return f"{moment.timestamp():.3f}"


def _parse(body: bytes, promql: str, url: str) -> QueryResult:
    """The API's JSON answer as series; anything else is the provider failing, named."""

    def broken(why: str) -> QueryResult:
        return QueryResult(
            DataStatus.UNREACHABLE,
            message=f"Prometheus at {url} answered with an unreadable body ({why}): {promql}",
            query=promql,
        )

    try:
        document = json.loads(body)
    except ValueError as error:
        return broken(f"not JSON: {str(error)[:120]}")
    if not isinstance(document, dict):
        return broken("not a JSON object")
    if document.get("status") != "success":
        return broken(f"status {str(document.get('status'))[:40]!r}: {document.get('error')}")
    data = document.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("result"), list):
        return broken("no data.result")
    result_type = data.get("resultType")
    if result_type not in ("matrix", "vector"):
        return QueryResult(
            DataStatus.QUERY_ERROR,
            message=f"expected an instant or range vector from {url}, got a "
            f"{str(result_type)[:20]}: {promql}",
            query=promql,
        )
    series = []
    # A range answer repeats the same few step times in every series: one datetime for each.
    moments: dict[float, datetime] = {}

    def moment(seconds: float) -> datetime:
        found = moments.get(seconds)
        if found is None:
            found = moments[seconds] = datetime.fromtimestamp(seconds, tz=UTC)
        return found

    for index, item in enumerate(data["result"]):
        if not isinstance(item, dict) or not isinstance(item.get("metric", {}), dict):
            return broken(f"series {index} is not an object with labels")
        labels = {str(k): str(v) for k, v in item.get("metric", {}).items()}
        samples = item.get("values") if result_type == "matrix" else [item.get("value")]
        if not isinstance(samples, list):
            return broken(f"series {labels or index} has no samples")
        points = []
        for sample in samples:
            try:
                stamp, text = sample
                value = float(text)
                at = moment(float(stamp))
            except (TypeError, ValueError, OverflowError, OSError):
                return broken(f"series {labels or index} has a malformed sample {str(sample)[:60]}")
            # NaN and the infinities are kept: what they mean depends on the metric, and the
            # collector judges them (counts must be finite, a gauge's NaN is "no value").
            points.append(Point(at, value))
        if points:
            series.append(Series(labels=labels, points=tuple(points)))
    if not series:
        return QueryResult(
            DataStatus.NO_DATA, message=f"no series matched at {url}: {promql}", query=promql
        )
    return QueryResult(DataStatus.OK, series=tuple(series), query=promql)


def _error_detail(body: bytes, reason: str | None) -> str:
    try:
        document = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace") or (reason or "no reason given")
    if isinstance(document, dict):
        return str(document.get("error") or document)[:300]
    return str(document)[:300]


def _reason(error: BaseException) -> str:
    kind = type(error).__name__
    text = str(error)
    return f"{kind}: {text[:300]}" if text else kind


def _read_secret_file(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise InvalidPolicyError(f"cannot read the {what} file {path}: {error.strerror}") from error
    except UnicodeDecodeError:
        raise InvalidPolicyError(f"the {what} file {path} is not UTF-8 text") from None


def _read_secret_env(env: Mapping[str, str], name: str, what: str) -> str:
    value = env.get(name)
    if not value:
        raise InvalidPolicyError(f"environment variable {name} (the {what}) is not set")
    return value
