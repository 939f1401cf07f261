"""The Prometheus reader: a workload's memory history over `/api/v1/query_range` (RB-010 Step 3).

The edge to Prometheus, on aiohttp like the Kubernetes transport. One `read_workload` call runs the
configured queries for every pod the workload had in the window (replaced pods too), at most
`max_concurrent_queries` at a time over the whole process, all of them within `timeout_seconds`. It never
raises for Prometheus' sake: absent, slow, 4xx/5xx, too big or malformed answers come back as a
`WorkloadHistory` whose `problem` says what happened, which the classifier turns into `insufficient_data`.
So Prometheus never blocks a mitigation, and never delays one beyond its timeout. Deciding what the history
means is `responder.logic.analysing`'s job, not this module's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from responder import metrics as metrics_mod
from responder.logic import analysing
from responder.models import analyses, settings
from responder.prometheus import queries, responses

__all__ = ["PrometheusError", "Reader", "investigate"]

logger = logging.getLogger(__name__)


_LATEST_ONLY = frozenset({queries.QueryName.LIMIT, queries.QueryName.RSS})


class PrometheusError(Exception):
    """One query failed; the message is a line for the analysis' reason."""


class Reader:
    """Reads memory history from one Prometheus. Build once; `await close()` at shutdown."""

    def __init__(
        self,
        config: settings.PrometheusSettings,
        *,
        authorization: str | None = None,
        metrics: metrics_mod.Metrics | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if config.url is None:
            raise ValueError("prometheus.url is not set")
        self.config = config
        self.base = config.url
        self.metrics = metrics
        headers = {"Accept": "application/json", "User-Agent": "oom-responder"}
        if authorization:
            headers["Authorization"] = authorization
        self._headers = headers
        self._slots = asyncio.Semaphore(config.max_concurrent_queries)
        self._own_session = session is None
        if session is None:
            tls: ssl.SSLContext | bool = True
            if config.insecure_skip_verify:
                tls = False
            elif config.ca_file:
                tls = ssl.create_default_context(cafile=config.ca_file)
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=tls, limit=config.max_concurrent_queries)
            )
        self.session = session

    async def close(self) -> None:
        if self._own_session:
            await self.session.close()

    def _count(self, query: queries.QueryName, code: int) -> None:
        if self.metrics is not None:
            self.metrics.prometheus_requests.labels(query=query.value, code=str(code)).inc()

    async def query_range(
        self, name: queries.QueryName, promql: str, *, window: queries.Window
    ) -> list[responses.Matrix]:
        """Run one range query; the parsed series, or `PrometheusError` saying what went wrong."""
        params = {
            "query": promql,
            "start": f"{window.start:.3f}",
            "end": f"{window.end:.3f}",
            "step": f"{window.step:g}",
        }
        return await self._query(name, "query_range", params, responses.parse_matrix)

    async def query_instant(
        self, name: queries.QueryName, promql: str, *, at: float
    ) -> list[responses.Matrix]:
        """Run one instant query (the latest value within Prometheus' lookback before `at`)."""
        params = {"query": promql, "time": f"{at:.3f}"}
        return await self._query(name, "query", params, responses.parse_vector)

    async def _query(
        self,
        name: queries.QueryName,
        endpoint: str,
        params: dict[str, str],
        parse: Callable[..., list[responses.Matrix]],
    ) -> list[responses.Matrix]:
        async with self._slots:
            try:
                async with self.session.post(
                    f"{self.base}/api/v1/{endpoint}",
                    data=params,
                    headers=self._headers,
                    allow_redirects=False,
                ) as response:
                    body = await self._read_bounded(response)
                    code = response.status
            except (aiohttp.ClientError, OSError) as e:
                self._count(name, 0)
                raise PrometheusError(
                    f"Prometheus unreachable at {self.base}: {type(e).__name__}: {e}"[:300]
                ) from e
        self._count(name, code)
        try:
            document: Any = json.loads(body)
        except ValueError:
            document = None
        if code >= 300:
            detail = ""
            if isinstance(document, dict):
                detail = f": {document.get('errorType', '')} {str(document.get('error', ''))[:200]}".rstrip()
            raise PrometheusError(f"Prometheus answered {code} to the {name} query{detail}")
        if document is None:
            raise PrometheusError(f"Prometheus sent no JSON to the {name} query")
        try:
            return parse(document, max_series=self.config.max_series)
        except responses.BadResponse as e:
            raise PrometheusError(f"unusable answer to the {name} query: {e}") from e

    async def _read_bounded(self, response: aiohttp.ClientResponse) -> bytes:
        limit = self.config.max_response_bytes
        chunks = []
        size = 0
        async for chunk in response.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > limit:
                raise PrometheusError(f"Prometheus' answer is larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def read_workload(
        self,
        *,
        namespace: str,
        kind: str,
        name: str,
        container: str | None = None,
        now: float,
        limit_bytes: int | None = None,
    ) -> analyses.WorkloadHistory:
        """The workload's history over the configured lookback ending `now`; problems are in `.problem`."""
        try:
            pods = queries.pod_regex(kind=kind, name=name)
            rendered = {
                q: queries.render(template, namespace=namespace, pods=pods, container=container)
                for q, template in self._templates().items()
            }
        except queries.BadName as e:
            return analyses.WorkloadHistory(series=[], problem=f"cannot query Prometheus: {e}")
        window = queries.window(self.config, now=now)
        # The limit and RSS only matter at the end of the window: an instant query each, a fraction of the
        # work of a range query; the working set and the restart counter are read as series.
        tasks = {
            q: asyncio.ensure_future(
                self.query_instant(q, promql, at=window.end)
                if q in _LATEST_ONLY
                else self.query_range(q, promql, window=window)
            )
            for q, promql in rendered.items()
        }
        try:
            async with asyncio.timeout(self.config.timeout_seconds):
                await asyncio.wait(tasks.values())
        except TimeoutError:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
            for q, task in tasks.items():
                if task.cancelled():
                    self._count(q, 0)
            return analyses.WorkloadHistory(
                series=[],
                problem=f"Prometheus did not answer within {self.config.timeout_seconds:g} s",
            )
        finally:
            for task in tasks.values():
                if not task.done():
                    task.cancel()
        results: dict[queries.QueryName, list[responses.Matrix]] = {}
        notes = []
        for q, task in tasks.items():
            error = task.exception()
            if error is None:
                results[q] = task.result()
                continue
            if not isinstance(error, PrometheusError):
                raise error
            if q is queries.QueryName.WORKING_SET:
                return analyses.WorkloadHistory(series=[], problem=str(error))
            notes.append(f"{q} not read: {error}")
        if queries.QueryName.RESTARTS in rendered and not results.get(queries.QueryName.RESTARTS):
            notes.append("no restart counter: lifetimes are split where memory drops by more than half")
        return responses.assemble(
            working_set=results.get(queries.QueryName.WORKING_SET, []),
            limits=results.get(queries.QueryName.LIMIT, []),
            restarts=results.get(queries.QueryName.RESTARTS, []),
            rss=results.get(queries.QueryName.RSS, []),
            step_seconds=window.step,
            limit_bytes=limit_bytes,
            notes=notes,
        )

    def _templates(self) -> dict[queries.QueryName, str]:
        q = self.config.queries
        out = {queries.QueryName.WORKING_SET: q.working_set}
        for name, template in (
            (queries.QueryName.RSS, q.rss),
            (queries.QueryName.LIMIT, q.limit),
            (queries.QueryName.RESTARTS, q.restarts),
        ):
            if template:
                out[name] = template
        return out


async def investigate(
    reader: Reader,
    *,
    namespace: str,
    kind: str,
    name: str,
    container: str | None = None,
    now: float,
    limit_bytes: int | None = None,
) -> analyses.Analysis:
    """Read the workload's history and name its pattern; counted and timed in the reader's metrics."""
    started = time.perf_counter()
    history = await reader.read_workload(
        namespace=namespace, kind=kind, name=name, container=container, now=now, limit_bytes=limit_bytes
    )
    # A few milliseconds of numpy per container series: off the event loop, so webhooks keep being answered.
    result = await asyncio.to_thread(
        analysing.analyse, history, restart_interval_seconds=reader.config.restart_interval_seconds
    )
    if reader.metrics is not None:
        reader.metrics.analyses.labels(pattern=result.pattern.value).inc()
        reader.metrics.analysis_duration.observe(time.perf_counter() - started)
    logger.info(
        "memory history of %s/%s %s: %s",
        namespace,
        name,
        result.pattern.value,
        result.reason,
        extra={"pattern": result.pattern.value, "time_to_oom_seconds": result.time_to_oom_seconds},
    )
    return result
