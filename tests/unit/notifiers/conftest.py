"""Fixtures for notifier tests: the local Slack stand-in, a fresh metrics registry, injected time."""

from tests.slackstub.fixtures import fake_time, metrics, slack

__all__ = ["fake_time", "metrics", "slack"]
