"""Loading Kubernetes credentials without the client library.

Aspects covered: in-cluster credentials from a service-account directory (token, CA, host and port from the
environment, an IPv6 host in brackets); a rotated token file is read again when its mtime changes and at least
every minute even when it does not, a failed re-read keeps the last token; the order of sources (configured
kubeconfig, in-cluster, `$KUBECONFIG`'s first file, ~/.kube/config) and `NoCredentials` when there is none;
kubeconfig parsing (context choice, relative and inline certificates, token file, basic auth,
insecure-skip-tls-verify, tls-server-name, proxy-url, a plugin user handed over); `Kube.connect` raising
`client.NoCredentials` with nothing to connect to; `$KUBECONFIG=a:b` merged as kubectl merges it (missing files
skipped, the first file to name an entry or set current-context wins, relative names resolved against the
defining file, an absolute-path document for kubernetes-asyncio); what kubectl refuses is refused with one
clear error (`insecure-skip-tls-verify: "false"`, skip-verify with a CA, `contexts: 5` and other wrong shapes);
nothing configured (`NoCredentials`) is told apart from something broken (`UnusableCredentials`). The clock
is injected; nothing sleeps.
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
from responder.kube import client, credentials, kubeconfigs
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


def test_outside_a_pod_the_first_file_of_kubeconfig_wins_for_a_name_both_define(
    tmp_path: Path, service_account: Path
) -> None:
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
    assert raised.value.kubeconfig.sources == (kubeconfig,)
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


# ---- several kubeconfig files, merged as kubectl merges them ------------------------------------------


def _document(
    *, clusters: dict[str, Any], users: dict[str, Any], contexts: dict[str, Any], current: str | None
) -> str:
    document: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": c} for n, c in clusters.items()],
        "users": [{"name": n, "user": u} for n, u in users.items()],
        "contexts": [{"name": n, "context": c} for n, c in contexts.items()],
    }
    if current is not None:
        document["current-context"] = current
    return yaml.safe_dump(document)


def test_kubeconfig_a_colon_b_finds_a_context_whose_cluster_and_user_live_in_the_second_file(
    tmp_path: Path, service_account: Path
) -> None:
    first_dir, second_dir = tmp_path / "one", tmp_path / "two"
    first_dir.mkdir()
    second_dir.mkdir()
    (second_dir / "token").write_text("second-token\n")
    first = first_dir / "config"
    first.write_text(
        _document(
            clusters={"c1": {"server": "https://one:6443"}},
            users={"u1": {"token": "one-token"}},
            contexts={"ctx-one": {"cluster": "c1", "user": "u1"}},
            current=None,
        )
    )
    second = second_dir / "config"
    second.write_text(
        _document(
            clusters={"c2": {"server": "https://two:6443"}},
            users={"u2": {"tokenFile": "token"}},  # relative to the second file's directory
            contexts={"ctx-two": {"cluster": "c2", "user": "u2"}},
            current="ctx-two",
        )
    )
    environ = {"KUBECONFIG": os.pathsep.join([str(tmp_path / "absent"), str(first), str(second)])}
    found = credentials.load(settings.KubernetesSettings(), environ=environ, directory=service_account)
    assert found.server == "https://two:6443"
    assert found.authorization() == "Bearer second-token"
    chosen = credentials.load(
        settings.KubernetesSettings(context="ctx-one"), environ=environ, directory=service_account
    )
    assert chosen.server == "https://one:6443"
    assert chosen.authorization() == "Bearer one-token"


def test_the_first_file_that_sets_current_context_wins_and_the_first_to_name_an_entry_wins(
    tmp_path: Path,
) -> None:
    first, second, third = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    first.write_text(
        _document(clusters={"c": {"server": "https://a:6443"}}, users={}, contexts={}, current=None)
    )
    second.write_text(
        _document(
            clusters={"c": {"server": "https://b:6443"}},
            users={"u": {"token": "b"}},
            contexts={"ctx": {"cluster": "c", "user": "u"}},
            current="ctx",
        )
    )
    third.write_text(
        _document(
            clusters={},
            users={"u": {"token": "c"}},
            contexts={"other": {"cluster": "c", "user": "u"}},
            current="other",
        )
    )
    merged = kubeconfigs.read([first, second, third])
    assert merged.current_context == "ctx"
    found = credentials.from_kubeconfig(merged)
    assert found.server == "https://a:6443"
    assert found.authorization() == "Bearer b"
    assert sorted(merged.contexts) == ["ctx", "other"]


def test_the_merged_document_for_kubernetes_asyncio_has_absolute_file_names(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "config"
    path.write_text(
        _document(
            clusters={"c": {"server": "https://a:6443", "certificate-authority": "ca.crt"}},
            users={"u": {"exec": {"command": "./bin/get-token", "apiVersion": "v1"}}},
            contexts={"ctx": {"cluster": "c", "user": "u"}},
            current="ctx",
        )
    )
    document = kubeconfigs.read([path]).to_dict()
    assert document["clusters"][0]["cluster"]["certificate-authority"] == str(tmp_path / "sub" / "ca.crt")
    assert document["users"][0]["user"]["exec"]["command"] == str(tmp_path / "sub" / "bin" / "get-token")
    assert document["current-context"] == "ctx"


# ---- what kubectl refuses is refused, with a clear message ---------------------------------------------


@pytest.mark.parametrize(
    ("cluster", "message"),
    [
        pytest.param(
            {"server": "https://api:6443", "insecure-skip-tls-verify": "false"},
            r"insecure-skip-tls-verify must be true or false \(a YAML boolean\), not str 'false'",
            id="string-false",
        ),
        pytest.param(
            {"server": "https://api:6443", "insecure-skip-tls-verify": "true"},
            "insecure-skip-tls-verify must be true or false",
            id="string-true",
        ),
        pytest.param(
            {
                "server": "https://api:6443",
                "insecure-skip-tls-verify": True,
                "certificate-authority-data": base64.b64encode(b"ca").decode(),
            },
            "specifying a root certificates file with the insecure flag is not allowed",
            id="skip-verify-with-ca-data",
        ),
        pytest.param(
            {"server": "https://api:6443", "insecure-skip-tls-verify": True, "certificate-authority": "ca"},
            "specifying a root certificates file with the insecure flag is not allowed",
            id="skip-verify-with-ca-file",
        ),
    ],
)
def test_tls_flags_kubectl_refuses_are_refused_never_read_as_skip_verify(
    tmp_path: Path, cluster: dict[str, Any], message: str
) -> None:
    kubeconfig = _kubeconfig(tmp_path / "config", cluster=cluster, user={"token": "t"})
    with pytest.raises(credentials.UnusableCredentials, match=message):
        credentials.from_kubeconfig(kubeconfig)


def test_insecure_skip_tls_verify_false_keeps_verification_on(tmp_path: Path) -> None:
    kubeconfig = _kubeconfig(
        tmp_path / "config",
        cluster={"server": "https://api:6443", "insecure-skip-tls-verify": False},
        user={"token": "t"},
    )
    found = credentials.from_kubeconfig(kubeconfig)
    assert found.ssl_context is not None
    assert found.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert found.ssl_context.check_hostname


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param("current-context: x\ncontexts: 5\n", r"contexts must be a list .* not int 5", id="int"),
        pytest.param("clusters: {c: {server: x}}\n", "clusters must be a list", id="mapping"),
        pytest.param("users: [5]\n", r"users\[0\] must be a mapping", id="entry-not-mapping"),
        pytest.param("contexts: [{context: {}}]\n", r"contexts\[0\].name must be", id="no-name"),
        pytest.param("clusters: [{name: c, cluster: [1]}]\n", r"\.cluster must be a mapping", id="list"),
        pytest.param(
            "clusters: [{name: c, cluster: {server: 6443}}]\n", "server must be a string", id="int-server"
        ),
        pytest.param("users: [{name: u, user: {exec: run}}]\n", "exec must be a mapping", id="exec-string"),
        pytest.param("current-context: [a]\n", "current-context must be a string", id="context-list"),
    ],
)
def test_a_malformed_kubeconfig_is_one_clear_error_not_a_traceback(
    tmp_path: Path, document: str, message: str
) -> None:
    path = tmp_path / "config"
    path.write_text(document)
    with pytest.raises(credentials.UnusableCredentials, match=message) as raised:
        credentials.from_kubeconfig(path)
    assert str(path) in str(raised.value)


def test_nothing_configured_is_no_credentials_but_something_broken_is_unusable(
    tmp_path: Path, service_account: Path
) -> None:
    with pytest.raises(credentials.NoCredentials) as nothing:
        credentials.load(
            settings.KubernetesSettings(),
            environ={"KUBECONFIG": str(tmp_path / "absent")},
            directory=service_account,
        )
    assert not isinstance(nothing.value, credentials.UnusableCredentials)
    with pytest.raises(credentials.UnusableCredentials, match="no such file"):
        credentials.load(
            settings.KubernetesSettings(kubeconfig=str(tmp_path / "absent")),
            environ={},
            directory=service_account,
        )
    broken = _kubeconfig(
        tmp_path / "config",
        cluster={"server": "https://api:6443"},
        user={"client-certificate": "missing.crt", "client-key": "missing.key"},
    )
    with pytest.raises(credentials.UnusableCredentials, match=r"missing\.crt"):
        credentials.load(
            settings.KubernetesSettings(), environ={"KUBECONFIG": str(broken)}, directory=service_account
        )
    (service_account / "token").unlink()
    with pytest.raises(credentials.UnusableCredentials, match="service account"):
        credentials.load(
            settings.KubernetesSettings(),
            environ={"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"},
            directory=service_account,
        )
