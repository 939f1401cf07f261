"""Shared pytest configuration for all tests."""

pytest_plugins = ["tests.kubeplane.plugin", "tests.promstack.plugin"]
