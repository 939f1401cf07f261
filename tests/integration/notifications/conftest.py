"""Fixtures for notification tests on the real control plane: the Slack stand-in, metrics, fake time."""

from tests.slackstub.fixtures import fake_time, metrics, slack

__all__ = ["fake_time", "metrics", "slack"]
