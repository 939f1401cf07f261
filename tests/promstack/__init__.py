"""A real Prometheus with hours or days of history, for tests that read memory history over HTTP.

Debian's `prometheus` (v2.42) is started on a free loopback port with a temporary storage path that
`promtool tsdb create-blocks-from openmetrics` has filled beforehand: no scraping, no fake API, the same
`/api/v1/query_range` answers a cluster's Prometheus gives. Modules:

* `stack.py`: `Series` (a metric name, labels, (Unix seconds, value) samples), `backfill(series, storage)`,
  `start(storage) -> PromStack` (`.url`, `.stop()`), and `running(series, directory)` doing all three as a
  context manager; `missing_binaries()` says why it cannot run here.
* `scenarios.py`: workloads in the namespace `promstack` with a day of kube-prometheus-stack series
  (cAdvisor working set and RSS, kube-state-metrics limits and restarts), one per pattern: `linear-api`
  (two replicas), `sawtooth-worker`, `accelerating-queue`, `spike-batch`, `stable-web`, `gappy-cache`
  (a StatefulSet OOM-killed every ~7 h, with scrape gaps), `replaced-api` (a pod replaced halfway by a
  rollout) and `linear-api-gateway` (a name sharing a prefix, never to be read for `linear-api`).
* `plugin.py` (registered in tests/conftest.py): the session fixture `promstack` (all scenarios in one
  Prometheus; `.url`, `.end`, `.scenarios`) and `start_prometheus(series)` for your own series.

Example::

    def test_reads_a_leak(promstack: Backfilled) -> None:
        scenario = promstack.scenarios["linear-api"]
        ... read f"{promstack.url}/api/v1/query_range" for NAMESPACE / scenario.name, ending at promstack.end

    def test_my_own_history(start_prometheus) -> None:
        stack = start_prometheus([Series("up", {"job": "x"}, [(time.time() - 3600, 1.0)])])
        ... stack.url ...

Query windows must end at (or before) `promstack.end`: nothing is recorded after it, and Prometheus
returns a sample for up to 5 minutes after the last one (its lookback delta).
"""
