"""Tests of the notifier edges (Slack, JSON webhooks) and their fan-out."""
