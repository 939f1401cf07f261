"""The service's own code paths do not load the Kubernetes client library.

Aspects covered: importing the client, the pipeline and the serve command (the modules `serve` wires) leaves
kubernetes_asyncio unimported, and so does connecting with a kubeconfig (certificate or token) and failing to
find any credentials; it is imported only for a kubeconfig user with an `exec`/`auth-provider` plugin
(tests/integration/kube). Run in a fresh interpreter: this test process may have imported it already.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

SERVE_PATH = """
import asyncio, sys
import responder.kube.client, responder.engine.processing, responder.commands.serving
from responder.commands import serving
from responder.engine import notifying
from responder.kube import client, state, threads
from responder.web import app
from responder import metrics
from responder.models import settings

async def main(kubeconfig):
    kube = await client.Kube.connect(
        settings=settings.KubernetesSettings(kubeconfig=kubeconfig), metrics=metrics.Metrics()
    )
    await kube.close()
    try:
        await client.Kube.connect(
            settings=settings.KubernetesSettings(kubeconfig=kubeconfig + ".missing"), metrics=metrics.Metrics()
        )
    except client.NoCredentials:
        pass
    else:
        raise SystemExit("expected NoCredentials")

asyncio.run(main(sys.argv[1]))
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "kubernetes_asyncio")
assert not loaded, loaded[:10]
print("clean")
"""


def test_the_serve_path_and_connecting_with_a_kubeconfig_do_not_import_kubernetes_asyncio(
    tmp_path: Path,
) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "main", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "main",
            }
        )
    )
    result = subprocess.run(
        [sys.executable, "-c", SERVE_PATH, str(kubeconfig)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "clean"
