"""DeFiHackLabs' texts parsed: the README incident entries and the PoC `@KeyInfo` headers.

Only text to dataclasses, verbatim; `kamiyo.sources.defihacklabs` validates the facts and joins
the two by PoC path into reports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

URL = "https://github.com/SunWeb3Sec/DeFiHackLabs"
BLOB_URL = f"{URL}/blob/main/"
_HEADING = re.compile(r"^(#{1,6})\s*(.*?)\s*$")
_DATED = re.compile(r"^(\d{8})(?!\d)\s*(.*)$")
_LOST = re.compile(r"^(?:total\s+)?lost\b\s*[:\uff1a]?\s*(.*)$", re.I)
_RESCUED = re.compile(r"^rescued\b\s*:?\s*(.*)$", re.I)
_RULE = re.compile(r"^\s*-{3,}\s*$")
_POC_PATH = re.compile(r"src/test/[^\s()\[\]<>`'\":]*[\w-]")
URL_IN_TEXT = re.compile(r"(?:https?:)?//[\w-]+(?:\.[\w-]+)+[^\s<>()\[\]`'\"]*")
_README_YEAR = re.compile(r"^##\s*(?:(\d{4})|before\s+(\d{4}))\b.*list of past", re.I | re.M)


@dataclass(frozen=True, slots=True)
class ReadmeEntry:
    """One `### YYYYMMDD Name - Type` block of a DeFiHackLabs README."""

    date: date
    name: str
    attack_type: str
    lost: str | None
    poc_paths: tuple[str, ...]
    references: tuple[str, ...]
    readme: str  # path of the README in the repository, e.g. "past/2022/README.md"
    heading: str
    rescued: str | None = None

    @property
    def anchor_url(self) -> str:
        """GitHub's anchor for the heading: lower-case, punctuation dropped, spaces to dashes."""
        slug = re.sub(r"[^\w\- ]", "", self.heading.lower()).replace(" ", "-")
        return f"{BLOB_URL}{self.readme}#{slug}"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """The `// @KeyInfo` header facts of one PoC file (verbatim strings, not yet validated)."""

    file: str
    month: str | None = None
    total_lost: str | None = None
    attacker: tuple[str, ...] = ()
    attack_contract: tuple[str, ...] = ()
    vulnerable_contract: tuple[str, ...] = ()
    attack_tx: tuple[str, ...] = ()
    attack_tx_urls: tuple[str, ...] = ()
    analysis_links: tuple[str, ...] = ()
    tx_hashes_in_other_comments: tuple[str, ...] = ()
    fork_chain: str | None = None
    fork_block: int | None = None


def normalise_poc_path(path: str) -> str | None:
    """'../../src/test/2023-06//BUNN_exp.sol' -> 'src/test/2023-06/BUNN_exp.sol'; None if no PoC.

    A path without ".sol" (a README typo such as "src/test/2025-08/EverValueCoin") is kept as
    written; `build_reports` resolves it against the key info by file stem.
    """
    match = _POC_PATH.search(re.sub(r"/{2,}", "/", path.replace("\\", "/")))
    return match.group(0) if match else None


def poc_stem(path: str) -> tuple[str, str | None]:
    """('evervaluecoin', '2025-08') for '.../2025-08/EverValueCoin_exp.sol': loose join key."""
    month = re.search(r"/(\d{4}-\d{2})/", path)
    stem = path.rsplit("/", 1)[-1].lower()
    while (trimmed := re.sub(r"(?:\.sol|_exp)$", "", stem)) != stem:
        stem = trimmed
    return stem, month.group(1) if month else None


def _readme_path(text: str) -> str:
    """Repository path of a README, told by its "## 2022 - List of Past DeFi Incidents" header."""
    match = _README_YEAR.search(text)
    if not match:
        return "README.md"
    return f"past/{match.group(1) or match.group(2)}/README.md"


def _split_heading(rest: str) -> tuple[str, str]:
    """'Name - Type' (current) or '- Name - Type' (past) or '-MARA---price-manipulation'."""
    rest = rest.lstrip(" -")
    parts = re.split(r"\s+-\s+|\s*-{3}\s*", rest, maxsplit=1)
    name = parts[0].strip()
    return name, (parts[1].strip() if len(parts) > 1 else "")


def urls_in(text: str) -> list[str]:
    """URLs in free text; scheme-less "//bscscan.com/..." ones get "https:"."""
    urls = (url.rstrip(".,;:!?*_") for url in URL_IN_TEXT.findall(text))
    return [url if url.startswith("http") else "https:" + url for url in urls]


class _EntryBuilder:
    """Collects the lines of one entry; `build()` returns None for a bad date."""

    def __init__(self, day: str, rest: str, heading: str, readme: str) -> None:
        self.day, self.heading, self.readme = day, heading, readme
        self.name, self.attack_type = _split_heading(rest)
        self.lost: str | None = None
        self.rescued: str | None = None
        self.paths: list[str] = []
        self.references: list[str] = []
        self.in_links = False

    def add_line(self, line: str) -> None:
        for raw in _POC_PATH.findall(re.sub(r"/{2,}", "/", line)):
            path = normalise_poc_path(raw)
            if path and path not in self.paths:
                self.paths.append(path)
        if self.in_links:
            self.references.extend(url for url in urls_in(line) if url not in self.references)

    def add_heading(self, title: str) -> None:
        lost, rescued = _LOST.match(title), _RESCUED.match(title)
        if lost and self.lost is None:
            self.lost = lost.group(1).strip() or None
        elif rescued and self.rescued is None:
            self.rescued = rescued.group(1).strip() or None
        self.in_links = title.lower().startswith("link reference")

    def build(self) -> ReadmeEntry | None:
        try:
            day = datetime.strptime(self.day, "%Y%m%d").date()
        except ValueError:
            return None
        return ReadmeEntry(
            date=day,
            name=self.name,
            attack_type=self.attack_type,
            lost=self.lost,
            poc_paths=tuple(self.paths),
            references=tuple(self.references),
            readme=self.readme,
            heading=self.heading,
            rescued=self.rescued,
        )


def parse_readme(text: str, readme: str | None = None) -> list[ReadmeEntry]:
    """Incidents of one DeFiHackLabs README (current-year or past/YYYY format), in file order.

    An entry runs from its dated heading to the next dated heading, a `---` rule or a level 1-2
    heading. `readme` is the file's path in the repository (guessed from its header if omitted).
    """
    readme = readme or _readme_path(text)
    entries: list[ReadmeEntry] = []
    current: _EntryBuilder | None = None
    in_fence = False

    def close() -> None:
        if current is not None and (entry := current.build()) is not None:
            entries.append(entry)

    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        heading = None if in_fence else _HEADING.match(line)
        if heading:
            dated = _DATED.match(heading.group(2))
            if dated:
                close()
                current = _EntryBuilder(dated.group(1), dated.group(2), heading.group(2), readme)
            elif len(heading.group(1)) <= 2:
                close()
                current = None
            elif current is not None:
                current.add_heading(heading.group(2))
        elif not in_fence and _RULE.match(line):
            close()
            current = None
        elif current is not None:
            current.add_line(line)
    close()
    return entries


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    return tuple(s for s in (str(item).strip() for item in items if item is not None) if s)


def _text(value: Any) -> str | None:
    return (str(value).strip() or None) if value is not None else None


def parse_keyinfo(doc: Mapping[str, Any] | list[Any]) -> dict[str, KeyInfo]:
    """Key info per PoC, keyed by normalised PoC path; accepts {"records": [...]} or the list."""
    records = doc.get("records", []) if isinstance(doc, Mapping) else doc
    result: dict[str, KeyInfo] = {}
    for record in records:
        path = normalise_poc_path(str(record.get("file") or "")) if isinstance(record, dict) else None
        if path is None:
            continue
        block = record.get("fork_block")
        result[path] = KeyInfo(
            file=path,
            month=_text(record.get("month")),
            total_lost=_text(record.get("total_lost")),
            attacker=_strings(record.get("attacker")),
            attack_contract=_strings(record.get("attack_contract")),
            vulnerable_contract=_strings(record.get("vulnerable_contract")),
            attack_tx=_strings(record.get("attack_tx")),
            attack_tx_urls=_strings(record.get("attack_tx_urls")),
            analysis_links=_strings(record.get("analysis_links")),
            tx_hashes_in_other_comments=_strings(record.get("tx_hashes_in_other_comments")),
            fork_chain=_text(record.get("fork_chain")),
            fork_block=block if isinstance(block, int) and not isinstance(block, bool) else None,
        )
    return result


# --------------------------------------------------------------------------------------------
# Joining into reports
# --------------------------------------------------------------------------------------------
