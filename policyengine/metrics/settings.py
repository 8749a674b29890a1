"""The operator's metrics providers: URLs and credentials the engine may use, by name.

Policies are written by anyone who can push to the config repository; credentials are not theirs
to direct. A policy names a provider (`spec.metrics.provider.name`), and only the engine's own
settings file (`--providers FILE`, env POLICYENGINE_PROVIDERS) says where that provider is and
which environment variable or file holds its secret. So a policy can neither send the engine's
Git token to `http://evil` nor read a file of its choosing.

    providers:
      - name: thanos
        url: https://thanos-querier.openshift-monitoring.svc:9091
        bearerTokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token
        caFile: /var/run/secrets/kubernetes.io/serviceaccount/service-ca.crt
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError

from policyengine.errors import InvalidPolicyError
from policyengine.limits import UnsafeFileError, decode_utf8
from policyengine.policy.base import Model
from policyengine.policy.models import DNS_LABEL, BasicAuth

PROVIDERS_ENV = "POLICYENGINE_PROVIDERS"


class ProviderSettings(Model):
    """One provider the operator allows policies to name."""

    name: str = Field(pattern=DNS_LABEL, max_length=63, description="What policies call it.")
    type: Literal["prometheus"] = Field(default="prometheus", description="Provider type.")
    url: str = Field(pattern=r"^https?://", description="Base URL of the Prometheus HTTP API.")
    bearer_token_file: str | None = Field(default=None, description="File holding a token.")
    bearer_token_env: str | None = Field(default=None, description="Variable holding a token.")
    basic_auth: BasicAuth | None = Field(default=None, description="HTTP basic authentication.")
    ca_file: str | None = Field(default=None, description="PEM bundle to verify the server.")
    insecure_skip_verify: bool = Field(default=False, description="Skip TLS verification.")


class _SettingsFile(Model):
    providers: list[ProviderSettings] = Field(default_factory=list)


def load_provider_settings(path: Path) -> dict[str, ProviderSettings]:
    """The providers of a settings file by name; an error names the file and the field."""
    try:
        text = decode_utf8(path.read_bytes(), str(path))
        data = yaml.safe_load(text) or {}
        parsed = _SettingsFile.model_validate(data)
    except OSError as error:
        raise InvalidPolicyError(
            f"{path}: cannot read the provider settings: {error.strerror}"
        ) from error
    except (yaml.YAMLError, UnsafeFileError) as error:
        raise InvalidPolicyError(f"{path}: not valid YAML: {error}") from error
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidPolicyError(f"{path}: {where}: {first['msg']}") from error
    found: dict[str, ProviderSettings] = {}
    for provider in parsed.providers:
        if provider.name in found:
            raise InvalidPolicyError(f"{path}: provider {provider.name!r} is defined twice")
        found[provider.name] = provider
    return found


def named_provider(name: str, known: Mapping[str, ProviderSettings]) -> ProviderSettings:
    """The provider a policy names, or that policy's error."""
    found = known.get(name)
    if found is None:
        configured = ", ".join(sorted(known)) or "none"
        raise InvalidPolicyError(
            f"spec.metrics.provider.name: no provider {name!r} in the engine's provider settings "
            f"(--providers FILE or {PROVIDERS_ENV}; configured: {configured})"
        )
    return found
