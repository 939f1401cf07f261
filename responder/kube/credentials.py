"""Where the service's Kubernetes credentials come from: a kubeconfig, or the pod's service account.

Stage: kube edge. `load` reads `settings.kubernetes` (a kubeconfig file and context), else the in-cluster
service account (`KUBERNETES_SERVICE_HOST`/`_PORT` and the token and CA under
/var/run/secrets/kubernetes.io/serviceaccount), else `$KUBECONFIG` (all its files, merged as kubectl merges
them: `responder.kube.kubeconfigs`) or ~/.kube/config, and returns `Credentials`: the server URL, a TLS
context, and a bearer token (fixed, or a file re-read when it changes, at least every minute and after a 401,
because bound service-account tokens rotate) or basic auth. Nothing configured is `NoCredentials`; something
configured but broken is `UnusableCredentials`, naming what is broken. Kubeconfig users that authenticate
through a plugin (`exec`, `auth-provider`) are not handled here: `NeedsPlugin` tells the client to use the
kubernetes-asyncio loader for them. This module opens no connection and decides nothing about incidents.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import ssl
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from responder.kube import kubeconfigs
from responder.models import settings as settings_mod

__all__ = [
    "SERVICE_ACCOUNT_DIR",
    "TOKEN_REFRESH_SECONDS",
    "Credentials",
    "NeedsPlugin",
    "NoCredentials",
    "TokenFile",
    "UnusableCredentials",
    "default_kubeconfigs",
    "from_kubeconfig",
    "in_cluster",
    "load",
]

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
"""Where the kubelet mounts a pod's service-account token and the cluster CA."""

TOKEN_REFRESH_SECONDS = 60.0
"""A token file is read again at least this often even when its mtime did not change (client-go does too)."""


class NoCredentials(Exception):
    """No cluster to talk to: no kubeconfig found and not running in a pod (or the kubeconfig is unusable)."""


class UnusableCredentials(NoCredentials):
    """Credentials are configured but broken (a missing key file, a malformed kubeconfig, a failing plugin):
    the message says what is broken. Unlike plain `NoCredentials` this is never "no cluster": a dry-run must
    not fall back to planning from labels and claim to be ready."""


class NeedsPlugin(Exception):
    """The kubeconfig's user authenticates through an `exec` or `auth-provider` plugin."""

    def __init__(self, message: str, *, kubeconfig: kubeconfigs.Kubeconfig, context: str) -> None:
        super().__init__(message)
        self.kubeconfig = kubeconfig
        self.context = context


class TokenFile:
    """A bearer token kept in a file that may be replaced at any time (a projected service-account token).

    `current()` re-reads the file when its modification time changed or `refresh_seconds` passed since the
    last read; when a re-read fails the last token read is kept (the kubelet swaps the file atomically, so a
    failure is passing) and the next call tries again.
    """

    def __init__(
        self,
        path: Path,
        *,
        refresh_seconds: float = TOKEN_REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._mtime_ns = -1
        self._read_at = float("-inf")
        self._token = self._read()  # the first read must succeed: an unreadable token is no credential

    def _read(self) -> str:
        mtime_ns = self.path.stat().st_mtime_ns
        token = self.path.read_text().strip()
        self._mtime_ns = mtime_ns
        self._read_at = self._clock()
        return token

    def reload(self) -> bool:
        """Read the file now (after a 401); True when the token changed."""
        before = self._token
        with contextlib.suppress(OSError, UnicodeDecodeError):
            self._token = self._read()
        return self._token != before

    def current(self) -> str:
        try:
            changed = self.path.stat().st_mtime_ns != self._mtime_ns
        except OSError:
            changed = False
        if changed or self._clock() - self._read_at >= self.refresh_seconds:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                self._token = self._read()
        return self._token


@dataclasses.dataclass(frozen=True)
class Credentials:
    """How to reach and authenticate to one API server. `source` says where it came from (for logs)."""

    server: str
    ssl_context: ssl.SSLContext | None
    """None for a plain-http server (a local proxy); otherwise verifies the server as configured."""
    source: str
    token: str | None = None
    token_file: TokenFile | None = None
    username: str | None = None
    password: str | None = None
    tls_server_name: str | None = None
    """The name the server certificate is checked against when it differs from the URL's host."""
    proxy_url: str | None = None
    """The kubeconfig cluster's `proxy-url`; without it HTTPS_PROXY/NO_PROXY from the environment apply."""

    def reload_token(self) -> bool:
        """After a 401: read a token file again; True when there is a new token worth one more try."""
        return self.token_file is not None and self.token_file.reload()

    def authorization(self) -> str | None:
        """The Authorization header value, or None when the client certificate (or nothing) authenticates."""
        if self.token_file is not None:
            return f"Bearer {self.token_file.current()}"
        if self.token:
            return f"Bearer {self.token}"
        if self.username is not None and self.password is not None:
            raw = f"{self.username}:{self.password}".encode()
            return f"Basic {base64.b64encode(raw).decode('ascii')}"
        return None


def _ssl_context(
    *,
    ca_file: Path | None = None,
    ca_data: str | None = None,
    cert: tuple[bytes, bytes] | tuple[Path, Path] | None = None,
    insecure: bool = False,
) -> ssl.SSLContext:
    context = ssl.create_default_context(
        cafile=str(ca_file) if ca_file else None, cadata=ca_data if ca_data else None
    )
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        certificate, key = cert
        if isinstance(certificate, Path) and isinstance(key, Path):
            context.load_cert_chain(str(certificate), str(key))
        else:
            assert isinstance(certificate, bytes) and isinstance(key, bytes)
            _load_cert_chain_from_memory(context, certificate, key)
    return context


def _load_cert_chain_from_memory(context: ssl.SSLContext, certificate: bytes, key: bytes) -> None:
    # The ssl module loads a client certificate from files only: a private file lives just for the call.
    descriptor, name = tempfile.mkstemp(prefix="oom-responder-client-", suffix=".pem")
    try:
        with os.fdopen(descriptor, "wb") as f:
            f.write(certificate.rstrip(b"\n") + b"\n" + key)
        context.load_cert_chain(name)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)


def _data(value: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=False)
    except ValueError as e:
        raise UnusableCredentials(f"{what} is not base64: {e}") from e


def in_cluster(
    *, environ: Mapping[str, str] | None = None, directory: Path | None = None
) -> Credentials | None:
    """The pod's service account, or None when not running in a pod (no KUBERNETES_SERVICE_HOST)."""
    environ = os.environ if environ is None else environ
    directory = SERVICE_ACCOUNT_DIR if directory is None else directory
    host = environ.get("KUBERNETES_SERVICE_HOST", "")
    port = environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host:
        return None
    if not port:
        raise UnusableCredentials("KUBERNETES_SERVICE_HOST is set but KUBERNETES_SERVICE_PORT is not")
    token_path, ca_path = directory / "token", directory / "ca.crt"
    try:
        token_file = TokenFile(token_path)
        context = _ssl_context(ca_file=ca_path)
    except (OSError, ssl.SSLError, UnicodeDecodeError) as e:
        raise UnusableCredentials(f"in-cluster service account unusable ({directory}): {e}") from e
    if not token_file.current():
        raise UnusableCredentials(f"in-cluster service-account token {token_path} is empty")
    bracketed = f"[{host}]" if ":" in host else host
    return Credentials(
        server=f"https://{bracketed}:{port}",
        ssl_context=context,
        source=f"in-cluster service account ({directory})",
        token_file=token_file,
    )


def from_kubeconfig(
    source: Path | Sequence[Path] | kubeconfigs.Kubeconfig, *, context: str | None = None
) -> Credentials:
    """Credentials of one context (`context`, else the current-context) of a kubeconfig: one file, several
    files merged as kubectl merges `$KUBECONFIG`, or an already merged `Kubeconfig`.

    Relative file names are relative to the directory of the file that defined the entry, as kubectl reads
    them. Raises `NeedsPlugin` for a user with `exec` or `auth-provider`, `UnusableCredentials` when the
    configuration is broken (naming what is broken).
    """
    if isinstance(source, kubeconfigs.Kubeconfig):
        merged = source
    else:
        paths = [source] if isinstance(source, Path) else list(source)
        try:
            merged = kubeconfigs.read(paths)
        except FileNotFoundError as e:
            raise UnusableCredentials(f"kubeconfig {e}: no such file") from e
        except kubeconfigs.BadKubeconfig as e:
            raise UnusableCredentials(str(e)) from e
    try:
        chosen = merged.select(context)
    except kubeconfigs.BadKubeconfig as e:
        raise UnusableCredentials(str(e)) from e
    cluster = chosen.cluster.fields
    user = chosen.user.fields if chosen.user is not None else {}
    label = chosen.label
    if user.get("exec") or user.get("auth-provider"):
        raise NeedsPlugin(
            f"{label}: user {chosen.user.name if chosen.user else ''!r} authenticates through a plugin",
            kubeconfig=merged,
            context=chosen.context.name,
        )

    server = str(cluster.get("server") or "").rstrip("/")
    if not server.startswith(("https://", "http://")):
        raise UnusableCredentials(f"{label}: cluster {chosen.cluster.name!r} has no https server")
    try:
        context_ssl: ssl.SSLContext | None = None
        if server.startswith("https://"):
            cert: tuple[bytes, bytes] | None = None
            has_cert = user.get("client-certificate-data") or user.get("client-certificate")
            has_key = user.get("client-key-data") or user.get("client-key")
            if has_cert and has_key:
                assert chosen.user is not None
                certificate_file = chosen.user.file("client-certificate")
                key_file = chosen.user.file("client-key")
                certificate = (
                    _data(user["client-certificate-data"], "client-certificate-data")
                    if user.get("client-certificate-data")
                    else certificate_file.read_bytes()
                    if certificate_file
                    else b""
                )
                key = (
                    _data(user["client-key-data"], "client-key-data")
                    if user.get("client-key-data")
                    else key_file.read_bytes()
                    if key_file
                    else b""
                )
                cert = (certificate, key)
            elif has_cert or has_key:
                raise UnusableCredentials(f"{label}: a client certificate needs both the certificate and key")
            ca_data = cluster.get("certificate-authority-data")
            ca_file = chosen.cluster.file("certificate-authority")
            context_ssl = _ssl_context(
                ca_file=ca_file if ca_file and not ca_data else None,
                ca_data=_data(ca_data, "certificate-authority-data").decode("ascii") if ca_data else None,
                cert=cert,
                insecure=cluster.get("insecure-skip-tls-verify") is True,
            )
        token_file = None
        if not user.get("token") and user.get("tokenFile"):
            assert chosen.user is not None
            path = chosen.user.file("tokenFile")
            assert path is not None
            token_file = TokenFile(path)
    except (OSError, ssl.SSLError, UnicodeDecodeError, ValueError) as e:
        raise UnusableCredentials(f"{label}: {e}") from e
    return Credentials(
        server=server,
        ssl_context=context_ssl,
        source=label,
        token=str(user["token"]) if user.get("token") else None,
        token_file=token_file,
        username=str(user["username"]) if user.get("username") is not None else None,
        password=str(user["password"]) if user.get("password") is not None else None,
        tls_server_name=str(cluster["tls-server-name"]) if cluster.get("tls-server-name") else None,
        proxy_url=str(cluster["proxy-url"]) if cluster.get("proxy-url") else None,
    )


def default_kubeconfigs(*, environ: Mapping[str, str] | None = None) -> list[Path]:
    """`$KUBECONFIG`'s files (merged as kubectl merges them), else ~/.kube/config."""
    environ = os.environ if environ is None else environ
    listed = kubeconfigs.split_paths(environ.get("KUBECONFIG", ""))
    return listed or [Path(os.path.expanduser("~/.kube/config"))]


def load(
    kubernetes: settings_mod.KubernetesSettings,
    *,
    environ: Mapping[str, str] | None = None,
    directory: Path | None = None,
) -> Credentials:
    """The configured kubeconfig, else in-cluster, else the default kubeconfig(s). Raises `NoCredentials`
    when there is none, `UnusableCredentials` when the one found is broken, `NeedsPlugin` when the chosen
    kubeconfig user needs a plugin."""
    if kubernetes.kubeconfig:
        configured = Path(os.path.expanduser(kubernetes.kubeconfig))
        if not configured.is_file():
            raise UnusableCredentials(f"kubernetes.kubeconfig {configured}: no such file")
        return from_kubeconfig(configured, context=kubernetes.context)
    found = in_cluster(environ=environ, directory=directory)
    if found is not None:
        return found
    paths = default_kubeconfigs(environ=environ)
    if not any(path.is_file() for path in paths):
        listed = os.pathsep.join(str(path) for path in paths)
        raise NoCredentials(f"no kubeconfig ({listed} does not exist) and not running in a cluster")
    return from_kubeconfig(paths, context=kubernetes.context)
