"""Render docs/slack-preview.html: what arrives in Slack for each alert kind and outcome.

The messages come from the real renderer (`responder.notifiers.blocks`) fed with the sample notices the tests
use (`tests/slackstub/samples.py`); this script only draws the Block Kit JSON the way Slack's client shows it
(a subset: header, section text and fields, context, buttons; mrkdwn bold, code, quotes, links, emoji).
Follow-ups are drawn inside the thread of the incident's first message, as they are posted.

Run from the repository root:  python docs/render_slack_preview.py [--png]
(--png also writes docs/slack-preview.png with a headless Chromium, when one is installed.)
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dataclasses  # noqa: E402 - after the path set-up above

from responder.logic import analysing  # noqa: E402 - after the path set-up above
from responder.models import analyses, targets  # noqa: E402 - after the path set-up above
from responder.notifiers import blocks  # noqa: E402 - after the path set-up above
from tests.slackstub import samples  # noqa: E402 - after the path set-up above

EMOJI = {
    "red_circle": "🔴",
    "large_orange_circle": "🟠",
    "large_blue_circle": "🔵",
    "wrench": "🔧",
    "no_entry": "⛔",
    "mag": "🔍",
    "repeat": "🔁",
    "white_check_mark": "✅",
    "rotating_light": "🚨",
    "octagonal_sign": "🛑",
    "x": "❌",
    "test_tube": "🧪",
    "hourglass_flowing_sand": "⏳",
    "cyclone": "🌀",
    "calendar": "📅",
    "chart_with_upwards_trend": "📈",
    "mute": "🔇",
}

STYLE = """
body { font-family: -apple-system, 'Segoe UI', Lato, Helvetica, Arial, sans-serif; background: #f4f4f4;
       margin: 0; padding: 24px; color: #1d1c1d; }
h1 { font-size: 20px; } p.lead { max-width: 860px; color: #444; }
.case { background: #fff; border: 1px solid #ddd; border-radius: 8px; margin: 20px 0; max-width: 860px; }
.case > h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .05em; color: #616061;
             margin: 0; padding: 10px 16px; border-bottom: 1px solid #eee; }
.msg { display: flex; padding: 12px 16px; }
.avatar { width: 36px; height: 36px; border-radius: 6px; background: #4a154b; color: #fff; font-weight: bold;
          display: flex; align-items: center; justify-content: center; margin-right: 10px; flex: none; }
.who { font-weight: 900; font-size: 15px; } .who span { font-weight: normal; color: #616061; font-size: 12px; }
.app { background: #e8e8e8; color: #616061; font-size: 10px; padding: 1px 3px; border-radius: 2px; }
.header { font-size: 18px; font-weight: 900; margin: 6px 0 4px; }
.section { font-size: 15px; line-height: 1.47; margin: 6px 0; white-space: pre-wrap; }
.fields { display: grid; grid-template-columns: 1fr 1fr; gap: 8px 24px; margin: 8px 0; font-size: 15px; }
.fields div { white-space: pre-wrap; }
.context { font-size: 12px; color: #616061; margin: 6px 0; }
.actions button { border: 1px solid #ccc; background: #fff; border-radius: 4px; padding: 4px 12px;
                  font-weight: bold; margin: 6px 8px 0 0; font-size: 13px; }
code { background: #f6f6f6; border: 1px solid #e1e1e1; border-radius: 3px; padding: 0 3px; color: #c01343;
       font-size: 12px; }
blockquote { border-left: 4px solid #ddd; margin: 2px 0; padding-left: 10px; }
a { color: #1264a3; text-decoration: none; }
.thread { margin: 0 16px 12px 62px; border-left: 2px solid #e0e0e0; padding-left: 8px; }
.thread .label { font-size: 12px; color: #1264a3; font-weight: bold; margin: 4px 0 0 16px; }
.broadcast { font-size: 12px; color: #616061; margin-left: 16px; }
"""


def mrkdwn(text: str) -> str:
    """Slack's mrkdwn (the subset the renderer writes) as HTML; `text` is already mrkdwn-escaped."""
    # Code blocks first: nothing inside them is formatted (Slack shows them verbatim, monospaced).
    blocks_found: list[str] = []

    def keep(match: re.Match[str]) -> str:
        blocks_found.append(match.group(1))
        return f"\x00{len(blocks_found) - 1}\x00"

    out = re.sub(r"```\n?(.*?)\n?```", keep, text, flags=re.DOTALL)
    out = re.sub(r"<!date\^\d+\^[^|>]*\|([^>]*)>", r"\1", out)
    out = re.sub(r"<(https?://[^|>]+)\|([^>]+)>", r'<a href="\1">\2</a>', out)
    out = re.sub(r":([a-z_]+):", lambda m: EMOJI.get(m.group(1), m.group(0)), out)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*([^*\n]+)\*", r"<b>\1</b>", out)
    lines = []
    for line in out.split("\n"):
        lines.append(f"<blockquote>{line[1:]}</blockquote>" if line.startswith(">") else line)
    joined = "\n".join(lines)
    return re.sub(r"\x00(\d+)\x00", lambda m: f"<pre>{blocks_found[int(m.group(1))]}</pre>", joined)


def plain(text: str) -> str:
    return re.sub(r":([a-z_]+):", lambda m: EMOJI.get(m.group(1), m.group(0)), html.escape(text))


def draw_blocks(message_blocks: list[dict[str, Any]]) -> str:
    parts: list[str] = []
    for block in message_blocks:
        kind = block["type"]
        if kind == "header":
            parts.append(f'<div class="header">{plain(block["text"]["text"])}</div>')
        elif kind == "section":
            if "text" in block:
                parts.append(f'<div class="section">{mrkdwn(block["text"]["text"])}</div>')
            if "fields" in block:
                cells = "".join(f"<div>{mrkdwn(field['text'])}</div>" for field in block["fields"])
                parts.append(f'<div class="fields">{cells}</div>')
        elif kind == "context":
            texts = " ".join(mrkdwn(element["text"]) for element in block["elements"])
            parts.append(f'<div class="context">{texts}</div>')
        elif kind == "actions":
            buttons = "".join(
                f'<a href="{html.escape(element["url"])}" title="{html.escape(element["url"])}">'
                f"<button>{plain(element['text']['text'])}</button></a>"
                for element in block["elements"]
            )
            parts.append(f'<div class="actions">{buttons}</div>')
    return "".join(parts)


def draw_message(message: blocks.Message, *, time: str) -> str:
    return (
        '<div class="msg"><div class="avatar">OR</div><div>'
        f'<div class="who">oom-responder <span class="app">APP</span> <span>{time}</span></div>'
        f"{draw_blocks(message.blocks)}</div></div>"
    )


def _leak_history() -> analyses.WorkloadHistory:
    """A day of a checkout pod leaking ~6 MiB/h and OOM-killed at its 512Mi limit (fixed, for a stable page)."""
    start = 1_780_000_000.0
    times = [start + 60 * i for i in range(1441)]
    mib = 2**20
    kill = start + 14.5 * 3600
    values = []
    for i, t in enumerate(times):
        age_h = (t - (kill if t >= kill else start - 42.5 * 3600)) / 3600
        wobble = ((i * 7919) % 97) / 97 - 0.5
        values.append((150 + 6.2 * age_h + 4 * wobble) * mib)
    series = analyses.ContainerSeries(
        pod="checkout-7d9f8b6c5d-x2x4q",
        container="app",
        timestamps=times,
        values=values,
        restarts=(kill,),
        limit_bytes=512 * mib,
    )
    return analyses.WorkloadHistory(series=[series], limit_bytes=512 * mib, rss_share=0.93)


def cases() -> list[tuple[str, blocks.Message, list[tuple[str, blocks.Message]]]]:
    """(title, top-level message, [(label, reply)]) for each case shown."""
    previews = samples.previews()
    first = previews["OOMKilled: memory limit raised"]
    replies = [
        (title, blocks.render(previews[title], in_thread=True))
        for title in (
            "Silenced in Alertmanager (in the thread)",
            "Diagnostics: previous log (in the thread)",
            "Verification passed (in the thread)",
            "Resolved (in the thread)",
        )
    ]
    failing = [
        (
            "Verification failed (in the thread)",
            blocks.render(previews["Verification failed (in the thread)"], in_thread=True),
        ),
        (
            "Silence expired early (in the thread)",
            blocks.render(previews["Silence expired early (in the thread)"], in_thread=True),
        ),
    ]
    storm = [
        samples.notice(
            incident=f"storm-{i}@t",
            target=targets.Target(
                kind=targets.WorkloadKind.DEPLOYMENT, namespace=f"team-{i % 7}", name=f"api-{i}"
            ),
        )
        for i in range(23)
    ]
    after = [
        (title, blocks.render(previews[title], in_thread=True))
        for title in (
            "Verification passed (in the thread)",
            "Restarts scheduled (in the thread)",
            "1h verdict (in the thread)",
            "Scheduled restart (in the thread)",
            "6h verdict (in the thread)",
            "Schedule stopped: the fix shipped (in the thread)",
            "24h verdict (in the thread)",
            "48h verdict, incident closed (in the thread)",
        )
    ]
    analysed = dataclasses.replace(first, analysis=analysing.analyse(_leak_history()))
    return [
        (
            "OOMKilled with its memory history: a linear leak, raised once (what the raise buys)",
            blocks.render(analysed),
            [],
        ),
        (
            "OOMKilled → memory limit raised, silenced, previous log grepped, then verified and resolved (thread)",
            blocks.render(first),
            replies,
        ),
        (
            "After the mitigation: restarts until the fix ships, verdicts up to 48 h, incident closed (thread)",
            blocks.render(first),
            after,
        ),
        ("PodMemoryHigh → scaled out", blocks.render(previews["PodMemoryHigh: scaled out"]), []),
        (
            "PodRestartingFrequently → escalated to humans",
            blocks.render(previews["PodRestartingFrequently: escalated to humans"]),
            [],
        ),
        ("A guardrail blocked the mitigation", blocks.render(previews["Blocked by a guardrail"]), []),
        ("Dry run: what would be done", blocks.render(previews["Dry run"]), []),
        ("Verification failure (posted in the incident's thread, broadcast)", blocks.render(first), failing),
        (
            "A storm: 23 notices within seconds become one digest",
            blocks.render_digest(storm, window_seconds=3),
            [],
        ),
    ]


def render_html() -> str:
    body: list[str] = [
        "<h1>oom-responder in Slack: a preview</h1>",
        '<p class="lead">Rendered from <code>responder/notifiers/blocks.py</code> by '
        "<code>docs/render_slack_preview.py</code>. Each case is one Block Kit message as posted with "
        "<code>chat.postMessage</code>; follow-ups appear in the incident's thread. Buttons link to the alert's "
        "source, its runbook and a prefilled Alertmanager silence; the silence the service creates itself after a "
        "mitigation is linked in the thread.</p>",
    ]
    for title, message, replies in cases():
        body.append(f'<div class="case"><h2>{html.escape(title)}</h2>{draw_message(message, time="09:30")}')
        if replies:
            body.append(f'<div class="thread"><div class="label">{len(replies)} replies</div>')
            for label, reply in replies:
                if "failed" in label:
                    body.append('<div class="broadcast">↪ also sent to the channel</div>')
                body.append(draw_message(reply, time="09:33"))
            body.append("</div>")
        json_text = html.escape(json.dumps(message.blocks, ensure_ascii=False, indent=1))
        body.append(
            f'<details style="margin:0 16px 12px"><summary>Block Kit JSON</summary><pre>{json_text}</pre>'
            "</details></div>"
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>oom-responder Slack preview</title>'
        f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n"
    )


def _crop_trailing_background(png: Path) -> None:
    """Cut the empty page below the last case (the window is taller than the page), when Pillow is there."""
    try:
        from PIL import Image, ImageChops  # noqa: PLC0415 - optional, only for --png
    except ImportError:
        return
    with Image.open(png) as image:
        rgb = image.convert("RGB")
        background = Image.new("RGB", rgb.size, (0xF4, 0xF4, 0xF4))
        box = ImageChops.difference(rgb, background).getbbox()
        if box is not None:
            rgb.crop((0, 0, rgb.width, min(box[3] + 24, rgb.height))).save(png, optimize=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--png", action="store_true", help="also write docs/slack-preview.png (needs chromium)"
    )
    args = parser.parse_args()
    out = ROOT / "docs" / "slack-preview.html"
    out.write_text(render_html(), encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT)}")
    if args.png:
        browser = (
            shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
        )
        if browser is None:
            print("no chromium found: skipped the PNG", file=sys.stderr)
            return 1
        png = ROOT / "docs" / "slack-preview.png"
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--window-size=900,5600",
                f"--screenshot={png}",
                out.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        _crop_trailing_background(png)
        print(f"wrote {png.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
