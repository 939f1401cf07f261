"""Loading the configuration file and reading secrets.

The edge between the file system and `responder.models.settings`: YAML in, a validated `Settings` out, or a
`ConfigError` listing every problem with its key path. It must not start anything or talk to the network.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pydantic
import yaml

from responder.models import settings

__all__ = [
    "CONFIG_ENV",
    "ConfigError",
    "SecretError",
    "SecretFile",
    "describe_errors",
    "format_location",
    "load_for_command",
    "load_settings",
    "parse_settings",
    "prometheus_authorization",
    "read_secret",
]

logger = logging.getLogger(__name__)

CONFIG_ENV = "OOM_RESPONDER_CONFIG"
"""Environment variable naming the config file when `--config` is not given."""


class ConfigError(Exception):
    """The configuration cannot be used; `problems` holds one line per problem, each naming its key path."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


class SecretError(Exception):
    """A secret the configuration requires is missing or unreadable."""


def format_location(loc: Sequence[int | str]) -> str:
    """Render a pydantic error location as a key path: `playbooks[1].actions[0].raise_memory.ratio`."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "[key]":
            # pydantic marks a bad mapping key with a trailing "[key]"; the key itself is the part before.
            path += " (key)"
        elif path:
            path += f".{part}"
        else:
            path = part
    return path or "(top level)"


def _message(error: Mapping[str, object]) -> str:
    message = str(error.get("msg", "invalid"))
    # pydantic prefixes messages of our own validators; the key path already says where, the prefix adds nothing.
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def describe_errors(error: pydantic.ValidationError) -> list[str]:
    """One `path: message` line per validation problem, in the order pydantic found them."""
    lines: list[str] = []
    for item in error.errors(include_url=False):
        loc = list(item["loc"])
        # A validator of a tagged model may report its own class in the location; the file knows no such key.
        lines.append(f"{format_location(loc)}: {_message(item)}")
    return lines


def parse_settings(data: object, *, source: str = "config") -> settings.Settings:
    """Validate already-parsed YAML/JSON data. An empty document means every default."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: the top level must be a mapping of keys, not {type(data).__name__}"])
    try:
        return settings.Settings.model_validate(data)
    except pydantic.ValidationError as e:
        raise ConfigError(describe_errors(e)) from e


def load_settings(path: str | os.PathLike[str] | None) -> settings.Settings:
    """Read and validate a YAML file; None means no file: the defaults."""
    if path is None:
        return settings.Settings()
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ConfigError([f"{file}: no such file"]) from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([f"{file}: cannot read: {e}"]) from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = ""
        mark = getattr(e, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError([f"{file}: not valid YAML{where}: {problem}"]) from e
    return parse_settings(data, source=str(file))


def load_for_command(path: str | None) -> settings.Settings | None:
    """Settings for a CLI command: `path`, else $OOM_RESPONDER_CONFIG, else the defaults.

    On problems, prints one `config: key.path: message` line each to stderr and returns None: the command
    then exits 2.
    """
    try:
        return load_settings(path or os.environ.get(CONFIG_ENV))
    except ConfigError as e:
        for problem in e.problems:
            print(f"config: {problem}", file=sys.stderr)
        return None


def read_secret(*, file: str | None, env: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """A secret from a file (a mounted Secret; wins) or an environment variable; None when neither is set.

    Trailing whitespace is dropped: files written with `echo` end in a newline that is not part of the token.
    """
    environ = os.environ if environ is None else environ
    if file:
        try:
            value = Path(file).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise SecretError(f"cannot read secret file {file}: {e.strerror or e}") from e
        if not value:
            raise SecretError(f"secret file {file} is empty")
        return value
    if env:
        value = environ.get(env, "").strip()
        return value or None
    return None


def prometheus_authorization(
    config: settings.PrometheusSettings, *, environ: Mapping[str, str] | None = None
) -> str | None:
    """The Authorization header for Prometheus: basic when a user name is set, else a bearer token, else none."""
    if config.basic_username:
        password = read_secret(
            file=config.basic_password_file, env=config.basic_password_env, environ=environ
        )
        raw = f"{config.basic_username}:{password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")
    token = read_secret(file=config.bearer_token_file, env=config.bearer_token_env, environ=environ)
    return f"Bearer {token}" if token else None


class SecretFile:
    """A secret kept in a file that may be replaced while the service runs (a mounted Secret: the kubelet
    swaps the files when the Secret changes), so rotation needs no restart.

    `current()` looks at the file at most every `check_seconds` and reads it again when its modification time
    changed. A re-read that fails or finds the file empty keeps the last value (the kubelet's swap is atomic,
    so such a failure is passing); the first read must succeed (`SecretError`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        check_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.check_seconds = check_seconds
        self._clock = clock
        self._checked_at = clock()
        self._mtime_ns = self._stat()
        value = read_secret(file=str(self.path), env=None)
        assert value is not None  # read_secret raises for an unreadable or empty file
        self._value = value

    def _stat(self) -> int:
        try:
            return self.path.stat().st_mtime_ns
        except OSError:
            return -1

    def current(self) -> str:
        now = self._clock()
        if now - self._checked_at < self.check_seconds:
            return self._value
        self._checked_at = now
        mtime_ns = self._stat()
        if mtime_ns == self._mtime_ns or mtime_ns < 0:
            return self._value
        with contextlib.suppress(SecretError):
            value = read_secret(file=str(self.path), env=None)
            if value is not None:
                self._mtime_ns = mtime_ns
                if value != self._value:
                    logger.info("secret file changed: using the new value", extra={"path": str(self.path)})
                self._value = value
        return self._value
