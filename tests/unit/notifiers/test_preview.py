"""docs/slack-preview.html is what docs/render_slack_preview.py renders from the real renderer today.

Aspects covered:
* the committed preview is not stale (re-render and compare);
* every case in it is a message the Slack stand-in accepts.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from tests.slackstub import server

ROOT = Path(__file__).resolve().parents[3]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "render_slack_preview", ROOT / "docs" / "render_slack_preview.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_preview_matches_the_renderer() -> None:
    committed = (ROOT / "docs" / "slack-preview.html").read_text(encoding="utf-8")
    assert _script().render_html() == committed, "run: python docs/render_slack_preview.py"


def test_every_previewed_message_is_accepted_by_slack_checks() -> None:
    for _title, message, replies in _script().cases():
        assert server.validate_blocks(message.blocks) == []
        for _label, reply in replies:
            assert server.validate_blocks(reply.blocks) == []
