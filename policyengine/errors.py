"""One exception tree for the whole engine; callers react by subclass, only the CLI catches broadly."""

from __future__ import annotations


class PolicyEngineError(Exception):
    """Base of every error the engine raises on purpose."""

    exit_code = 1


class InvalidPolicyError(PolicyEngineError):
    """A policy or metric-set document is malformed or inconsistent."""


class RenderError(PolicyEngineError):
    """A router could not find or rewrite the route a policy targets."""


class ProviderUnavailableError(PolicyEngineError):
    """A metrics provider could not be reached (connection refused, timeout, 5xx)."""

    exit_code = 3


class QueryError(PolicyEngineError):
    """A metrics provider answered, but rejected the query (bad PromQL, 4xx)."""


class GitError(PolicyEngineError):
    """A Git operation failed."""


class GitUnreachableError(GitError):
    """The Git remote could not be reached."""

    exit_code = 3


class GitConflictError(GitError):
    """The engine's change collides with a human commit; the human wins."""


class ForgeError(PolicyEngineError):
    """A forge (GitHub, GitLab, Gitea) API call failed."""


class ForgeConflictError(ForgeError):
    """The forge refused because the pull request moved on (its head is not the commit the engine
    decided on): hold and re-plan."""


class ForgeUnreachableError(ForgeError):
    """The forge did not answer, or kept failing (5xx, rate limits) after the engine's retries."""

    exit_code = 3


class ClusterError(PolicyEngineError):
    """The Kubernetes API (Argo CD Application) could not be read."""


class StorageUnavailableError(PolicyEngineError):
    """Object storage (S3, Ceph RGW) could not be reached or failed (5xx, timeout)."""

    exit_code = 3


class StorageObjectMissingError(PolicyEngineError):
    """Object storage answered, but the object (or bucket) named by a policy does not exist."""
