"""Loopback stand-ins for the GitHub, GitLab and Gitea/Forgejo REST APIs, for the forge clients' tests.

Each fake is an `http.server` on 127.0.0.1 (a free port, in a thread) that keeps pull requests in
memory, checks the token header of every request (401 otherwise) and answers only the documented
endpoints the production clients call:

GitHub REST (under /api/v3, the GitHub Enterprise layout; header `Authorization: token|Bearer T`).
Every request must send `Accept: application/vnd.github+json` and `X-GitHub-Api-Version` (an
unsupported version is a 400 as on GitHub; a missing header is recorded in `bad_requests`); every
answer carries the `X-RateLimit-*` headers; lists are paged (`per_page` default 30, at most 100,
`page`) with a `Link` header (next/last) built on `public_api_url`, which a test may set to
another hostname as a GitHub Enterprise behind a proxy answers:
  GET  /repos/{owner}/{repo}/pulls?state=&head=owner:branch&base=&sort=&direction=&per_page=&page=
                                   list (state open|closed|all; sort created, direction asc|desc,
                                   by default desc as GitHub documents: newest first)
  POST /repos/{owner}/{repo}/pulls                                    create (422 when one is open)
  GET  /repos/{owner}/{repo}/pulls/{n}                                get
  PATCH /repos/{owner}/{repo}/pulls/{n}                               update title/body
  PUT  /repos/{owner}/{repo}/pulls/{n}/merge                          merge (405 unless open; 409
                                   when the body's `sha` is not the head: "Head branch was modified")
  GET  /repos/{owner}/{repo}/pulls/{n}/reviews                        submitted reviews (paged)
  POST /repos/{owner}/{repo}/pulls/{n}/requested_reviewers            request reviewers/teams (422
                                   when one is not in `collaborators`, if that is set)
  POST /repos/{owner}/{repo}/issues/{n}/labels                        add labels: {"labels": [...]}
GitLab REST v4 (under /api/v4; header `PRIVATE-TOKEN: T` or `Authorization: Bearer T`):
  GET  /projects/{id}/merge_requests?state=&source_branch=&target_branch=&order_by=&sort=
                                   (state opened|merged|closed|all; order_by created_at, sort
                                   asc|desc, by default desc as GitLab documents: newest first)
  POST /projects/{id}/merge_requests                                  (409 when one is open)
  GET  /projects/{id}/merge_requests/{iid}
  PUT  /projects/{id}/merge_requests/{iid}
  PUT  /projects/{id}/merge_requests/{iid}/merge                      (405 unless opened; 409 when
                                   `sha` is not the source branch's head)
  GET  /users?username=
Gitea/Forgejo REST v1 (under /api/v1; header `Authorization: token|Bearer T`):
  GET  /repos/{owner}/{repo}/pulls?state=&page=&limit=              (state open|closed|all)
  POST /repos/{owner}/{repo}/pulls                                    (409 when one is open)
  GET  /repos/{owner}/{repo}/pulls/{index}
  PATCH /repos/{owner}/{repo}/pulls/{index}
  POST /repos/{owner}/{repo}/pulls/{index}/merge                      (405 unless open; 409 when
                                   `head_commit_id` is not the head)
  GET  /repos/{owner}/{repo}/pulls/{index}/reviews?page=&limit=       (pending requests too)
  POST /repos/{owner}/{repo}/pulls/{index}/requested_reviewers
  GET  /repos/{owner}/{repo}/labels?page=&limit=
  POST /repos/{owner}/{repo}/issues/{index}/labels                    (label ids)

`fail_next(status, headers)` makes the next request(s) fail before they are handled (5xx, 429 with
Retry-After, ...), or only the next ones of a method and path (`method=`, `path=` a regex);
`answer_next(status, payload)` answers anything at all instead (a garbled answer);
`merge_by_person` / `close_by_person` / `push_by_person` / `review_by_person` play the human.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

JsonBody = Any
Answer = tuple[int, dict[str, str], JsonBody]


@dataclass
class FakePull:
    number: int
    head: str
    base: str
    title: str
    body: str
    state: str = "open"  # open | closed
    merged: bool = False
    merge_commit_sha: str | None = None
    labels: list[str] = field(default_factory=list)
    reviewers: list[str] = field(default_factory=list)
    team_reviewers: list[str] = field(default_factory=list)
    head_sha: str = ""
    reviews: list[str] = field(default_factory=list)  # logins that submitted a review


@dataclass(frozen=True)
class _Failure:
    status: int
    headers: dict[str, str]
    message: str
    method: str | None
    path: str | None  # a regex over the whole path
    payload: JsonBody = None  # answer this instead of {"message": ...}

    def matches(self, method: str, path: str) -> bool:
        return self.method in (None, method) and (
            self.path is None or re.fullmatch(self.path, path) is not None
        )


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    body: JsonBody


class _Handler(BaseHTTPRequestHandler):
    fake: FakeForge  # set on the subclass made per server

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        status, headers, payload = self.fake.dispatch(self.command, self.path, self.headers, body)
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean; the fake records requests in `seen`


class FakeForge:
    """The shared machinery: server thread, auth check, failure injection, pull-request store."""

    api_prefix = ""

    def __init__(self, token: str, repository: str = "acme/models") -> None:
        self.token = token
        self.repository = repository
        self.pulls: dict[int, FakePull] = {}
        self.seen: list[SeenRequest] = []
        self.unauthorized = 0
        self.bad_requests: list[str] = []
        self._failures: deque[_Failure] = deque()
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def root_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_url(self) -> str:
        return self.root_url + self.api_prefix

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- test controls ---------------------------------------------------------------------------
    def fail_next(
        self,
        status: int,
        headers: Mapping[str, str] | None = None,
        message: str = "",
        times: int = 1,
        *,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Fail the next `times` requests (of `method` to a path matching `path`, when given)."""
        for _ in range(times):
            self._failures.append(_Failure(status, dict(headers or {}), message, method, path))

    def answer_next(
        self, status: int, payload: JsonBody, *, method: str | None = None, path: str | None = None
    ) -> None:
        """Answer the next matching request with this status and JSON, whatever it asked."""
        self._failures.append(_Failure(status, {}, "", method, path, payload))

    def push_by_person(self, number: int) -> None:
        """Someone pushes a commit onto the pull request's branch."""
        with self._lock:
            pull = self.pulls[number]
            pull.head_sha = hashlib.sha1(f"pushed {pull.head_sha}".encode()).hexdigest()

    def review_by_person(self, number: int, login: str) -> None:
        """A review is submitted: its author leaves the pending review requests."""
        with self._lock:
            pull = self.pulls[number]
            pull.reviews.append(login)
            if login in pull.reviewers:
                pull.reviewers.remove(login)

    def branch_head(self, pull: FakePull) -> str:
        """The commit the pull request's branch points at (a real remote's, in some tests)."""
        return pull.head_sha

    def merge_by_person(self, number: int) -> None:
        with self._lock:
            self._merge(self.pulls[number])

    def close_by_person(self, number: int) -> None:
        with self._lock:
            self.pulls[number].state = "closed"

    def open_pulls(self, head: str | None = None) -> list[FakePull]:
        return [p for p in self.pulls.values() if p.state == "open" and head in (None, p.head)]

    def requests_to(self, method: str, pattern: str) -> list[SeenRequest]:
        return [r for r in self.seen if r.method == method and re.fullmatch(pattern, r.path)]

    # -- request handling ------------------------------------------------------------------------
    def dispatch(self, method: str, raw_path: str, headers: Any, body: JsonBody) -> Answer:
        parts = urlsplit(raw_path)
        query = parse_qs(parts.query)
        if not self.authorized(headers):
            with self._lock:
                self.unauthorized += 1
            return 401, {}, {"message": "Bad credentials"}
        with self._lock:
            self.seen.append(SeenRequest(method, parts.path, query, body))
            failure = next((f for f in self._failures if f.matches(method, parts.path)), None)
            if failure is not None:
                self._failures.remove(failure)
                if failure.payload is not None:
                    return failure.status, failure.headers, failure.payload
                message = failure.message or f"injected {failure.status}"
                return failure.status, failure.headers, {"message": message}
            refused = self.check_conventions(method, parts.path, headers, body)
            if refused is not None:
                return refused
            if not parts.path.startswith(self.api_prefix + "/"):
                return 404, {}, {"message": "Not Found"}
            # Split before unquoting: GitLab project ids are URL-encoded paths (group%2Fproject).
            segments = [unquote(s) for s in parts.path[len(self.api_prefix) + 1 :].split("/")]
            for route_method, route, handle in self.routes():
                if route_method != method:
                    continue
                match = re.fullmatch(route, "/".join(s.replace("/", "%2F") for s in segments))
                if match:
                    args = [unquote(g) for g in match.groups()]
                    try:
                        return handle(*args, query=query, body=body or {})
                    except (KeyError, TypeError, AttributeError, ValueError) as exc:
                        # A request the fake does not understand is the client's bug: a 4xx.
                        self.bad_requests.append(f"{method} {parts.path}: {exc!r}")
                        return 400, {}, {"message": f"bad request: {exc!r}"}
            return 404, {}, {"message": "Not Found"}

    def authorized(self, headers: Any) -> bool:
        value: str = headers.get("Authorization", "")
        return value in (f"token {self.token}", f"Bearer {self.token}")

    def check_conventions(
        self, method: str, path: str, headers: Any, body: JsonBody
    ) -> Answer | None:
        """An answer refusing a request that breaks the forge's conventions; None to handle it."""
        return None

    def routes(self) -> list[tuple[str, str, Callable[..., Answer]]]:
        raise NotImplementedError

    def _new_pull(self, head: str, base: str, title: str, body: str) -> FakePull:
        number = max(self.pulls, default=0) + 1
        pull = FakePull(number, head, base, title, body)
        pull.head_sha = hashlib.sha1(f"head {number}".encode()).hexdigest()
        self.pulls[number] = pull
        return pull

    def _open_for(self, head: str, base: str) -> FakePull | None:
        return next(
            (
                p
                for p in self.pulls.values()
                if p.state == "open" and p.head == head and p.base == base
            ),
            None,
        )

    def _merge(self, pull: FakePull) -> None:
        pull.state = "closed"
        pull.merged = True
        pull.merge_commit_sha = hashlib.sha1(f"merge {pull.number}".encode()).hexdigest()

    def _repo_matches(self, owner: str, repo: str) -> bool:
        return f"{owner}/{repo}" == self.repository


GITHUB_MEDIA_TYPE = "application/vnd.github+json"
GITHUB_API_VERSIONS = ("2022-11-28", "2026-03-10")
GITHUB_PAGE_SIZE, GITHUB_MAX_PAGE_SIZE = 30, 100


class FakeGitHub(FakeForge):
    api_prefix = "/api/v3"

    def __init__(self, token: str, repository: str = "acme/models") -> None:
        super().__init__(token, repository)
        self.public_api_url: str | None = None  # what links and `url` fields name; api_url if None
        self.collaborators: set[str] | None = None  # who may be asked to review; anyone if None
        self.rate_remaining = 5000
        self.ignore_list_filters = False  # as some GitHub Enterprise versions ignore head=
        self.before_merge: Callable[[FakePull], None] | None = None  # a person acts just before

    def routes(self) -> list[tuple[str, str, Callable[..., Answer]]]:
        repo = r"repos/([^/]+)/([^/]+)"
        return [
            ("GET", rf"{repo}/pulls", self._list),
            ("POST", rf"{repo}/pulls", self._create),
            ("GET", rf"{repo}/pulls/(\d+)", self._get),
            ("PATCH", rf"{repo}/pulls/(\d+)", self._edit),
            ("PUT", rf"{repo}/pulls/(\d+)/merge", self._merge_endpoint),
            ("GET", rf"{repo}/pulls/(\d+)/reviews", self._reviews),
            ("POST", rf"{repo}/pulls/(\d+)/requested_reviewers", self._reviewers),
            ("POST", rf"{repo}/issues/(\d+)/labels", self._labels),
        ]

    def check_conventions(
        self, method: str, path: str, headers: Any, body: JsonBody
    ) -> Answer | None:
        accept = headers.get("Accept", "")
        if GITHUB_MEDIA_TYPE not in accept:
            self.bad_requests.append(f"{method} {path}: Accept {accept!r}, not {GITHUB_MEDIA_TYPE}")
        version = headers.get("X-GitHub-Api-Version")
        if version is None:
            self.bad_requests.append(f"{method} {path}: no X-GitHub-Api-Version")
        elif version not in GITHUB_API_VERSIONS:
            return 400, {}, {"message": f"API version {version} is not supported."}
        return None

    def dispatch(self, method: str, raw_path: str, headers: Any, body: JsonBody) -> Answer:
        status, answer_headers, payload = super().dispatch(method, raw_path, headers, body)
        with self._lock:
            self.rate_remaining = max(0, self.rate_remaining - 1)
            limits = {
                "X-RateLimit-Limit": "5000",
                "X-RateLimit-Remaining": str(self.rate_remaining),
                "X-RateLimit-Reset": "4102444800",
                "X-RateLimit-Resource": "core",
            }
        return status, {**limits, **answer_headers}, payload

    @property
    def link_root(self) -> str:
        return (self.public_api_url or self.api_url).rstrip("/")

    def _paged(self, path: str, items: list[Any], query: Any) -> Answer:
        size = min(int(query.get("per_page", [str(GITHUB_PAGE_SIZE)])[0]), GITHUB_MAX_PAGE_SIZE)
        page = int(query.get("page", ["1"])[0])
        last = max(1, -(-len(items) // size))
        links = []
        kept = {k: v[0] for k, v in query.items() if k != "page"}
        for rel, number in (("next", page + 1), ("last", last)):
            if page < last:
                args = "&".join(
                    f"{k}={quote(str(v), safe='')}" for k, v in {**kept, "page": number}.items()
                )
                links.append(f'<{self.link_root}/{path}?{args}>; rel="{rel}"')
        headers = {"Link": ", ".join(links)} if links else {}
        return 200, headers, items[(page - 1) * size : page * size]

    def _json(self, pull: FakePull, *, full: bool) -> dict[str, Any]:
        owner = self.repository.split("/")[0]
        base = f"{self.link_root}/repos/{self.repository}"
        doc: dict[str, Any] = {
            "url": f"{base}/pulls/{pull.number}",
            "html_url": f"{self.root_url}/{self.repository}/pull/{pull.number}",
            "issue_url": f"{base}/issues/{pull.number}",
            "number": pull.number,
            "state": pull.state,
            "title": pull.title,
            "body": pull.body,
            "merged_at": "2024-05-01T10:00:00Z" if pull.merged else None,
            "merge_commit_sha": pull.merge_commit_sha,
            "head": {
                "ref": pull.head,
                "label": f"{owner}:{pull.head}",
                "sha": self.branch_head(pull),
            },
            "base": {"ref": pull.base, "label": f"{owner}:{pull.base}", "sha": "1" * 40},
            "labels": [{"name": name} for name in pull.labels],
            "requested_reviewers": [{"login": login} for login in pull.reviewers],
            "requested_teams": [{"slug": slug} for slug in pull.team_reviewers],
        }
        if full:  # `merged` is only in the single pull request representation
            doc["merged"] = pull.merged
        return doc

    def _list(self, owner: str, repo: str, *, query: Any, body: Any) -> Answer:
        if not self._repo_matches(owner, repo):
            return 404, {}, {"message": "Not Found"}
        state = query.get("state", ["open"])[0]
        head = query.get("head", [None])[0]
        base = query.get("base", [None])[0]
        if query.get("sort", ["created"])[0] != "created":
            raise ValueError("the fake sorts by creation only")
        newest_first = query.get("direction", ["desc"])[0] == "desc"
        found = [
            self._json(p, full=False)
            for p in sorted(self.pulls.values(), key=lambda p: p.number, reverse=newest_first)
            if state in ("all", p.state)
            and (head is None or self.ignore_list_filters or head == f"{owner}:{p.head}")
            and (base is None or base == p.base)
        ]
        return self._paged(f"repos/{owner}/{repo}/pulls", found, query)

    def _create(self, owner: str, repo: str, *, query: Any, body: Any) -> Answer:
        if not self._repo_matches(owner, repo):
            return 404, {}, {"message": "Not Found"}
        if self._open_for(body["head"], body["base"]):
            message = f"A pull request already exists for {owner}:{body['head']}."
            return 422, {}, {"message": "Validation Failed", "errors": [{"message": message}]}
        pull = self._new_pull(
            body["head"], body["base"], body.get("title", ""), body.get("body", "")
        )
        return 201, {}, self._json(pull, full=True)

    def _get(self, owner: str, repo: str, number: str, *, query: Any, body: Any) -> Answer:
        pull = self.pulls.get(int(number))
        if pull is None or not self._repo_matches(owner, repo):
            return 404, {}, {"message": "Not Found"}
        return 200, {}, self._json(pull, full=True)

    def _edit(self, owner: str, repo: str, number: str, *, query: Any, body: Any) -> Answer:
        pull = self.pulls.get(int(number))
        if pull is None or not self._repo_matches(owner, repo):
            return 404, {}, {"message": "Not Found"}
        pull.title = body.get("title", pull.title)
        pull.body = body.get("body", pull.body)
        return 200, {}, self._json(pull, full=True)

    def _merge_endpoint(
        self, owner: str, repo: str, number: str, *, query: Any, body: Any
    ) -> Answer:
        pull = self.pulls.get(int(number))
        if pull is None or not self._repo_matches(owner, repo):
            return 404, {}, {"message": "Not Found"}
        if pull.state != "open":
            return 405, {}, {"message": "Pull Request is not mergeable"}
        if self.before_merge is not None:
            self.before_merge(pull)
        if "sha" in body and body["sha"] != self.branch_head(pull):
            return 409, {}, {"message": "Head branch was modified. Review and try the merge again."}
        self._merge(pull)
        return 200, {}, {"sha": pull.merge_commit_sha, "merged": True, "message": "merged"}

    def _reviews(self, owner: str, repo: str, number: str, *, query: Any, body: Any) -> Answer:
        pull = self.pulls.get(int(number))
        if pull is None or not self._repo_matches(owner, repo):
            return 404, {}, {"message": "Not Found"}
        reviews = [
            {"id": i + 1, "user": {"login": login}, "state": "APPROVED"}
            for i, login in enumerate(pull.reviews)
        ]
        return self._paged(f"repos/{owner}/{repo}/pulls/{number}/reviews", reviews, query)

    def _reviewers(self, owner: str, repo: str, number: str, *, query: Any, body: Any) -> Answer:
        pull = self.pulls.get(int(number))
        if pull is None or not self._repo_matches(owner, repo):
            return 404, {}, {"message": "Not Found"}
        users = body.get("reviewers", [])
        if self.collaborators is not None and any(u not in self.collaborators for u in users):
            return (
                422,
                {},
                {
                    "message": "Reviews may only be requested from collaborators. One or more of the "
                    f"users or teams you specified is not a collaborator of the {self.repository} "
                    "repository."
                },
            )
        pull.reviewers.extend(u for u in users if u not in pull.reviewers)
        pull.team_reviewers.extend(
            t for t in body.get("team_reviewers", []) if t not in pull.team_reviewers
        )
        return 201, {}, self._json(pull, full=False)

    def _labels(self, owner: str, repo: str, number: str, *, query: Any, body: Any) -> Answer:
        pull = self.pulls.get(int(number))
        if pull is None or not self._repo_matches(owner, repo):
            return 404, {}, {"message": "Not Found"}
        # GitHub documents several bodies; the engine sends (and the fake accepts) the object one.
        if not isinstance(body, dict) or not isinstance(body.get("labels"), list):
            self.bad_requests.append(f"POST labels: {body!r} is not {{'labels': [...]}}")
            return 422, {}, {"message": 'Invalid request: labels must be {"labels": [...]}'}
        names = body["labels"]
        pull.labels.extend(n for n in names if n not in pull.labels)
        return 200, {}, [{"name": n} for n in pull.labels]


class FakeGitLab(FakeForge):
    api_prefix = "/api/v4"

    def __init__(self, token: str, repository: str = "ml/platform/models") -> None:
        super().__init__(token, repository)
        self.users = {"alice": 11, "bob": 12}
        self.reviewer_ids: dict[int, list[int]] = {}

    def authorized(self, headers: Any) -> bool:
        private_token: str | None = headers.get("PRIVATE-TOKEN")
        authorization: str | None = headers.get("Authorization")
        return private_token == self.token or authorization == f"Bearer {self.token}"

    def routes(self) -> list[tuple[str, str, Callable[..., Answer]]]:
        project = r"projects/([^/]+)"
        return [
            ("GET", rf"{project}/merge_requests", self._list),
            ("POST", rf"{project}/merge_requests", self._create),
            ("GET", rf"{project}/merge_requests/(\d+)", self._get),
            ("PUT", rf"{project}/merge_requests/(\d+)", self._edit),
            ("PUT", rf"{project}/merge_requests/(\d+)/merge", self._merge_endpoint),
            ("GET", r"users", self._users),
        ]

    def _state(self, pull: FakePull) -> str:
        return "merged" if pull.merged else ("closed" if pull.state == "closed" else "opened")

    def _json(self, pull: FakePull) -> dict[str, Any]:
        return {
            "id": 1000 + pull.number,
            "iid": pull.number,
            "project_id": 42,
            "title": pull.title,
            "description": pull.body,
            "state": self._state(pull),
            "source_branch": pull.head,
            "target_branch": pull.base,
            "sha": self.branch_head(pull),
            "web_url": f"{self.root_url}/{self.repository}/-/merge_requests/{pull.number}",
            "merge_commit_sha": pull.merge_commit_sha,
            "squash_commit_sha": None,
            "labels": list(pull.labels),
            "reviewers": [
                {"id": uid, "username": name}
                for name, uid in self.users.items()
                if uid in self.reviewer_ids.get(pull.number, [])
            ],
        }

    def _pull(self, project: str, iid: str) -> FakePull | None:
        return self.pulls.get(int(iid)) if project == self.repository else None

    def _list(self, project: str, *, query: Any, body: Any) -> Answer:
        if project != self.repository:
            return 404, {}, {"message": "404 Project Not Found"}
        state = query.get("state", ["all"])[0]
        source = query.get("source_branch", [None])[0]
        target = query.get("target_branch", [None])[0]
        if query.get("order_by", ["created_at"])[0] != "created_at":
            raise ValueError("the fake orders by creation only")
        newest_first = query.get("sort", ["desc"])[0] == "desc"
        found = [
            self._json(p)
            for p in sorted(self.pulls.values(), key=lambda p: p.number, reverse=newest_first)
            if state in ("all", self._state(p))
            and source in (None, p.head)
            and target in (None, p.base)
        ]
        return 200, {}, found

    def _create(self, project: str, *, query: Any, body: Any) -> Answer:
        if project != self.repository:
            return 404, {}, {"message": "404 Project Not Found"}
        existing = self._open_for(body["source_branch"], body["target_branch"])
        if existing:
            message = (
                "Another open merge request already exists for this source branch: "
                f"!{existing.number}"
            )
            return 409, {}, {"message": [message]}
        pull = self._new_pull(
            body["source_branch"],
            body["target_branch"],
            body.get("title", ""),
            body.get("description", ""),
        )
        labels = body.get("labels", "")
        pull.labels = (
            labels.split(",") if isinstance(labels, str) and labels else list(labels or [])
        )
        ids = [int(i) for i in body.get("reviewer_ids", [])]
        self.reviewer_ids[pull.number] = ids
        by_id = {uid: name for name, uid in self.users.items()}
        pull.reviewers = [by_id[i] for i in ids if i in by_id]
        return 201, {}, self._json(pull)

    def _get(self, project: str, iid: str, *, query: Any, body: Any) -> Answer:
        pull = self._pull(project, iid)
        if pull is None:
            return 404, {}, {"message": "404 Not found"}
        return 200, {}, self._json(pull)

    def _edit(self, project: str, iid: str, *, query: Any, body: Any) -> Answer:
        pull = self._pull(project, iid)
        if pull is None:
            return 404, {}, {"message": "404 Not found"}
        pull.title = body.get("title", pull.title)
        pull.body = body.get("description", pull.body)
        added = body.get("add_labels", "")
        pull.labels.extend(n for n in (added.split(",") if added else []) if n not in pull.labels)
        if "reviewer_ids" in body:
            ids = [int(i) for i in body["reviewer_ids"]]
            self.reviewer_ids[pull.number] = ids
            by_id = {uid: name for name, uid in self.users.items()}
            pull.reviewers = [by_id[i] for i in ids if i in by_id]
        return 200, {}, self._json(pull)

    def _merge_endpoint(self, project: str, iid: str, *, query: Any, body: Any) -> Answer:
        pull = self._pull(project, iid)
        if pull is None:
            return 404, {}, {"message": "404 Not found"}
        if pull.state != "open":
            return 405, {}, {"message": "405 Method Not Allowed"}
        sha = body.get("sha") or query.get("sha", [None])[0]
        if sha is not None and sha != self.branch_head(pull):
            return 409, {}, {"message": "SHA does not match HEAD of source branch"}
        self._merge(pull)
        return 200, {}, self._json(pull)

    def _users(self, *, query: Any, body: Any) -> Answer:
        name = query.get("username", [None])[0]
        return (
            200,
            {},
            [{"id": uid, "username": user} for user, uid in self.users.items() if user == name],
        )


class FakeGitea(FakeForge):
    api_prefix = "/api/v1"

    def __init__(self, token: str, repository: str = "acme/models") -> None:
        super().__init__(token, repository)
        self.repo_labels = {"release": 1, "policyengine": 2, "needs-review": 3}
        self.page_sizes: list[int] = []

    def routes(self) -> list[tuple[str, str, Callable[..., Answer]]]:
        repo = r"repos/([^/]+)/([^/]+)"
        return [
            ("GET", rf"{repo}/pulls", self._list),
            ("POST", rf"{repo}/pulls", self._create),
            ("GET", rf"{repo}/pulls/(\d+)", self._get),
            ("PATCH", rf"{repo}/pulls/(\d+)", self._edit),
            ("POST", rf"{repo}/pulls/(\d+)/merge", self._merge_endpoint),
            ("GET", rf"{repo}/pulls/(\d+)/reviews", self._reviews),
            ("POST", rf"{repo}/pulls/(\d+)/requested_reviewers", self._reviewers),
            ("GET", rf"{repo}/labels", self._list_labels),
            ("POST", rf"{repo}/issues/(\d+)/labels", self._add_labels),
        ]

    def _json(self, pull: FakePull) -> dict[str, Any]:
        return {
            "id": 500 + pull.number,
            "number": pull.number,
            "html_url": f"{self.root_url}/{self.repository}/pulls/{pull.number}",
            "state": pull.state,
            "merged": pull.merged,
            "merge_commit_sha": pull.merge_commit_sha,
            "title": pull.title,
            "body": pull.body,
            "head": {"ref": pull.head, "label": pull.head, "sha": self.branch_head(pull)},
            "base": {"ref": pull.base, "label": pull.base, "sha": "1" * 40},
            "labels": [{"id": self.repo_labels[n], "name": n} for n in pull.labels],
            "requested_reviewers": [{"login": login} for login in pull.reviewers],
        }

    def _page(self, items: list[Any], query: Any) -> list[Any]:
        page = int(query.get("page", ["1"])[0])
        limit = int(query.get("limit", ["30"])[0])
        self.page_sizes.append(limit)
        return items[(page - 1) * limit : page * limit]

    def _find(self, owner: str, repo: str, number: str) -> FakePull | None:
        return self.pulls.get(int(number)) if self._repo_matches(owner, repo) else None

    def _list(self, owner: str, repo: str, *, query: Any, body: Any) -> Answer:
        if not self._repo_matches(owner, repo):
            return 404, {}, {"message": "repo not found"}
        state = query.get("state", ["open"])[0]
        found = [self._json(p) for p in self.pulls.values() if state in ("all", p.state)]
        return 200, {}, self._page(found, query)

    def _create(self, owner: str, repo: str, *, query: Any, body: Any) -> Answer:
        if not self._repo_matches(owner, repo):
            return 404, {}, {"message": "repo not found"}
        if self._open_for(body["head"], body["base"]):
            return 409, {}, {"message": "pull request already exists for these targets"}
        pull = self._new_pull(
            body["head"], body["base"], body.get("title", ""), body.get("body", "")
        )
        return 201, {}, self._json(pull)

    def _get(self, owner: str, repo: str, number: str, *, query: Any, body: Any) -> Answer:
        pull = self._find(owner, repo, number)
        if pull is None:
            return 404, {}, {"message": "pull request does not exist"}
        return 200, {}, self._json(pull)

    def _edit(self, owner: str, repo: str, number: str, *, query: Any, body: Any) -> Answer:
        pull = self._find(owner, repo, number)
        if pull is None:
            return 404, {}, {"message": "pull request does not exist"}
        pull.title = body.get("title", pull.title)
        pull.body = body.get("body", pull.body)
        return 201, {}, self._json(pull)

    def _merge_endpoint(
        self, owner: str, repo: str, number: str, *, query: Any, body: Any
    ) -> Answer:
        pull = self._find(owner, repo, number)
        if pull is None:
            return 404, {}, {"message": "pull request does not exist"}
        if pull.state != "open" or body.get("Do") not in ("merge", "rebase", "squash"):
            return 405, {}, {"message": "not mergeable"}
        wanted = body.get("head_commit_id")
        if wanted and wanted != self.branch_head(pull):
            return 409, {}, {"message": "head out of date"}
        self._merge(pull)
        return 200, {}, None

    def _reviewers(self, owner: str, repo: str, number: str, *, query: Any, body: Any) -> Answer:
        pull = self._find(owner, repo, number)
        if pull is None:
            return 404, {}, {"message": "pull request does not exist"}
        pull.reviewers.extend(u for u in body.get("reviewers") or [] if u not in pull.reviewers)
        pull.team_reviewers.extend(
            t for t in body.get("team_reviewers") or [] if t not in pull.team_reviewers
        )
        return 201, {}, [{"id": i, "state": "REQUEST_REVIEW"} for i, _ in enumerate(pull.reviewers)]

    def _reviews(self, owner: str, repo: str, number: str, *, query: Any, body: Any) -> Answer:
        pull = self._find(owner, repo, number)
        if pull is None:
            return 404, {}, {"message": "pull request does not exist"}
        # Gitea lists pending review requests among the reviews, with state REQUEST_REVIEW.
        reviews = [
            {"id": i + 1, "user": {"login": login}, "state": "REQUEST_REVIEW"}
            for i, login in enumerate(pull.reviewers)
        ] + [
            {"id": 100 + i, "user": {"login": login}, "state": "APPROVED"}
            for i, login in enumerate(pull.reviews)
        ]
        return 200, {}, self._page(reviews, query)

    def _list_labels(self, owner: str, repo: str, *, query: Any, body: Any) -> Answer:
        if not self._repo_matches(owner, repo):
            return 404, {}, {"message": "repo not found"}
        labels = [{"id": i, "name": n, "color": "00aabb"} for n, i in self.repo_labels.items()]
        return 200, {}, self._page(labels, query)

    def _add_labels(self, owner: str, repo: str, number: str, *, query: Any, body: Any) -> Answer:
        pull = self._find(owner, repo, number)
        if pull is None:
            return 404, {}, {"message": "issue does not exist"}
        by_id = {i: n for n, i in self.repo_labels.items()}
        ids = body.get("labels") or []
        if any(not isinstance(i, int) or i not in by_id for i in ids):
            return 422, {}, {"message": "label ids expected"}
        pull.labels.extend(by_id[i] for i in ids if by_id[i] not in pull.labels)
        return 200, {}, [{"id": self.repo_labels[n], "name": n} for n in pull.labels]


@contextmanager
def running(fake: FakeForge) -> Iterator[FakeForge]:
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
