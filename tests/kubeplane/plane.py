"""Running a real Kubernetes control plane as local processes (test support only).

etcd, kube-apiserver (RBAC, TokenRequest, admission incl. ResourceQuota and LimitRanger),
kube-controller-manager, kube-scheduler and kwok (fake nodes that make pods Running) are started on
free loopback ports, each in its own process group, so a stop always takes the whole tree down:
at fixture teardown, at interpreter exit (atexit), on SIGTERM/SIGHUP, and — through
``PR_SET_PDEATHSIG`` — even when pytest itself is SIGKILLed.

It knows nothing about oom-responder; it only provides a cluster.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config

from tests.kubeplane import assets as assets_mod

__all__ = ["FAKE_NODE_ANNOTATION", "KubePlane", "PlaneError", "write_kubeconfig"]

#: kwok manages only nodes carrying this annotation (so nothing else in the cluster is touched).
FAKE_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")


#: Pod lifecycle stages for kwok: Running with containerStatuses[].resources, as a kubelet reports.
KWOK_STAGES = Path(__file__).with_name("kwok-stages.yaml")

#: What kwok's server reports for the fake pods at ``/metrics/nodes/<node>/metrics/resource``, the shape of a
#: kubelet's resource metrics (``container_memory_working_set_bytes``...), driven by pod annotations.
KWOK_METRICS = Path(__file__).with_name("kwok-metrics.yaml")


class PlaneError(RuntimeError):
    """A component failed to start; the message carries the tail of its log."""


# --------------------------------------------------------------------------------------------
# PKI: one CA signs the apiserver's serving cert and every client identity. EC keys, because
# generating RSA keys would cost most of a second each on a busy 2-core machine.


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class _Pki:
    """A throw-away certificate authority, written as PEM files into ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self._ca_key = _new_key()
        now = datetime.datetime.now(datetime.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "oom-responder-test-ca")])
        self._ca_name = name
        self._ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._ca_key, hashes.SHA256())
        )
        self.ca_cert = self.dir / "ca.crt"
        self.ca_key = self.dir / "ca.key"
        self.ca_cert.write_bytes(_cert_pem(self._ca_cert))
        self.ca_key.write_bytes(_key_pem(self._ca_key))
        self.ca_key.chmod(0o600)

    def issue(
        self,
        stem: str,
        *,
        common_name: str,
        organizations: Sequence[str] = (),
        server: bool = False,
    ) -> tuple[Path, Path]:
        """Sign a client (or, with ``server``, a loopback serving) certificate; return (crt, key)."""
        key = _new_key()
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        attrs += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(self._ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.DNSName("kubernetes"),
                        x509.DNSName("kubernetes.default.svc"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
                    ]
                ),
                critical=False,
            ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        else:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
        cert = builder.sign(self._ca_key, hashes.SHA256())
        crt_path, key_path = self.dir / f"{stem}.crt", self.dir / f"{stem}.key"
        crt_path.write_bytes(_cert_pem(cert))
        key_path.write_bytes(_key_pem(key))
        key_path.chmod(0o600)
        return crt_path, key_path

    def service_account_keys(self) -> tuple[Path, Path]:
        """The key pair that signs service-account tokens (ES256); return (private, public)."""
        key = _new_key()
        priv, pub = self.dir / "sa.key", self.dir / "sa.pub"
        priv.write_bytes(_key_pem(key))
        priv.chmod(0o600)
        pub.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return priv, pub


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    ca_path: Path,
    user: str,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    token: str | None = None,
    namespace: str | None = None,
) -> Path:
    """Write a one-context kubeconfig authenticating with a client cert or a bearer token."""
    creds: dict[str, str] = {}
    if client_cert is not None and client_key is not None:
        creds = {"client-certificate": str(client_cert), "client-key": str(client_key)}
    if token is not None:
        creds["token"] = token
    context: dict[str, str] = {"cluster": "kubeplane", "user": user}
    if namespace:
        context["namespace"] = namespace
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "kubeplane", "cluster": {"server": server, "certificate-authority": str(ca_path)}}
        ],
        "users": [{"name": user, "user": creds}],
        "contexts": [{"name": "kubeplane", "context": context}],
        "current-context": "kubeplane",
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    path.chmod(0o600)
    return path


# --------------------------------------------------------------------------------------------
# Processes


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: get SIGKILLed if pytest dies without cleaning up."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class _Proc:
    """One component: a process group with its log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() kills grandchildren too
            # prctl must run in the child between fork and exec; no threads run there.
            preexec_fn=_die_with_parent,  # noqa: PLW1509
        )

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise PlaneError(f"{self.name} exited with {code}; log tail:\n{self.log_tail()}")

    def signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def wait(self, timeout: float) -> bool:
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def close_log(self) -> None:
        with contextlib.suppress(OSError):
            self._log.close()


def _remove_orphaned_etcd_dirs(shm: Path) -> None:
    """Free RAM held by etcd data of runs that were SIGKILLed (their pid is in the name)."""
    for entry in shm.glob("kubeplane-etcd-*-*"):
        pid = entry.name.split("-")[2]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(entry, ignore_errors=True)
        except PermissionError:
            pass  # someone else's live run


_LIVE_PLANES: list[KubePlane] = []
_handlers_installed: list[bool] = []  # non-empty once installed (a list avoids `global`)


def _stop_all_planes() -> None:
    for plane in list(_LIVE_PLANES):
        plane.stop()


def _install_exit_handlers() -> None:
    """Stop planes at exit and on SIGTERM/SIGHUP (SIGINT already unwinds pytest's fixtures)."""
    if _handlers_installed:
        return
    _handlers_installed.append(True)
    atexit.register(_stop_all_planes)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous = signal.getsignal(sig)

        def handler(
            signum: int,
            frame: FrameType | None,
            _previous: Any = previous,
        ) -> None:
            _stop_all_planes()
            if callable(_previous):
                _previous(signum, frame)
            else:
                raise SystemExit(128 + signum)

        with contextlib.suppress(ValueError):  # not in the main thread: atexit still covers us
            signal.signal(sig, handler)


class KubePlane:
    """A running control plane. Build with ``KubePlane(assets, workdir)``, then ``start()``.

    Public attributes once started: ``server`` (https URL), ``ca_path``, ``kubeconfig`` (admin,
    in ``system:masters``), ``workdir``, ``startup_seconds``, ``node_names``, ``version`` and
    ``kwok_address`` (``host:port`` of kwok's plain-HTTP server, which serves the fake kubelets' metrics).
    """

    def __init__(
        self,
        assets: assets_mod.Assets,
        workdir: Path | None = None,
        *,
        nodes: int = 3,
        node_cpu: str = "16",
        node_memory: str = "64Gi",
    ) -> None:
        self.assets = assets
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="kubeplane-"))
        self.node_count = nodes
        self.node_cpu = node_cpu
        self.node_memory = node_memory
        self.procs: list[_Proc] = []
        self.server = ""
        self.ca_path = self.workdir / "pki" / "ca.crt"
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.startup_seconds = 0.0
        self.node_names: list[str] = []
        self.kwok_address = ""
        self.version: dict[str, Any] = {}
        self._admin_cert: tuple[Path, Path] | None = None
        self._ssl: ssl.SSLContext | None = None

    # ---- lifecycle --------------------------------------------------------------------

    def start(self, *, timeout_seconds: float = 90) -> None:
        """Start every component and wait until pods can be scheduled onto Ready fake nodes."""
        t0 = time.monotonic()
        deadline = t0 + timeout_seconds
        _install_exit_handlers()
        _LIVE_PLANES.append(self)
        try:
            self._start(deadline)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0

    def _start(self, deadline: float) -> None:
        pki = _Pki(self.workdir / "pki")
        serving = pki.issue("apiserver", common_name="kube-apiserver", server=True)
        self._admin_cert = pki.issue("admin", common_name="admin", organizations=["system:masters"])
        kcm_cert = pki.issue("kcm", common_name="system:kube-controller-manager")
        sched_cert = pki.issue("scheduler", common_name="system:kube-scheduler")
        sa_priv, sa_pub = pki.service_account_keys()

        etcd_port, etcd_peer = _free_port(), _free_port()
        api_port = _free_port()
        self.server = f"https://127.0.0.1:{api_port}"
        write_kubeconfig(
            self.kubeconfig,
            server=self.server,
            ca_path=pki.ca_cert,
            user="admin",
            client_cert=self._admin_cert[0],
            client_key=self._admin_cert[1],
        )
        kcm_kubeconfig = write_kubeconfig(
            self.workdir / "kcm.kubeconfig",
            server=self.server,
            ca_path=pki.ca_cert,
            user="kcm",
            client_cert=kcm_cert[0],
            client_key=kcm_cert[1],
        )
        sched_kubeconfig = write_kubeconfig(
            self.workdir / "scheduler.kubeconfig",
            server=self.server,
            ca_path=pki.ca_cert,
            user="scheduler",
            client_cert=sched_cert[0],
            client_key=sched_cert[1],
        )

        # etcd's data lives in RAM when /dev/shm exists: the plane is disposable, and fsync on
        # a shared disk is what makes apiserver writes slow.
        shm = Path("/dev/shm")
        if shm.is_dir():
            _remove_orphaned_etcd_dirs(shm)
            data_root = Path(tempfile.mkdtemp(prefix=f"kubeplane-etcd-{os.getpid()}-", dir=shm))
        else:
            data_root = self.workdir
        self._etcd_data = data_root
        self._spawn(
            "etcd",
            [
                str(self.assets["etcd"]),
                f"--data-dir={data_root / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=default=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._spawn(
            "kube-apiserver",
            [
                str(self.assets["kube-apiserver"]),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={serving[0]}",
                f"--tls-private-key-file={serving[1]}",
                f"--client-ca-file={pki.ca_cert}",
                "--authorization-mode=Node,RBAC",
                f"--service-account-key-file={sa_pub}",
                f"--service-account-signing-key-file={sa_priv}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--api-audiences=https://kubernetes.default.svc.cluster.local",
                "--service-cluster-ip-range=10.0.0.0/24",
                # ResourceQuota and LimitRanger are in the default set already; naming them
                # keeps them on if a future default drops one.
                "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,LimitRanger,ResourceQuota",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
                "--event-ttl=1h",
                "-v=1",
            ],
        )
        self._wait_http("kube-apiserver", "/readyz", deadline)
        self.version = json.loads(self._get("/version"))

        self._spawn(
            "kube-controller-manager",
            [
                str(self.assets["kube-controller-manager"]),
                f"--kubeconfig={kcm_kubeconfig}",
                f"--authentication-kubeconfig={kcm_kubeconfig}",
                f"--authorization-kubeconfig={kcm_kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={_free_port()}",
                "--leader-elect=false",
                "--controllers=*",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={sa_priv}",
                f"--root-ca-file={pki.ca_cert}",
                f"--cluster-signing-cert-file={pki.ca_cert}",
                f"--cluster-signing-key-file={pki.ca_key}",
                # Fake nodes never lose heartbeats, but keep eviction of their pods out of tests.
                "--node-monitor-grace-period=1h",
                # The HPA controller applies a raised minReplicas at its next sync: tests that raise an HPA's
                # floor wait for it (15 s by default). A handful of HPAs at a time costs nothing to sync often.
                "--horizontal-pod-autoscaler-sync-period=1s",
                # Its default client limit (20/s) is what tests staging dozens of workloads at once wait on.
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "-v=1",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(self.assets["kube-scheduler"]),
                f"--kubeconfig={sched_kubeconfig}",
                f"--authentication-kubeconfig={sched_kubeconfig}",
                f"--authorization-kubeconfig={sched_kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={_free_port()}",
                "--leader-elect=false",
                "-v=1",
            ],
        )
        self.kwok_address = f"127.0.0.1:{_free_port()}"
        self._spawn(
            "kwok",
            [
                str(self.assets["kwok"]),
                f"--kubeconfig={self.kubeconfig}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={'='.join(FAKE_NODE_ANNOTATION)}",
                "--manage-nodes-with-label-selector=",
                "--manage-single-node=",
                "--cidr=10.244.0.0/16",
                "--node-ip=127.0.0.1",
                f"--server-address={self.kwok_address}",
                "--node-lease-duration-seconds=40",
                f"--config={KWOK_STAGES}",
                f"--config={KWOK_METRICS}",
            ],
        )
        # Nodes follow kwok's built-in node stages; pods follow kwok-stages.yaml (see there why).
        self._create_nodes()
        self._wait_until(
            "fake nodes Ready",
            self._nodes_ready,
            deadline,
        )
        self._wait_until("default ServiceAccount in 'default'", self._default_sa_exists, deadline)

    def stop(self) -> None:
        """Stop every component (TERM, then KILL after 1 s) and remove etcd's RAM-backed data.

        Nothing of a test plane is worth a graceful shutdown: kube-apiserver, TERMed together with etcd,
        lingers for more than 10 s, which every session would otherwise wait for.
        """
        procs, self.procs = self.procs, []
        for proc in reversed(procs):
            proc.signal_group(signal.SIGTERM)
        for proc in reversed(procs):
            if not proc.wait(1):
                proc.signal_group(signal.SIGKILL)
                proc.wait(5)
            # Anything the component itself spawned shares its group; make sure it is gone.
            proc.signal_group(signal.SIGKILL)
            proc.close_log()
        data = getattr(self, "_etcd_data", None)
        if data is not None and str(data).startswith("/dev/shm/"):
            shutil.rmtree(data, ignore_errors=True)
        if self in _LIVE_PLANES:
            _LIVE_PLANES.remove(self)

    def check_alive(self) -> None:
        """Raise PlaneError if any component has died (its log tail is in the message)."""
        for proc in self.procs:
            proc.check_alive()

    # ---- helpers for tests ------------------------------------------------------------

    def kubectl(
        self,
        *args: str,
        kubeconfig: Path | None = None,
        input_text: str | None = None,
        check: bool = True,
        timeout_seconds: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run the pinned kubectl against this plane (admin unless ``kubeconfig`` is given)."""
        argv = [str(self.assets["kubectl"]), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args]
        proc = subprocess.run(
            argv,
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout_seconds,
            check=False,
        )
        if check and proc.returncode != 0:
            raise PlaneError(f"kubectl {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    async def api_client(self, kubeconfig: Path | None = None) -> k8s_client.ApiClient:
        """A ``kubernetes_asyncio`` ApiClient (admin unless ``kubeconfig``); the caller closes it."""
        return await k8s_config.new_client_from_config(config_file=str(kubeconfig or self.kubeconfig))

    def create_namespace(self, name: str, *, timeout_seconds: float = 30) -> None:
        """Create a namespace and wait for its default ServiceAccount.

        The ServiceAccount admission plugin rejects pods until the serviceaccount controller has
        created ``default``; waiting here keeps that race out of every test.
        """
        status, text = self._request(
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        )
        if status != 201:
            raise PlaneError(f"creating namespace {name} -> {status}: {text[:300]}")
        path = f"/api/v1/namespaces/{name}/serviceaccounts/default"
        self._wait_until(
            f"default ServiceAccount in {name}",
            lambda: self._request("GET", path)[0] == 200,
            time.monotonic() + timeout_seconds,
        )

    def delete_namespace(self, name: str) -> None:
        """Ask for the namespace's deletion; the namespace controller finishes it in the background."""
        self._request("DELETE", f"/api/v1/namespaces/{name}")

    def service_account_kubeconfig(
        self,
        namespace: str,
        rules_or_role: list[dict[str, Any]] | str,
        *,
        cluster: bool = False,
        name: str = "tester",
        token_seconds: int = 3600,
    ) -> Path:
        """Create ServiceAccount ``name`` with exactly this RBAC and write a token kubeconfig for it.

        ``rules_or_role``: PolicyRule dicts (``{"apiGroups": ["apps"], "resources":
        ["deployments"], "verbs": ["get", "patch"]}``) from which a Role — a ClusterRole when
        ``cluster`` — named ``<namespace>-<name>`` is made; or the name of an existing ClusterRole
        (``"view"``, ``"edit"``) to bind. The token comes from the TokenRequest API, as a
        projected token would in a real pod.
        """
        rbac = "/apis/rbac.authorization.k8s.io/v1"
        self._create(
            f"/api/v1/namespaces/{namespace}/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
        )
        role_name = f"{namespace}-{name}"
        if isinstance(rules_or_role, str):
            role_kind, role_name = "ClusterRole", rules_or_role
        elif cluster:
            role_kind = "ClusterRole"
            self._create(
                f"{rbac}/clusterroles",
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRole",
                    "metadata": {"name": role_name},
                    "rules": rules_or_role,
                },
            )
        else:
            role_kind = "Role"
            self._create(
                f"{rbac}/namespaces/{namespace}/roles",
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "Role",
                    "metadata": {"name": role_name},
                    "rules": rules_or_role,
                },
            )
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding" if cluster else "RoleBinding",
            "metadata": {"name": f"{namespace}-{name}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        }
        self._create(
            f"{rbac}/clusterrolebindings" if cluster else f"{rbac}/namespaces/{namespace}/rolebindings",
            binding,
        )
        status, text = self._request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": token_seconds},
            },
        )
        if status != 201:
            raise PlaneError(f"TokenRequest for {namespace}/{name} -> {status}: {text[:300]}")
        token = json.loads(text)["status"]["token"]
        return write_kubeconfig(
            self.workdir / f"sa-{namespace}-{name}.kubeconfig",
            server=self.server,
            ca_path=self.ca_path,
            user=f"system:serviceaccount:{namespace}:{name}",
            token=token,
            namespace=namespace,
        )

    @property
    def env(self) -> dict[str, str]:
        """Environment for a subprocess (e.g. the responder) that should talk to this plane."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    # ---- internals --------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> None:
        log_dir = self.workdir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.procs.append(_Proc(name, argv, log_dir / f"{name}.log"))

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            assert self._admin_cert is not None
            ctx = ssl.create_default_context(cafile=str(self.ca_path))
            ctx.load_cert_chain(str(self._admin_cert[0]), str(self._admin_cert[1]))
            self._ssl = ctx
        return self._ssl

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, str]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.server + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data else {},
        )
        try:
            with urllib.request.urlopen(req, context=self._ssl_context(), timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def _create(self, path: str, body: dict[str, Any]) -> None:
        status, text = self._request("POST", path, body)
        if status != 201:
            raise PlaneError(f"POST {path} -> {status}: {text[:300]}")

    def _get(self, path: str) -> str:
        status, text = self._request("GET", path)
        if status != 200:
            raise PlaneError(f"GET {path} -> {status}: {text[:300]}")
        return text

    def _wait_until(self, what: str, predicate: Callable[[], bool], deadline: float) -> None:
        delay = 0.05
        while True:
            self.check_alive()
            try:
                if predicate():
                    return
            except (OSError, urllib.error.URLError, ValueError):
                pass
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {p.name}:\n{p.log_tail(5)}" for p in self.procs)
                raise PlaneError(f"timed out waiting for {what}\n{logs}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def _wait_http(self, what: str, path: str, deadline: float) -> None:
        self._wait_until(f"{what} {path}", lambda: self._request("GET", path)[0] == 200, deadline)

    def _create_nodes(self) -> None:
        minor = str(self.version.get("gitVersion", "v0.0.0"))
        for i in range(self.node_count):
            name = f"kwok-node-{i}"
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {
                        FAKE_NODE_ANNOTATION[0]: FAKE_NODE_ANNOTATION[1],
                        "node.alpha.kubernetes.io/ttl": "0",
                    },
                    "labels": {
                        "kubernetes.io/arch": "amd64",
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/hostname": name,
                        "type": "kwok",
                    },
                },
                "spec": {},
                "status": {
                    "allocatable": {"cpu": self.node_cpu, "memory": self.node_memory, "pods": "110"},
                    "capacity": {"cpu": self.node_cpu, "memory": self.node_memory, "pods": "110"},
                    "nodeInfo": {
                        "architecture": "amd64",
                        "operatingSystem": "linux",
                        "kubeletVersion": minor,
                        "kubeProxyVersion": minor,
                    },
                },
            }
            status, text = self._request("POST", "/api/v1/nodes", node)
            if status not in (201, 409):
                raise PlaneError(f"creating node {name} -> {status}: {text[:300]}")
            self.node_names.append(name)

    def _nodes_ready(self) -> bool:
        status, text = self._request("GET", "/api/v1/nodes")
        if status != 200:
            return False
        ready = 0
        for node in json.loads(text).get("items", []):
            conds = node.get("status", {}).get("conditions") or []
            spec = node.get("spec", {})
            tainted = any(t.get("key") == "node.kubernetes.io/not-ready" for t in spec.get("taints") or [])
            if not tainted and any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds):
                ready += 1
        return ready >= self.node_count

    def _default_sa_exists(self) -> bool:
        return self._request("GET", "/api/v1/namespaces/default/serviceaccounts/default")[0] == 200
