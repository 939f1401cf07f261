"""A local stand-in for Slack (test support): see `tests.slackstub.server`."""
