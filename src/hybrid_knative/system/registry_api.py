"""Read manifests straight from an OCI distribution registry (HTTP API v2), in process.

Checking whether the target already has a digest, and reading manifests for sizes, would otherwise cost
a skopeo process each; copies still go through skopeo. Auth: anonymous, HTTP basic from a containers
authfile entry, or the bearer-token flow the big registries use (GCR/Artifact Registry, ECR, ACR,
Docker Hub) with those credentials. Loopback registries speak plain HTTP, all others verified HTTPS.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import requests

from hybrid_knative.errors import ConfigError, PermanentError, TemporaryError

ACCEPT = ", ".join((
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')
_LOOPBACK = ("localhost", "127.0.0.1", "[::1]")


def load_auths(authfile: Path | None) -> dict[str, str]:
    """host → base64 "user:password" from a containers auth.json (docker config.json has the same shape)."""
    if authfile is None:
        return {}
    try:
        data = json.loads(authfile.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the authfile {authfile}: {exc}") from None
    auths = data.get("auths") if isinstance(data, dict) else None
    out: dict[str, str] = {}
    for key, entry in (auths or {}).items():
        if isinstance(entry, dict) and isinstance(entry.get("auth"), str):
            host = re.sub(r"^https?://", "", str(key)).split("/", 1)[0]
            out[host] = entry["auth"]
    return out


def answers(host: str, *, timeout: float = 2.0) -> str | None:
    """None when the registry at ``host`` answers its API root (``GET /v2/``: 200, or 401 when it wants
    credentials), else what happened instead (for progress and error messages)."""
    scheme = "http" if host.rsplit(":", 1)[0] in _LOOPBACK or host.startswith("[::1]") else "https"
    try:
        with requests.Session() as session:
            session.trust_env = False
            resp = session.get(f"{scheme}://{host}/v2/", timeout=timeout)
    except requests.RequestException as exc:
        return f"not reachable yet ({type(exc).__name__})"
    if resp.status_code in (200, 401):
        return None
    return f"HTTP {resp.status_code} from {scheme}://{host}/v2/"


@dataclasses.dataclass
class RegistryApi:
    auths: dict[str, str] = dataclasses.field(default_factory=dict)
    timeout: float = 30.0
    requests_made: int = 0
    _tokens: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)
    _session: requests.Session | None = dataclasses.field(default=None, repr=False)
    _basic_hosts: set[str] = dataclasses.field(default_factory=set)  # hosts that asked for HTTP basic auth

    def session(self) -> requests.Session:
        """One keep-alive session for every request (a TCP/TLS handshake per check would dominate a sync)."""
        if self._session is None:
            self._session = requests.Session()
            self._session.trust_env = False
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def manifest(self, host: str, repository: str, reference: str) -> bytes | None:
        """The raw manifest/index bytes (their sha256 is the digest); None when the registry lacks it."""
        name = "registry-1.docker.io" if host == "docker.io" else host
        scheme = "http" if name.rsplit(":", 1)[0] in _LOOPBACK or name.startswith("[::1]") else "https"
        url = f"{scheme}://{name}/v2/{repository}/manifests/{reference}"
        headers = {"Accept": ACCEPT}
        token = self._tokens.get((name, repository))
        basic = self.auths.get(host) or self.auths.get(name)
        if not token and name in self._basic_hosts and basic:
            token = f"Basic {basic}"  # basic auth is per host, not per repository: no new challenge needed
        if token:
            headers["Authorization"] = token
        resp = self._get(url, headers)
        if resp.status_code == 401:
            headers["Authorization"] = self._authorize(name, host, repository, resp)
            resp = self._get(url, headers)
        if resp.status_code == 404:
            return None
        if resp.status_code in (401, 403):
            raise PermanentError(f"the registry {host} refused the credentials for {repository}",
                                 resolution="log in to the registry into an authfile (`skopeo login --authfile "
                                 "auth.json HOST`, or the cloud's helper: see docs/hybrid-cloud.md) and pass "
                                 "--registry-authfile auth.json")
        if resp.status_code >= 500:
            raise TemporaryError(f"the registry {host} answered {resp.status_code}")
        if resp.status_code != 200:
            raise PermanentError(f"the registry {host} answered {resp.status_code} for {repository}:{reference}")
        return resp.content

    def _get(self, url: str, headers: dict[str, str]) -> requests.Response:
        self.requests_made += 1
        try:
            return self.session().get(url, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise TemporaryError(f"the registry at {url.split('/v2/')[0]} is unreachable: {type(exc).__name__}",
                                 resolution="check the registry address and that this machine can reach it") from None

    def _authorize(self, name: str, host: str, repository: str, resp: requests.Response) -> str:
        challenge = resp.headers.get("WWW-Authenticate", "")
        basic = self.auths.get(host) or self.auths.get(name)
        if challenge.lower().startswith("basic"):
            value = f"Basic {basic}" if basic else ""
            self._basic_hosts.add(name)
        else:
            params: dict[str, Any] = dict(_CHALLENGE.findall(challenge))
            realm = params.pop("realm", None)
            if not realm:
                raise PermanentError(f"the registry {host} asks for an unknown kind of authentication: {challenge!r}")
            params.setdefault("scope", f"repository:{repository}:pull")
            auth_header = {"Authorization": f"Basic {basic}"} if basic else {}
            self.requests_made += 1
            try:
                got = self.session().get(realm, params=params, headers=auth_header, timeout=self.timeout)
            except requests.RequestException as exc:
                raise TemporaryError(f"the token service of {host} is unreachable: {type(exc).__name__}") from None
            if got.status_code != 200:
                value = ""
            else:
                body = got.json()
                value = f"Bearer {body.get('token') or body.get('access_token') or ''}"
        if basic:
            base64.b64decode(basic, validate=True)
        self._tokens[(name, repository)] = value
        return value
