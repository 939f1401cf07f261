"""Notifier edges: Slack and generic JSON webhooks."""
