"""Site policy: `/.well-known/security.txt` (RFC 9116) from settings, and `/terms` and `/privacy` in the
dashboard's layout with the operator's own text (a file named by a setting, or found in the data folder),
else the defaults shipped with Kamiyo."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from markupsafe import Markup

from kamiyo.accounts.deps import OptionalUser
from kamiyo.api_deps import SettingsDep
from kamiyo.config import Settings
from kamiyo.errors import NotFound, Unavailable
from kamiyo.kit.timeutil import iso, utcnow
from kamiyo.web.render import TEMPLATE_DIR, render_html

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
SECURITY_TXT_DAYS = 180  # Expires: always this far ahead (RFC 9116 asks for less than a year)


@dataclass(frozen=True)
class Block:
    kind: str  # "h2", "h3", "p" or "ul"
    lines: tuple[str, ...]


def security_txt(settings: Settings) -> str | None:
    contacts = [c.strip() for c in (settings.security_contact or "").split(",") if c.strip()]
    if not contacts:
        return None
    lines = [f"Contact: {c if ':' in c else 'mailto:' + c}" for c in contacts]
    expires = (utcnow() + timedelta(days=SECURITY_TXT_DAYS)).replace(hour=0, minute=0, second=0, microsecond=0)
    lines += [
        f"Expires: {iso(expires)}",
        f"Preferred-Languages: {settings.security_languages}",
        f"Canonical: {settings.public_url.rstrip('/')}/.well-known/security.txt",
    ]
    return "\n".join(lines) + "\n"


@router.get("/.well-known/security.txt")
async def security(settings: SettingsDep) -> Response:
    body = security_txt(settings)
    if body is None:
        raise NotFound("no security contact is configured on this server (KAMIYO_SECURITY_CONTACT)")
    return PlainTextResponse(body, headers={"Cache-Control": "public, max-age=86400"})


def text_blocks(text: str) -> list[Block]:
    """Plain text as blocks: `# ` and `## ` lines are headings, a run of `- ` lines a list, the rest paragraphs."""
    blocks: list[Block] = []
    for chunk in text.replace("\r\n", "\n").split("\n\n"):
        lines = [line.strip() for line in chunk.strip().split("\n") if line.strip()]
        if not lines:
            continue
        if lines[0].startswith("## "):
            blocks.append(Block("h3", (lines.pop(0)[3:],)))
        elif lines[0].startswith("# "):
            blocks.append(Block("h2", (lines.pop(0)[2:],)))
        if lines and all(line.startswith("- ") for line in lines):
            blocks.append(Block("ul", tuple(line[2:] for line in lines)))
        elif lines:
            blocks.append(Block("p", (" ".join(lines),)))
    return blocks


def policy_file(settings: Settings, name: str, configured: Path | None) -> Path | None:
    """The operator's file: the setting, else `<name>.html` or `<name>.txt` in the data folder, else None."""
    if configured is not None:
        return configured
    for suffix in (".html", ".txt"):
        found = settings.data_dir / f"{name}{suffix}"
        if found.is_file():
            return found
    return None


async def policy_page(request: Request, settings: Settings, user: object, name: str, title: str) -> Response:
    configured = settings.terms_file if name == "terms" else settings.privacy_file
    path = policy_file(settings, name, configured)
    source = path or TEMPLATE_DIR / f"policy_{name}.txt"
    try:
        text = await asyncio.to_thread(source.read_text, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        log.error("cannot read the %s page's text from %s: %s", name, source, type(exc).__name__)
        raise Unavailable(f"the {title.lower()} cannot be shown right now") from exc
    is_html = path is not None and path.suffix.lower() in (".html", ".htm")
    return render_html(
        request,
        "policy.html",
        user=user,
        title=f"{title} · Kamiyo",
        heading=title,
        html=Markup(text) if is_html else None,  # noqa: S704 - the operator's own HTML, trusted like the templates
        blocks=None if is_html else text_blocks(text),
        default_text=path is None,
        setting="KAMIYO_TERMS_FILE" if name == "terms" else "KAMIYO_PRIVACY_FILE",
    )


@router.get("/terms")
async def terms(request: Request, settings: SettingsDep, user: OptionalUser) -> Response:
    return await policy_page(request, settings, user, "terms", "Terms of service")


@router.get("/privacy")
async def privacy(request: Request, settings: SettingsDep, user: OptionalUser) -> Response:
    return await policy_page(request, settings, user, "privacy", "Privacy")
