"""Loading Kubernetes credentials without the client library.

Aspects covered: in-cluster credentials from a service-account directory (token, CA, host and port from the
environment, an IPv6 host in brackets); a rotated token file is read again when its mtime changes and at least
every minute even when it does not, a failed re-read keeps the last token; the order of sources (configured
kubeconfig, in-cluster, `$KUBECONFIG`'s first file, ~/.kube/config) and `NoCredentials` when there is none;
kubeconfig parsing (context choice, relative and inline certificates, token file, basic auth,
insecure-skip-tls-verify, tls-server-name, proxy-url, a plugin user handed over); `Kube.connect` raising
`client.NoCredentials` with nothing to connect to. The clock is injected; nothing sleeps.
"""

from __future__ import annotations

import base64
import datetime
import os
import ssl
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from responder import metrics as metrics_mod
from responder.kube import client, credentials
from responder.models import settings


def _self_signed(directory: Path, stem: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, stem)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    crt, pem = directory / f"{stem}.crt", directory / f"{stem}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return crt, pem


@pytest.fixture
def service_account(tmp_path: Path) -> Path:
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    ca, _ = _self_signed(directory, "cluster-ca")
    ca.rename(directory / "ca.crt")
    (directory / "token").write_text("first-token\n")
    return directory


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _kubeconfig(
    path: Path, *, cluster: dict[str, Any], user: dict[str, Any], extra_context: bool = False
) -> Path:
    contexts = [{"name": "main", "context": {"cluster": "c", "user": "u"}}]
    users = [{"name": "u", "user": user}]
    if extra_context:
        contexts.append({"name": "other", "context": {"cluster": "c", "user": "plugin"}})
        users.append({"name": "plugin", "user": {"exec": {"command": "get-token"}}})
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": users,
                "contexts": contexts,
                "current-context": "main",
            }
        )
    )
    return path


# ---- in-cluster ---------------------------------------------------------------------------------------


def test_in_cluster_credentials_come_from_the_service_account_directory_and_the_environment(
    service_account: Path,
) -> None:
    found = credentials.in_cluster(
        environ={"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"},
        directory=service_account,
    )
    assert found is not None
    assert found.server == "https://10.0.0.1:443"
    assert found.authorization() == "Bearer first-token"
    assert isinstance(found.ssl_context, ssl.SSLContext)
    assert found.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert found.ssl_context.get_ca_certs()[0]["subject"] == ((("commonName", "cluster-ca"),),)


def test_an_ipv6_service_host_is_bracketed(service_account: Path) -> None:
    found = credentials.in_cluster(
        environ={"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"},
        directory=service_account,
    )
    assert found is not None
    assert found.server == "https://[fd00::1]:6443"


def test_outside_a_pod_there_are_no_in_cluster_credentials(service_account: Path) -> None:
    assert credentials.in_cluster(environ={}, directory=service_account) is None


def test_a_pod_without_a_token_has_no_credentials(service_account: Path) -> None:
    (service_account / "token").unlink()
    with pytest.raises(credentials.NoCredentials, match="service account"):
        credentials.in_cluster(
            environ={"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"},
            directory=service_account,
        )


def test_a_rotated_token_is_read_again_as_soon_as_the_file_changes(service_account: Path) -> None:
    clock = Clock()
    token = credentials.TokenFile(service_account / "token", clock=clock)
    assert token.current() == "first-token"
    path = service_account / "token"
    before = path.stat().st_mtime_ns
    path.write_text("second-token\n")
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))
    assert token.current() == "second-token"


def test_a_token_file_is_read_again_every_minute_even_when_its_mtime_did_not_change(
    service_account: Path,
) -> None:
    clock = Clock()
    path = service_account / "token"
    token = credentials.TokenFile(path, clock=clock)
    mtime = path.stat().st_mtime_ns
    path.write_text("second-token\n")
    os.utime(path, ns=(mtime, mtime))  # same mtime: only the clock can tell
    clock.now += credentials.TOKEN_REFRESH_SECONDS - 1
    assert token.current() == "first-token"
    clock.now += 1
    assert token.current() == "second-token"


def test_a_failed_re_read_keeps_the_last_token(service_account: Path) -> None:
    clock = Clock()
    path = service_account / "token"
    token = credentials.TokenFile(path, clock=clock)
    path.unlink()
    clock.now += credentials.TOKEN_REFRESH_SECONDS
    assert token.current() == "first-token"
    path.write_text("third-token")
    assert token.current() == "third-token"


# ---- where credentials come from ----------------------------------------------------------------------


def test_the_configured_kubeconfig_wins_over_in_cluster_credentials(
    tmp_path: Path, service_account: Path
) -> None:
    kubeconfig = _kubeconfig(
        tmp_path / "config", cluster={"server": "https://configured:6443"}, user={"token": "t"}
    )
    found = credentials.load(
        settings.KubernetesSettings(kubeconfig=str(kubeconfig)),
        environ={"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"},
        directory=service_account,
    )
    assert found.server == "https://configured:6443"


def test_in_cluster_credentials_win_over_the_default_kubeconfig(
    tmp_path: Path, service_account: Path
) -> None:
    kubeconfig = _kubeconfig(tmp_path / "config", cluster={"server": "https://default:6443"}, user={})
    found = credentials.load(
        settings.KubernetesSettings(),
        environ={
            "KUBERNETES_SERVICE_HOST": "10.0.0.1",
            "KUBERNETES_SERVICE_PORT": "443",
            "KUBECONFIG": str(kubeconfig),
        },
        directory=service_account,
    )
    assert found.server == "https://10.0.0.1:443"


def test_outside_a_pod_the_first_file_of_kubeconfig_is_read(tmp_path: Path, service_account: Path) -> None:
    first = _kubeconfig(tmp_path / "first", cluster={"server": "https://first:6443"}, user={})
    second = _kubeconfig(tmp_path / "second", cluster={"server": "https://second:6443"}, user={})
    found = credentials.load(
        settings.KubernetesSettings(),
        environ={"KUBECONFIG": os.pathsep.join([str(first), str(second)])},
        directory=service_account,
    )
    assert found.server == "https://first:6443"


def test_without_kubeconfig_the_home_kube_config_is_read(
    tmp_path: Path, service_account: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".kube").mkdir()
    _kubeconfig(tmp_path / ".kube" / "config", cluster={"server": "https://home:6443"}, user={})
    found = credentials.load(settings.KubernetesSettings(), environ={}, directory=service_account)
    assert found.server == "https://home:6443"


def test_no_kubeconfig_and_no_pod_means_no_credentials(tmp_path: Path, service_account: Path) -> None:
    with pytest.raises(credentials.NoCredentials, match="does not exist"):
        credentials.load(
            settings.KubernetesSettings(),
            environ={"KUBECONFIG": str(tmp_path / "missing")},
            directory=service_account,
        )


async def test_connect_with_nothing_to_connect_to_raises_the_clients_no_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(client.NoCredentials):
        await client.Kube.connect(settings=settings.KubernetesSettings(), metrics=metrics_mod.Metrics())


# ---- kubeconfig ---------------------------------------------------------------------------------------


def test_relative_certificate_files_are_read_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    _self_signed(pki, "ca")
    _self_signed(pki, "client")
    kubeconfig = _kubeconfig(
        tmp_path / "config",
        cluster={"server": "https://api:6443/", "certificate-authority": "pki/ca.crt"},
        user={"client-certificate": "pki/client.crt", "client-key": "pki/client.key"},
    )
    found = credentials.from_kubeconfig(kubeconfig)
    assert found.server == "https://api:6443"
    assert found.authorization() is None  # the client certificate authenticates
    assert found.ssl_context is not None
    assert [c["subject"] for c in found.ssl_context.get_ca_certs()] == [((("commonName", "ca"),),)]


def test_inline_certificates_are_loaded_and_no_key_file_is_left_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    ca, _ = _self_signed(pki, "ca")
    crt, key = _self_signed(pki, "client")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr("tempfile.tempdir", None)

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    kubeconfig = _kubeconfig(
        tmp_path / "config",
        cluster={"server": "https://api:6443", "certificate-authority-data": b64(ca)},
        user={"client-certificate-data": b64(crt), "client-key-data": b64(key)},
    )
    found = credentials.from_kubeconfig(kubeconfig)
    assert found.ssl_context is not None
    assert len(found.ssl_context.get_ca_certs()) == 1
    assert list(scratch.iterdir()) == []


def test_a_broken_client_key_is_no_credential(tmp_path: Path) -> None:
    crt, _ = _self_signed(tmp_path, "client")
    (tmp_path / "bad.key").write_text("not a key")
    kubeconfig = _kubeconfig(
        tmp_path / "config",
        cluster={"server": "https://api:6443"},
        user={"client-certificate": str(crt), "client-key": "bad.key"},
    )
    with pytest.raises(credentials.NoCredentials, match="context 'main'"):
        credentials.from_kubeconfig(kubeconfig)


def test_a_token_file_user_reads_the_token_from_the_file(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file\n")
    kubeconfig = _kubeconfig(
        tmp_path / "config", cluster={"server": "https://api:6443"}, user={"tokenFile": "token"}
    )
    assert credentials.from_kubeconfig(kubeconfig).authorization() == "Bearer from-file"


def test_basic_auth_becomes_a_basic_authorization_header(tmp_path: Path) -> None:
    kubeconfig = _kubeconfig(
        tmp_path / "config",
        cluster={"server": "https://api:6443"},
        user={"username": "admin", "password": "s3cret"},
    )
    header = credentials.from_kubeconfig(kubeconfig).authorization()
    assert header == "Basic " + base64.b64encode(b"admin:s3cret").decode()


def test_insecure_skip_tls_verify_tls_server_name_and_proxy_url_are_honoured(tmp_path: Path) -> None:
    kubeconfig = _kubeconfig(
        tmp_path / "config",
        cluster={
            "server": "https://10.1.2.3:6443",
            "insecure-skip-tls-verify": True,
            "tls-server-name": "api",
            "proxy-url": "http://proxy.internal:3128",
        },
        user={"token": "t"},
    )
    found = credentials.from_kubeconfig(kubeconfig)
    assert found.ssl_context is not None
    assert found.ssl_context.verify_mode == ssl.CERT_NONE
    assert not found.ssl_context.check_hostname
    assert found.tls_server_name == "api"
    assert found.proxy_url == "http://proxy.internal:3128"


def test_a_named_context_is_used_instead_of_the_current_one_and_a_plugin_user_is_handed_over(
    tmp_path: Path,
) -> None:
    kubeconfig = _kubeconfig(
        tmp_path / "config", cluster={"server": "https://api:6443"}, user={"token": "t"}, extra_context=True
    )
    assert credentials.from_kubeconfig(kubeconfig).authorization() == "Bearer t"
    with pytest.raises(credentials.NeedsPlugin) as raised:
        credentials.from_kubeconfig(kubeconfig, context="other")
    assert raised.value.path == kubeconfig
    assert raised.value.context == "other"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param("- just\n- a list\n", "not a kubeconfig", id="not-a-mapping"),
        pytest.param("clusters: [\n", "kubeconfig", id="bad-yaml"),
        pytest.param("apiVersion: v1\n", "no current-context", id="no-context"),
        pytest.param(
            "current-context: gone\ncontexts: [{name: main, context: {cluster: c}}]\n",
            "no context named 'gone'",
            id="unknown-context",
        ),
        pytest.param(
            "current-context: main\ncontexts: [{name: main, context: {cluster: c}}]\n"
            "clusters: [{name: c, cluster: {server: api:6443}}]\n",
            "no https server",
            id="no-scheme",
        ),
    ],
)
def test_an_unusable_kubeconfig_is_no_credential(tmp_path: Path, document: str, message: str) -> None:
    path = tmp_path / "config"
    path.write_text(document)
    with pytest.raises(credentials.NoCredentials, match=message):
        credentials.from_kubeconfig(path)
