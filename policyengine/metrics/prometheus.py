"""PrometheusProvider: the MetricsProvider over prometheus-api-client, with auth, TLS and retries.

Works against Prometheus and OpenShift's thanos-querier (bearer token, custom CA or insecure).
Secrets are read from files or the environment and never logged; queries are logged at debug.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.exceptions import InsecureRequestWarning
from urllib3.util.retry import Retry

from policyengine.analysis.observations import DataStatus
from policyengine.errors import InvalidPolicyError
from policyengine.metrics.provider import Point, QueryResult, Series
from policyengine.policy.duration import parse_duration
from policyengine.policy.models import Provider

log = logging.getLogger(__name__)

RETRY_ON_STATUS = (500, 502, 503, 504)


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
    ) -> None:
        self._url = url.rstrip("/")
        self._insecure = insecure
        self.queries_sent = 0
        self.errors = 0  # answers that were not data: unreachable, refused, unreadable
        self._last_response: requests.Response | None = None
        session = requests.Session()
        session.verify = False if insecure else (ca_file or True)
        session.hooks["response"].append(self._remember)
        headers = {"Authorization": f"Bearer {bearer_token}"} if bearer_token else None
        retry = Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            other=0,
            status_forcelist=RETRY_ON_STATUS,
            allowed_methods=None,  # queries are idempotent, POST included
            backoff_factor=backoff,
            raise_on_status=False,
            respect_retry_after_header=False,  # keep the worst case bounded
        )
        self._client = PrometheusConnect(
            url=self._url,
            headers=headers,
            retry=retry,
            auth=basic_auth,
            session=session,
            timeout=timeout,
            method="POST",  # batched selectors can be long; POST keeps them out of the URL
        )

    @classmethod
    def from_settings(
        cls,
        settings: Provider,
        url_override: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> PrometheusProvider:
        """Build from a policy's `spec.metrics.provider`; `url_override` is `--prometheus`."""
        env = os.environ if environ is None else environ
        url = url_override or settings.url
        if not url:
            raise InvalidPolicyError(
                "no Prometheus URL: set spec.metrics.provider.url or pass --prometheus"
            )
        auth = settings.auth
        bearer_token = None
        basic_auth = None
        if auth is not None:
            if auth.bearer_token_file:
                bearer_token = _read_secret_file(auth.bearer_token_file, "bearer token")
            elif auth.bearer_token_env:
                bearer_token = _read_secret_env(env, auth.bearer_token_env, "bearer token")
            if auth.basic_auth is not None:
                basic = auth.basic_auth
                username = basic.username
                if basic.username_env:
                    username = _read_secret_env(env, basic.username_env, "user name")
                if not username:
                    raise InvalidPolicyError("basicAuth needs username or usernameEnv")
                if basic.password_file:
                    password = _read_secret_file(basic.password_file, "password")
                elif basic.password_env:
                    password = _read_secret_env(env, basic.password_env, "password")
                else:
                    raise InvalidPolicyError("basicAuth needs passwordFile or passwordEnv")
                basic_auth = (username, password)
        return cls(
            url,
            timeout=parse_duration(settings.timeout).total_seconds(),
            retries=settings.retries,
            bearer_token=bearer_token,
            basic_auth=basic_auth,
            ca_file=auth.ca_file if auth else None,
            insecure=auth.insecure_skip_verify if auth else False,
        )

    @property
    def url(self) -> str:
        return self._url

    def query(self, promql: str, at: datetime) -> QueryResult:
        self.queries_sent += 1
        log.debug("query at %s: %s", at.isoformat(), promql)
        return self._run(
            promql, lambda: self._client.custom_query(promql, params={"time": at.timestamp()})
        )

    def query_range(
        self, promql: str, start: datetime, end: datetime, step: timedelta
    ) -> QueryResult:
        self.queries_sent += 1
        log.debug(
            "query_range %s..%s step %s: %s", start.isoformat(), end.isoformat(), step, promql
        )
        return self._run(
            promql,
            lambda: self._client.custom_query_range(
                promql, start_time=start, end_time=end, step=f"{step.total_seconds():g}"
            ),
        )

    def is_up(self) -> bool:
        """Whether the query API answers (a trivial query; not counted in `queries_sent`)."""
        return self._run("vector(1)", lambda: self._client.custom_query("vector(1)")).status in (
            DataStatus.OK,
            DataStatus.NO_DATA,
        )

    def close(self) -> None:
        self._client.close()

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last_response = response

    def _run(self, promql: str, send: Callable[[], Any]) -> QueryResult:
        result = self._send(promql, send)
        if result.status in (DataStatus.UNREACHABLE, DataStatus.QUERY_ERROR):
            self.errors += 1
        return result

    def _send(self, promql: str, send: Callable[[], Any]) -> QueryResult:
        self._last_response = None
        try:
            with self._quiet_if_insecure():
                raw = send()
        except PrometheusApiClientException:
            return self._http_error(promql)
        except requests.RequestException as error:
            return QueryResult(
                DataStatus.UNREACHABLE,
                message=f"Prometheus at {self._url} is unreachable: {_reason(error)}",
                query=promql,
            )
        except ValueError as error:  # a 200 whose body is not the API's JSON
            return QueryResult(
                DataStatus.QUERY_ERROR,
                message=f"Prometheus at {self._url} answered with an unreadable body: {error}",
                query=promql,
            )
        return _parse(raw, promql, self._url)

    def _http_error(self, promql: str) -> QueryResult:
        response = self._last_response
        status = response.status_code if response is not None else 0
        detail = _error_detail(response)
        if status >= 500 or status in (401, 403) or status == 0:
            # 5xx is an overloaded or broken server; 401/403 means we cannot get in at all:
            # both are "cannot measure", the same as connection refused.
            return QueryResult(
                DataStatus.UNREACHABLE,
                message=f"Prometheus at {self._url} failed with HTTP {status}: {detail}",
                query=promql,
            )
        return QueryResult(
            DataStatus.QUERY_ERROR,
            message=f"Prometheus at {self._url} rejected the query (HTTP {status}: {detail}): "
            f"{promql}",
            query=promql,
        )

    @contextmanager
    def _quiet_if_insecure(self) -> Iterator[None]:
        # insecureSkipVerify is an explicit choice; urllib3's warning on every request is noise.
        with warnings.catch_warnings():
            if self._insecure:
                warnings.simplefilter("ignore", InsecureRequestWarning)
            yield


def _parse(raw: Any, promql: str, url: str) -> QueryResult:
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        return QueryResult(
            DataStatus.QUERY_ERROR,
            message=f"expected an instant or range vector from {url}, got a scalar or string: "
            f"{promql}",
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

    for item in raw:
        labels = {str(k): str(v) for k, v in item.get("metric", {}).items()}
        samples = item["values"] if "values" in item else [item["value"]]
        points = tuple(
            Point(moment(float(ts)), value)
            for ts, text in samples
            if math.isfinite(value := float(text))
        )
        if points:
            series.append(Series(labels=labels, points=points))
    if not series:
        return QueryResult(
            DataStatus.NO_DATA, message=f"no series matched at {url}: {promql}", query=promql
        )
    return QueryResult(DataStatus.OK, series=tuple(series), query=promql)


def _error_detail(response: requests.Response | None) -> str:
    if response is None:
        return "no response"
    try:
        body = json.loads(response.content)
        return str(body.get("error") or body)
    except ValueError:
        return response.text[:200] or response.reason


def _reason(error: requests.RequestException) -> str:
    kind = type(error).__name__
    text = str(error)
    return f"{kind}: {text[:300]}" if text else kind


def _read_secret_file(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise InvalidPolicyError(f"cannot read the {what} file {path}: {error.strerror}") from error


def _read_secret_env(env: Mapping[str, str], name: str, what: str) -> str:
    value = env.get(name)
    if not value:
        raise InvalidPolicyError(f"environment variable {name} (the {what}) is not set")
    return value
