"""Reading kubeconfig files and merging several of them as kubectl does.

Stage: kube edge (reads files, opens no connection, decides nothing about incidents). `read` takes the files
of `$KUBECONFIG` (or one `--kubeconfig`-style file) and returns one `Kubeconfig`: kubectl's merge rules
(client-go `clientcmd`) apply: files that do not exist are skipped, the first file that names a cluster, user
or context wins for that name, and the first file that sets `current-context` wins. Relative file names in an
entry are relative to the directory of the file that defined the entry. The shape is checked on the way in,
so a broken file is one clear `BadKubeconfig` naming the file and the key (`contexts: 5`, an
`insecure-skip-tls-verify: "false"` string, skip-verify together with a CA), never a traceback.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "BadKubeconfig",
    "Entry",
    "Kubeconfig",
    "Selection",
    "read",
    "split_paths",
]

_LISTS = ("clusters", "users", "contexts")
_SINGULAR = {"clusters": "cluster", "users": "user", "contexts": "context"}

# Keys holding a file name, per section: client-go resolves them against the defining file's directory.
_FILE_KEYS = {
    "clusters": ("certificate-authority",),
    "users": ("client-certificate", "client-key", "tokenFile"),
}
_BOOL_KEYS = {"clusters": ("insecure-skip-tls-verify", "disable-compression")}
_STRING_KEYS = {
    "clusters": (
        "server",
        "certificate-authority",
        "certificate-authority-data",
        "tls-server-name",
        "proxy-url",
    ),
    "users": (
        "client-certificate",
        "client-certificate-data",
        "client-key",
        "client-key-data",
        "token",
        "tokenFile",
        "username",
        "password",
    ),
    "contexts": ("cluster", "user", "namespace"),
}


class BadKubeconfig(Exception):
    """A kubeconfig file that kubectl would refuse too; the message names the file and the key."""


@dataclasses.dataclass(frozen=True)
class Entry:
    """One named cluster, user or context, and the file that defined it (relative names resolve there)."""

    name: str
    fields: Mapping[str, Any]
    origin: Path

    def file(self, key: str) -> Path | None:
        """The entry's file-valued `key` as an absolute path (relative to the defining file), or None."""
        value = self.fields.get(key)
        if not value:
            return None
        return (self.origin.parent / os.path.expanduser(str(value))).resolve()


@dataclasses.dataclass(frozen=True)
class Selection:
    """The context in use and the cluster and user it names."""

    context: Entry
    cluster: Entry
    user: Entry | None

    @property
    def label(self) -> str:
        return f"kubeconfig {self.context.origin} (context {self.context.name!r})"


@dataclasses.dataclass(frozen=True)
class Kubeconfig:
    """The merge of one or more kubeconfig files."""

    sources: tuple[Path, ...]
    current_context: str | None
    clusters: Mapping[str, Entry]
    users: Mapping[str, Entry]
    contexts: Mapping[str, Entry]

    @property
    def label(self) -> str:
        return "kubeconfig " + os.pathsep.join(str(path) for path in self.sources)

    def select(self, context: str | None = None) -> Selection:
        """`context`, else the current context, with its cluster and user. Raises `BadKubeconfig`."""
        name = context or self.current_context
        if not name:
            raise BadKubeconfig(f"{self.label}: no current-context and no context configured")
        chosen = self.contexts.get(name)
        if chosen is None:
            raise BadKubeconfig(f"{self.label}: no context named {name!r}")
        cluster_name = str(chosen.fields.get("cluster") or "")
        cluster = self.clusters.get(cluster_name)
        if cluster is None:
            raise BadKubeconfig(f"{self.label}: context {name!r} names no cluster {cluster_name!r}")
        user: Entry | None = None
        user_name = str(chosen.fields.get("user") or "")
        if user_name:
            user = self.users.get(user_name)
            if user is None:
                raise BadKubeconfig(f"{self.label}: context {name!r} names no user {user_name!r}")
        return Selection(context=chosen, cluster=cluster, user=user)

    def to_dict(self) -> dict[str, Any]:
        """A single kubeconfig document of the merge, every file name made absolute: what a loader that
        reads one document (kubernetes-asyncio's) needs to see the same configuration."""

        def section(kind: str, entries: Mapping[str, Entry]) -> list[dict[str, Any]]:
            rows = []
            for entry in entries.values():
                fields = dict(entry.fields)
                for key in _FILE_KEYS.get(kind, ()):
                    path = entry.file(key)
                    if path is not None:
                        fields[key] = str(path)
                plugin = fields.get("exec")
                if kind == "users" and isinstance(plugin, dict):
                    # client-go runs a relative command that contains a slash from the kubeconfig's directory.
                    command = str(plugin.get("command") or "")
                    if "/" in command and not os.path.isabs(command):
                        fields["exec"] = {**plugin, "command": str((entry.origin.parent / command).resolve())}
                rows.append({"name": entry.name, _SINGULAR[kind]: fields})
            return rows

        document: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": section("clusters", self.clusters),
            "users": section("users", self.users),
            "contexts": section("contexts", self.contexts),
        }
        if self.current_context:
            document["current-context"] = self.current_context
        return document


def split_paths(value: str) -> list[Path]:
    """The files of a `$KUBECONFIG`-style list (os.pathsep-separated), in order, `~` expanded."""
    return [Path(os.path.expanduser(part)) for part in value.split(os.pathsep) if part]


def _check_entry(kind: str, entry: Any, index: int, path: Path) -> tuple[str, dict[str, Any]]:
    where = f"kubeconfig {path}: {kind}[{index}]"
    if not isinstance(entry, dict):
        raise BadKubeconfig(f"{where} must be a mapping with name and {_SINGULAR[kind]}")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise BadKubeconfig(f"{where}.name must be a non-empty string")
    fields = entry.get(_SINGULAR[kind])
    if fields is None:
        fields = {}
    if not isinstance(fields, dict):
        raise BadKubeconfig(f"{where} ({name!r}).{_SINGULAR[kind]} must be a mapping")
    for key in _STRING_KEYS.get(kind, ()):
        value = fields.get(key)
        if value is not None and not isinstance(value, str):
            raise BadKubeconfig(
                f"{where} ({name!r}).{key} must be a string, not {type(value).__name__} {value!r}"
            )
    for key in _BOOL_KEYS.get(kind, ()):
        value = fields.get(key)
        # kubectl fails to decode a string here ("cannot unmarshal string ... of type bool"); Python's
        # bool("false") would be True and silently turn verification off.
        if value is not None and not isinstance(value, bool):
            raise BadKubeconfig(
                f"{where} ({name!r}).{key} must be true or false (a YAML boolean), not "
                f"{type(value).__name__} {value!r}"
            )
    has_ca = fields.get("certificate-authority") or fields.get("certificate-authority-data")
    if kind == "clusters" and fields.get("insecure-skip-tls-verify") is True and has_ca:
        # client-go's validation refuses the combination rather than silently ignoring the CA.
        raise BadKubeconfig(
            f"{where} ({name!r}): specifying a root certificates file with the insecure flag is "
            "not allowed (set either insecure-skip-tls-verify or certificate-authority[-data])"
        )
    if kind == "users":
        for plugin in ("exec", "auth-provider"):
            value = fields.get(plugin)
            if value is not None and not isinstance(value, dict):
                raise BadKubeconfig(f"{where} ({name!r}).{plugin} must be a mapping")
    return name, fields


def _read_one(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise BadKubeconfig(f"kubeconfig {path}: {e}") from e
    if document is None:
        return {}  # an empty file is an empty config, as for kubectl
    if not isinstance(document, dict):
        raise BadKubeconfig(f"kubeconfig {path}: not a kubeconfig (no mapping at the top)")
    return document


def read(paths: Sequence[Path]) -> Kubeconfig:
    """Read and merge `paths` (in order) as kubectl does. Files that do not exist are skipped; raises
    `FileNotFoundError` when none exists and `BadKubeconfig` for a file kubectl would refuse."""
    existing = [path for path in paths if path.exists()]
    if not existing:
        raise FileNotFoundError(", ".join(str(path) for path in paths) or "no kubeconfig file given")
    merged: dict[str, dict[str, Entry]] = {kind: {} for kind in _LISTS}
    current: str | None = None
    for path in existing:
        document = _read_one(path)
        for kind in _LISTS:
            entries = document.get(kind)
            if entries is None:
                continue
            if not isinstance(entries, list):
                raise BadKubeconfig(
                    f"kubeconfig {path}: {kind} must be a list of named entries, not "
                    f"{type(entries).__name__} {str(entries)[:40]}"
                )
            for index, entry in enumerate(entries):
                name, fields = _check_entry(kind, entry, index, path)
                # The first file to set a name wins (clientcmd's merge); later files only add names.
                merged[kind].setdefault(name, Entry(name=name, fields=fields, origin=path))
        value = document.get("current-context")
        if value is not None and not isinstance(value, str):
            raise BadKubeconfig(f"kubeconfig {path}: current-context must be a string")
        if current is None and value:
            current = value
    return Kubeconfig(
        sources=tuple(existing),
        current_context=current,
        clusters=merged["clusters"],
        users=merged["users"],
        contexts=merged["contexts"],
    )
