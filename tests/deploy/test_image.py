"""The container image's recipe.

Aspects covered:
* hadolint finds nothing in the Dockerfile;
* it is multi-stage, the final stage runs as a numeric non-root user, and installs offline from wheels;
* constraints.txt pins every runtime dependency of pyproject.toml at a version inside its declared range;
* .dockerignore lets in exactly what the Dockerfile copies.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging import requirements, utils

from tests.deploy import tooling

DOCKERFILE = tooling.REPO / "Dockerfile"


def test_hadolint_finds_nothing(hadolint: Path) -> None:
    result = tooling.run([hadolint, "--failure-threshold", "info", DOCKERFILE])
    assert result.returncode == 0, result.stdout + result.stderr


def test_final_stage_runs_as_a_numeric_non_root_user_from_offline_wheels() -> None:
    text = DOCKERFILE.read_text()
    stages = re.split(r"(?m)^FROM ", text)[1:]
    assert len(stages) == 2, "a build stage and a final stage"
    final = stages[-1]
    (user,) = re.findall(r"(?m)^USER (\S+)$", final)
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 10000, (
        "numeric, so runAsNonRoot can be verified; high, per CKV_K8S_40"
    )
    assert "--no-index" in final, "the final stage installs only what the build stage built"
    assert "--only-binary=:all:" in stages[0], "no source distributions, so no compiler anywhere"
    assert not re.search(r"\b(gcc|build-essential|apt-get install)\b", final)


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in (tooling.REPO / "constraints.txt").read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[utils.canonicalize_name(name)] = version
    return pins


def test_constraints_pin_every_runtime_dependency_within_its_range() -> None:
    project = tomllib.loads((tooling.REPO / "pyproject.toml").read_text())["project"]
    pins = _pins()
    for spec in project["dependencies"]:
        requirement = requirements.Requirement(spec)
        name = utils.canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name]), (
            f"{name}=={pins[name]} is outside {requirement.specifier}"
        )


def test_dockerignore_admits_exactly_what_the_dockerfile_copies() -> None:
    lines = [
        line for line in (tooling.REPO / ".dockerignore").read_text().splitlines() if line and line[0] != "#"
    ]
    assert lines[0] == "*", "everything is excluded first"
    admitted = {line.removeprefix("!").rstrip("/") for line in lines if line.startswith("!")}
    copied: set[str] = set()
    for match in re.finditer(r"(?m)^COPY (?!--from)(.+)$", DOCKERFILE.read_text()):
        *sources, _destination = match.group(1).split()
        copied.update(source.rstrip("/").removeprefix("./") for source in sources)
    assert copied == admitted
