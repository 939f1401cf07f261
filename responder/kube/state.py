"""The cluster-wide guardrail state object: one ConfigMap in the service's namespace, updated by compare-and-swap.

Stage: kube edge. Every replica reads and writes the same object; each write carries the `resourceVersion` it
read, so the API server (etcd) accepts exactly one of two racing writers and the other re-reads and re-computes
(409 → retry). That is what makes the global budget hold in total across replicas, and what lets exactly one
replica observe each breaker transition, so that the breaker notification goes out once.

Within one process the updates are serialized by one lock and each starts from the state and resourceVersion
this process last read or wrote (a PUT's answer carries the new resourceVersion), so sibling tasks never
race each other and an update costs one PUT; only another replica's write makes it fail (409), and only then
is the object read again. Waiting reservations (a write already planned and pre-checked) and pause switches
go before waiting blast-radius counts, so that a burst of new alerts does not hold back the mitigations that
were under way before it. A result computed from the remembered state is handed back only when a write
proved that state current; when no write is needed, it is recomputed on a fresh read.

Every change is computed by a pure function of `responder.logic.budgeting`; this module only runs the
read-compute-write loop. It decides nothing itself, never notifies and never touches workloads.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import os
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

from responder.kube import client, errors
from responder.logic import budgeting
from responder.models import cluster_state, decisions, settings, targets

__all__ = [
    "LABELS",
    "SERVICE_ACCOUNT_NAMESPACE_FILE",
    "StateConflict",
    "StateStore",
    "own_namespace",
    "state_namespace",
]

_Result = TypeVar("_Result")

LABELS = {"app.kubernetes.io/name": "oom-responder", "app.kubernetes.io/component": "guardrail-state"}

_CONFLICT_BACKOFF_SECONDS = 0.05
"""First backoff after losing a compare-and-swap race; jittered and doubled up to `_MAX_BACKOFF_SECONDS`, so
that replicas racing in a storm spread out instead of colliding again in lockstep."""
_MAX_BACKOFF_SECONDS = 1.0


class _Turns:
    """One holder at a time (an asyncio lock); waiting urgent callers are served before ordinary ones."""

    def __init__(self) -> None:
        self._held = False
        self._waiting: dict[bool, collections.deque[asyncio.Future[None]]] = {
            True: collections.deque(),
            False: collections.deque(),
        }

    @contextlib.asynccontextmanager
    async def turn(self, *, urgent: bool) -> AsyncIterator[None]:
        if self._held:
            granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting[urgent].append(granted)
            try:
                await granted
            except BaseException:
                if granted.done() and not granted.cancelled():
                    self._pass_on()  # handed the turn while being cancelled: hand it on
                else:
                    granted.cancel()  # skipped by `_pass_on`
                raise
        else:
            self._held = True
        try:
            yield
        finally:
            self._pass_on()

    def _pass_on(self) -> None:
        for urgent in (True, False):
            queue = self._waiting[urgent]
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # the turn passes to it: still held
                    return
        self._held = False


class StateConflict(errors.KubeConflict):
    """The state object kept changing under us for every attempt; the caller must not write."""


SERVICE_ACCOUNT_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def own_namespace(config: settings.Settings, *, namespace_file: Path = SERVICE_ACCOUNT_NAMESPACE_FILE) -> str:
    """The service's own namespace: `kubernetes.own_namespace`, else $POD_NAMESPACE, else the pod's
    service-account namespace file, else "default"."""
    if config.kubernetes.own_namespace:
        return config.kubernetes.own_namespace
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        found = namespace_file.read_text(encoding="utf-8").strip()
    except OSError:
        found = ""
    return found or "default"


def state_namespace(config: settings.Settings, *, own_namespace: str) -> str:
    """Where the state object lives: `guardrails.state_namespace`, else the service's own namespace."""
    return config.guardrails.state_namespace or own_namespace


class StateStore:
    """Reads and compare-and-swaps the state ConfigMap. One per process; safe for concurrent tasks.

    Requests go through `client.Kube`, so they are throttled, counted, timed out and retried like all others.
    """

    def __init__(
        self,
        kube: client.Kube,
        *,
        namespace: str,
        settings: settings.Settings,
        name: str | None = None,
        max_conflicts: int = 100,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name or settings.guardrails.state_name
        self.settings = settings
        self._max_conflicts = max_conflicts
        self._turns = _Turns()
        self._pending: dict[
            bool, list[tuple[Callable[[cluster_state.ClusterState], tuple[Any, Any]], asyncio.Future[Any]]]
        ] = {
            True: [],
            False: [],
        }
        """Updates waiting for a turn, by urgency: whoever gets the turn commits them all."""
        self._known: tuple[cluster_state.ClusterState, str | None] | None = None
        """The state and resourceVersion this process last read or wrote (None: nothing known)."""

    @property
    def _collection(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/configmaps"

    # --- raw access -----------------------------------------------------------------------------------------

    async def _read_raw(self) -> tuple[cluster_state.ClusterState, str | None]:
        """The state and the resourceVersion it was read at (None: the object does not exist yet)."""
        try:
            configmap = await self.kube.get(f"{self._collection}/{self.name}")
        except errors.KubeNotFound:
            self._known = (cluster_state.ClusterState(), None)
            return self._known
        data = configmap.get("data") or {}
        state = cluster_state.ClusterState.from_json(data.get(cluster_state.DATA_KEY))
        self._known = (state, (configmap.get("metadata") or {}).get("resourceVersion"))
        return self._known

    async def _write(self, state: cluster_state.ClusterState, resource_version: str | None) -> str | None:
        """Create (when it did not exist) or replace at exactly `resource_version`; KubeConflict otherwise.

        Returns the resourceVersion the write produced (None if the answer did not say)."""
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace, "labels": LABELS}
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata,
            "data": {cluster_state.DATA_KEY: state.to_json()},
        }
        if resource_version is None:
            # A second replica creating it at the same time gets 409 AlreadyExists and re-reads.
            answer = await self.kube.create(self._collection, body)
        else:
            # The precondition: the API server refuses the PUT with 409 if anyone wrote since our read.
            metadata["resourceVersion"] = resource_version
            answer = await self.kube.request(
                "PUT", f"{self._collection}/{self.name}", body=body, verb="update"
            )
        written = (answer.get("metadata") or {}).get("resourceVersion")
        return str(written) if written else None

    async def update(
        self,
        change: Callable[[cluster_state.ClusterState], tuple[cluster_state.ClusterState | None, _Result]],
        *,
        urgent: bool = False,
    ) -> _Result:
        """Compare-and-swap: compute with `change`, write at the known resourceVersion; on 409 re-read, retry.

        `change` returns the new state (None or the same state: nothing to write) and a result handed back
        to the caller only from an attempt whose state is proven current: its write won, or nothing was to
        be written on a fresh read. Raises StateConflict after `max_conflicts` lost races, and KubeError for
        other failures; the caller must then not mutate the cluster. Updates of this process run one at a
        time; `urgent` ones go before those waiting that are not.

        Group commit of urgent updates: the urgent update that gets the turn also applies every urgent update
        waiting behind it, in order, each to the state the previous one left, and writes the result once;
        every caller gets its own result from that one proven write. In a storm this turns a budget PUT per
        mitigation into one per turn, and the API budget goes to mitigations instead.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        entry = (change, future)
        self._pending[urgent].append(entry)
        try:
            async with self._turns.turn(urgent=urgent):
                if not future.done():
                    # Only urgent updates (reservations, returned tokens, the pause switch) are committed
                    # together: blast-radius counts stay one write each, so that the reservations waiting
                    # behind them still go first and the first workloads of a burst are answered before the
                    # breaker has counted the whole burst.
                    batch = list(self._pending[True]) if urgent else [entry]
                    if urgent:
                        self._pending[True].clear()
                    else:
                        self._pending[False].remove(entry)
                    await self._commit([e for e in batch if not e[1].done()], own=future)
        except BaseException:
            if not future.done():
                future.cancel()  # still waiting: the next batch leaves it out
            with contextlib.suppress(ValueError):
                self._pending[urgent].remove(entry)
            raise
        result: _Result = future.result()
        return result

    async def _commit(
        self,
        batch: list[tuple[Callable[[cluster_state.ClusterState], tuple[Any, Any]], asyncio.Future[Any]]],
        *,
        own: asyncio.Future[Any],
    ) -> None:
        def apply(
            state: cluster_state.ClusterState, resource_version: str | None
        ) -> tuple[cluster_state.ClusterState | None, list[Any]]:
            """The state after every change (None: nothing to write) and each change's result."""
            results = []
            current, write = state, False
            for change, _ in batch:
                new_state, result = change(current)
                results.append(result)
                if new_state is not None and (new_state != current or resource_version is None):
                    current, write = new_state, True
            return (current if write else None), results

        def hand_back(results: list[Any]) -> None:
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

        try:
            backoff = _CONFLICT_BACKOFF_SECONDS
            for _ in range(self._max_conflicts):
                fresh = self._known is None
                state, resource_version = self._known if self._known is not None else await self._read_raw()
                new_state, results = apply(state, resource_version)
                if new_state is None:
                    if fresh:
                        hand_back(results)
                        return
                    # Decided on what this process last saw, without a write to prove it current: another
                    # replica may have changed it since (a resume, a returned token). Decide again on a read.
                    state, resource_version = await self._read_raw()
                    new_state, results = apply(state, resource_version)
                    if new_state is None:
                        hand_back(results)
                        return
                try:
                    written = await self._write(new_state, resource_version)
                except errors.KubeConflict:
                    # Another replica wrote since: forget what we knew, back off, re-read.
                    self._known = None
                    await asyncio.sleep(random.uniform(0, backoff))
                    backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
                    continue
                except BaseException:
                    # Unknown whether the write happened (a timeout, a cancellation): read before the next one.
                    self._known = None
                    raise
                self._known = (new_state, written) if written is not None else None
                hand_back(results)
                return
            raise StateConflict(
                f"state object {self.namespace}/{self.name} changed under every one of {self._max_conflicts} "
                "attempts",
                status=409,
            )
        except BaseException as e:
            # Every other caller of the batch fails the same way (a cancellation of this one is, to them, an
            # interrupted write whose outcome is unknown).
            shared = (
                errors.KubeUnavailable("the state update was interrupted")
                if isinstance(e, asyncio.CancelledError)
                else e
            )
            for _, future in batch:
                if future is not own and not future.done():
                    future.set_exception(shared)
            raise

    # --- what the engine and the commands call ----------------------------------------------------------------

    async def read(self) -> cluster_state.ClusterState:
        """The current state (a fresh one when the object does not exist yet)."""
        state, _ = await self._read_raw()
        return state

    def last_known(self) -> cluster_state.ClusterState | None:
        """The state this process last read or wrote, without a request (None: nothing known yet).

        Possibly stale by another replica's write: good for a first check whose allowing answer is
        re-checked under compare-and-swap (`reserve`), not for refusing on its own.
        """
        return self._known[0] if self._known is not None else None

    async def note_alerting(
        self, target: targets.Target, *, now: datetime.datetime
    ) -> tuple[cluster_state.ClusterState, cluster_state.BreakerTransition | None]:
        """Count `target` in the blast-radius window; returns the new state and the breaker's transition.

        A transition is returned to exactly one caller across all replicas (the one whose write made it), so
        announcing it on that return sends the breaker notification once.
        """

        def change(
            state: cluster_state.ClusterState,
        ) -> tuple[
            cluster_state.ClusterState,
            tuple[cluster_state.ClusterState, cluster_state.BreakerTransition | None],
        ]:
            new_state, transition = budgeting.note_workload(
                state, key=target.key, now=now, settings=self.settings
            )
            return new_state, (new_state, transition)

        return await self.update(change)

    async def reserve(self, *, now: datetime.datetime) -> decisions.Decision:
        """Right before a write: re-check pause and breaker on the freshest state and take one budget token.

        Allowed means the token is spent and the write may go ahead; if it then does not happen (409 on the
        workload: another replica acted first), call `return_budget`.
        """

        def change(
            state: cluster_state.ClusterState,
        ) -> tuple[cluster_state.ClusterState | None, decisions.Decision]:
            return budgeting.reserve(state, now=now, settings=self.settings)

        return await self.update(change, urgent=True)

    async def count_and_reserve(
        self, target: targets.Target, *, now: datetime.datetime
    ) -> tuple[decisions.Decision, cluster_state.BreakerTransition | None]:
        """`note_alerting` and `reserve` in one write, at the reservation's turn: a mitigation's blast-radius
        count rides on its reservation (group-committed with the others waiting), instead of a write of its
        own. Returns the reservation's decision and the breaker's transition (told to one caller only)."""

        def change(
            state: cluster_state.ClusterState,
        ) -> tuple[
            cluster_state.ClusterState,
            tuple[decisions.Decision, cluster_state.BreakerTransition | None],
        ]:
            new_state, decision, transition = budgeting.count_and_reserve(
                state, key=target.key, now=now, settings=self.settings
            )
            return new_state, (decision, transition)

        return await self.update(change, urgent=True)

    async def reserve_budget(self, *, now: datetime.datetime) -> bool:
        """`reserve` as a yes/no."""
        return (await self.reserve(now=now)).allowed

    async def return_budget(self, *, now: datetime.datetime) -> None:
        """Give back a token whose write did not happen."""

        def change(state: cluster_state.ClusterState) -> tuple[cluster_state.ClusterState, None]:
            return budgeting.return_token(state, now=now, settings=self.settings), None

        await self.update(change, urgent=True)

    async def set_paused(
        self, paused: bool, *, by: str, now: datetime.datetime
    ) -> cluster_state.ClusterState:
        """Flip the pause switch (resuming also closes the breaker); returns the stored state."""

        def change(
            state: cluster_state.ClusterState,
        ) -> tuple[cluster_state.ClusterState, cluster_state.ClusterState]:
            new_state = budgeting.set_paused(state, paused=paused, by=by, now=now)
            return new_state, new_state

        return await self.update(change, urgent=True)

    async def resume(self, *, by: str, now: datetime.datetime) -> cluster_state.ClusterState:
        """Unpause and close the breaker."""
        return await self.set_paused(False, by=by, now=now)
