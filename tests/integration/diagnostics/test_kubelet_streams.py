"""Previous logs and exec through the real kube-apiserver to a kubelet endpoint (kwok's).

Covers: `pods/log?previous=true` read and grepped (matches, count, redaction), a container that never ran
before (no previous log) and a log too large (read again so its end is scanned) as clear lines, RBAC
(`get pods/log`; the websocket exec needs both `get` and `create` on `pods/exec`, either alone is a 403
line), and
`pods/exec` over the websocket streaming protocol: the subprotocol chosen, a heap-dump template run to the
end with its size read back, a non-zero exit, a command missing from the "image", and a timeout.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from responder import metrics as metrics_mod
from responder.kube import client, executing, podlogs
from responder.logic import dumping, excerpting
from responder.models import diagnostics, settings
from tests.integration.diagnostics.conftest import Kubelet, cri_lines

pytestmark = pytest.mark.integration

NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
Outcome = diagnostics.ExecOutcome


def requests(kube: client.Kube, verb: str, code: str) -> float:
    # Summed over the `resource` label.
    return sum(
        sample.value
        for family in kube.metrics.registry.collect()
        for sample in family.samples
        if sample.name == "oom_responder_kube_requests_total"
        and (sample.labels["verb"], sample.labels["code"]) == (verb, code)
    )


def size_of(path: str) -> int:
    return Path(path).stat().st_size


async def connect(kubeconfig: Path) -> client.Kube:
    return await client.Kube.connect(
        settings=settings.KubernetesSettings(kubeconfig=str(kubeconfig)), metrics=metrics_mod.Metrics()
    )


@pytest.fixture(scope="module")
def pod(kubelet: Kubelet) -> str:
    kubelet.make_pod("web-7d9f8b6c5-x2kqz")
    return "web-7d9f8b6c5-x2kqz"


@pytest.fixture
async def admin(kubelet: Kubelet) -> AsyncIterator[client.Kube]:
    kube = await connect(kubelet.plane.kubeconfig)
    yield kube
    await kube.close()


async def test_reads_and_greps_the_previous_log(kubelet: Kubelet, pod: str, admin: client.Kube) -> None:
    (kubelet.files / "app-previous.log").write_text(
        cri_lines(
            [
                "listening on :8080",
                "connecting to postgres://orders:hunter2@db:5432/orders",
                "cache grew to 1.9 GiB, possible leak in session store",
                "<--- Last few GCs --->",
                "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
            ]
        )
    )
    found = await podlogs.read_previous(
        admin, namespace=kubelet.namespace, pod=pod, container="app", options=settings.PreviousLogsSettings()
    )
    assert found.problem is None
    assert found.lines_scanned == 5
    assert found.matches_total == 2
    assert found.last_matches == (
        "cache grew to 1.9 GiB, possible leak in session store",
        "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
    )
    # The current log is another file: previous=true is what reached the "kubelet".
    assert "listening" not in " ".join(found.last_matches)


async def test_redacts_a_matching_line_that_carries_a_secret(
    kubelet: Kubelet, pod: str, admin: client.Kube
) -> None:
    (kubelet.files / "app-previous.log").write_text(
        cri_lines(["OutOfMemoryError after login password=hunter2 api_key: sk-123456"])
    )
    found = await podlogs.read_previous(
        admin, namespace=kubelet.namespace, pod=pod, container="app", options=settings.PreviousLogsSettings()
    )
    [line] = found.last_matches
    assert "hunter2" not in line and "sk-123456" not in line
    assert line == "OutOfMemoryError after login [REDACTED] [REDACTED]"


async def test_a_container_that_never_ran_before_is_not_asked_for_a_previous_log(
    kubelet: Kubelet, pod: str, admin: client.Kube
) -> None:
    pod_body = await admin.get(f"/api/v1/namespaces/{kubelet.namespace}/pods/{pod}")
    asked = requests(admin, "get", "200")
    found = await podlogs.read_previous(
        admin,
        namespace=kubelet.namespace,
        pod=pod,
        container="fresh",
        options=settings.PreviousLogsSettings(),
        pod_body=pod_body,
    )
    assert found.problem == (
        "the container has not run before (no restart, no terminated state): there is no previous log"
    )
    assert requests(admin, "get", "200") == asked
    # The OOM-killed container of the same pod is read.
    app = await podlogs.read_previous(
        admin,
        namespace=kubelet.namespace,
        pod=pod,
        container="app",
        options=settings.PreviousLogsSettings(),
        pod_body=pod_body,
    )
    assert app.problem is None
    assert requests(admin, "get", "200") == asked + 1


async def test_the_api_servers_refusal_is_a_line(kubelet: Kubelet, pod: str, admin: client.Kube) -> None:
    found = await podlogs.read_previous(
        admin, namespace=kubelet.namespace, pod=pod, container="nope", options=settings.PreviousLogsSettings()
    )
    assert found.problem == f"unreadable: container nope is not valid for pod {pod}"
    gone = await podlogs.read_previous(
        admin,
        namespace=kubelet.namespace,
        pod="gone-0",
        container="app",
        options=settings.PreviousLogsSettings(),
    )
    assert gone.problem == 'the pod is gone: pods "gone-0" not found'


async def test_a_log_too_large_is_read_again_so_that_its_end_is_scanned(
    kubelet: Kubelet, pod: str, admin: client.Kube
) -> None:
    lines = [f"request {i:05d} served in 12 ms by worker {i % 8} of the pool, all fine" for i in range(3000)]
    lines[1000] = "early heap warning that the first read would see"
    lines.append("java.lang.OutOfMemoryError: Java heap space")
    (kubelet.files / "big-previous.log").write_text(cri_lines(lines))
    options = settings.PreviousLogsSettings(tail_lines=2500, limit_bytes=16 * 1024)
    found = await podlogs.read_previous(
        admin, namespace=kubelet.namespace, pod=pod, container="big", options=options
    )
    assert found.problem is None
    assert found.narrowed_to_lines is not None and found.narrowed_to_lines < 2500, found
    assert found.bytes_read <= options.limit_bytes
    assert found.last_matches == ("java.lang.OutOfMemoryError: Java heap space",)
    assert "so only the last" in excerpting.describe(found, options=options)[0]


async def test_reading_logs_needs_get_pods_log(
    kubelet: Kubelet, pod: str, service_account_kubeconfig: Callable[..., Path]
) -> None:
    kubeconfig = service_account_kubeconfig(
        kubelet.namespace, [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}], name="no-logs"
    )
    kube = await connect(kubeconfig)
    try:
        found = await podlogs.read_previous(
            kube,
            namespace=kubelet.namespace,
            pod=pod,
            container="app",
            options=settings.PreviousLogsSettings(),
        )
    finally:
        await kube.close()
    assert found.problem is not None and found.problem.startswith(
        "reading logs is not allowed (RBAC: get pods/log)"
    )


async def run(
    kube: client.Kube, kubelet: Kubelet, pod: str, argv: list[str], limit_seconds: float = 30
) -> diagnostics.ExecResult:
    return await executing.exec_in_container(
        kube,
        namespace=kubelet.namespace,
        pod=pod,
        container="app",
        command=argv,
        timeout_seconds=limit_seconds,
        max_output_bytes=4096,
    )


async def test_runs_a_heap_dump_template_over_the_websocket_protocol(
    kubelet: Kubelet, pod: str, service_account_kubeconfig: Callable[..., Path]
) -> None:
    # Exactly what the chart grants with diagnostics.heapDump.enabled: get and create on pods/exec, no more.
    kubeconfig = service_account_kubeconfig(
        kubelet.namespace,
        [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get", "create"]}],
        name="dumper",
    )
    options = settings.HeapDumpSettings(
        enabled=True,
        runtimes={
            "fake-jvm": settings.HeapDumpRuntime(
                # kwok runs the command on this machine in exec_dir: a stand-in for jcmd writing the dump.
                command=[
                    "sh",
                    "-c",
                    'head -c 1048576 /dev/zero > "{path}" && echo dumped >&2 && stat -c %s "{path}"',
                ],
                path=str(kubelet.exec_dir / "heapdump-{timestamp}.hprof"),
            )
        },
    )
    command = dumping.choose(
        annotations={dumping.RUNTIME_ANNOTATION: "fake-jvm"}, runtime=None, options=options, now=NOW
    )
    assert isinstance(command, dumping.Command)
    kube = await connect(kubeconfig)
    try:
        result = await run(kube, kubelet, pod, list(command.argv))
    finally:
        await kube.close()
    assert result.protocol == "v5.channel.k8s.io", result
    assert (result.outcome, result.exit_code) == (Outcome.SUCCEEDED, 0)
    assert result.stderr == b"dumped\n"
    dump = dumping.interpret(result, command=command, pod=pod, container="app")
    assert dump.size_bytes == 1048576 == size_of(command.path)
    assert dumping.describe(dump, timeout_seconds=30).startswith(
        f"heap dump (fake-jvm) written in {pod}/app to {command.path} (1.0 MiB, exit 0)"
    )


async def test_a_non_zero_exit_is_reported_with_its_code(
    kubelet: Kubelet, pod: str, admin: client.Kube
) -> None:
    result = await run(admin, kubelet, pod, ["sh", "-c", "echo 'Unable to open socket file' >&2; exit 3"])
    assert (result.outcome, result.exit_code) == (Outcome.NON_ZERO_EXIT, 3), result
    assert result.stderr == b"Unable to open socket file\n"


async def test_a_command_missing_from_the_image_is_named(
    kubelet: Kubelet, pod: str, admin: client.Kube
) -> None:
    direct = await run(admin, kubelet, pod, ["jcmd-not-in-this-image", "1", "GC.heap_dump", "/tmp/x"])
    assert direct.outcome is Outcome.COMMAND_MISSING
    assert "executable file not found" in direct.message
    through_shell = await run(
        admin, kubelet, pod, ["sh", "-c", "jcmd-not-in-this-image 1 GC.heap_dump /tmp/x"]
    )
    assert (through_shell.outcome, through_shell.exit_code) == (Outcome.COMMAND_MISSING, 127)


async def test_a_command_that_does_not_end_times_out(kubelet: Kubelet, pod: str, admin: client.Kube) -> None:
    result = await run(admin, kubelet, pod, ["sh", "-c", "echo started; sleep 30"], limit_seconds=3)
    assert result.outcome is Outcome.TIMED_OUT
    assert result.stdout == b"started\n"


@pytest.mark.parametrize(
    "verbs",
    [
        pytest.param([], id="none"),
        # The websocket upgrade is a GET, authorized as get and, since 1.35, as create too: one is not enough.
        pytest.param(["get"], id="get-only"),
        pytest.param(["create"], id="create-only"),
    ],
)
async def test_exec_without_permission_is_a_403_line(
    kubelet: Kubelet, pod: str, service_account_kubeconfig: Callable[..., Path], verbs: list[str]
) -> None:
    rules = [{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get"]}]
    if verbs:
        rules.append({"apiGroups": [""], "resources": ["pods/exec"], "verbs": verbs})
    kubeconfig = service_account_kubeconfig(
        kubelet.namespace, rules, name=f"no-exec-{len(verbs)}{''.join(verbs)}"
    )
    kube = await connect(kubeconfig)
    try:
        result = await run(kube, kubelet, pod, ["true"])
    finally:
        await kube.close()
    assert result.outcome is Outcome.FORBIDDEN
    assert (
        result.message == f"403: the service account may not get and create pods/exec in {kubelet.namespace}"
    )
    assert requests(kube, "create", "403") == 1
