"""Dashboard pages: thin routes that call the domain services and render a template."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response, StreamingResponse

from kamiyo import tiers
from kamiyo.accounts.deps import OptionalUser
from kamiyo.accounts.models import User
from kamiyo.api_deps import SessionDep, get_database
from kamiyo.exploits import service
from kamiyo.exploits.export import csv_header, csv_row, iter_exploits
from kamiyo.exploits.filters import ExploitFilters
from kamiyo.ingest import rankings
from kamiyo.ingest.health import list_sources
from kamiyo.kit.timeutil import utcnow
from kamiyo.sources import REGISTRY
from kamiyo.tiers import get_tier
from kamiyo.vocabulary.taxonomy import CHAINS
from kamiyo.web import charts, queries
from kamiyo.web.forms import PAGE_SIZES, parse_explorer
from kamiyo.web.render import category_name, chain_name, moment, render_html

router = APIRouter(include_in_schema=False)
WINDOWS = ((1, "24 hours"), (7, "7 days"), (30, "30 days"))
TOP_BREAKDOWN = 8


@router.get("/")
async def home(request: Request, session: SessionDep, user: OptionalUser) -> Response:
    totals = await queries.window_totals(session, tuple(days for days, _ in WINDOWS))
    windows = list(zip((label for _, label in WINDOWS), totals, strict=True))
    overview = await queries.cached_overview(session)
    years = charts.yearly(overview.months)
    return render_html(
        request,
        "home.html",
        user=user,
        title="Kamiyo — crypto exploit intelligence",
        windows=windows,
        overview=overview,
        monthly=charts.bar_chart(overview.months, label_key="month", width=960, height=280),
        yearly=charts.bar_chart(years, label_key="label", width=340, height=240, left=58, max_x_ticks=5),
        yearly_rows=years,
        chain_label=chain_name,
        category_label=category_name,
        by_chain=overview.by_chain[:TOP_BREAKDOWN],
        by_category=overview.by_category[:TOP_BREAKDOWN],
        share=charts.share,
        newest=await queries.newest_exploits(session),
        sources=await list_sources(session),
    )


@router.get("/app")
async def app_index(request: Request) -> Response:
    return Response(status_code=307, headers={"Location": "/app/exploits"})


@router.get("/app/exploits")
async def explorer(request: Request, session: SessionDep, user: OptionalUser) -> Response:
    query = parse_explorer(request.query_params)
    page: dict[str, Any] = {"data": [], "total": 0, "has_more": False}
    if query.errors:
        pass
    elif query.filters == ExploitFilters():  # the whole table: its total comes from the summaries
        page = await queries.unfiltered_page(session, sort=query.sort, page=query.page, page_size=query.page_size)
    else:
        page = await service.list_exploits(
            session, query.filters, sort=query.sort, page=query.page, page_size=query.page_size
        )
    total = int(page["total"])
    return render_html(
        request,
        "explorer.html",
        user=user,
        title=("Explore exploits" + (f" — page {query.page}" if query.page > 1 else "")) + " · Kamiyo",
        query=query,
        page=page,
        pages=max(1, -(-total // query.page_size)),
        first_row=(query.page - 1) * query.page_size + 1,
        chains=sorted(CHAINS.values(), key=lambda c: c.name.lower()),
        sources=sorted(REGISTRY.values(), key=lambda s: s.title.lower()),
        page_sizes=PAGE_SIZES,
        csv_limit=csv_limit(user),
    )


def csv_limit(user: User | None) -> int | None:
    """Rows a dashboard CSV may hold: all of them on plans with export, else the visitor's cap."""
    return None if user is not None and get_tier(user.tier).allows("export") else tiers.ANONYMOUS_CSV_ROWS


@router.get("/app/exploits.csv")
async def explorer_csv(request: Request, user: OptionalUser) -> Response:
    """The filtered set as CSV, streamed in keyset batches; capped unless the plan includes export."""
    query = parse_explorer(request.query_params)
    if query.errors:
        name, message = next(iter(query.errors.items()))
        return Response(f"{name}: {message}\n", status_code=422, media_type="text/plain; charset=utf-8")
    database = get_database(request)
    limit = csv_limit(user)

    async def rows() -> AsyncIterator[str]:
        yield csv_header()
        async with database.session() as session:
            sent = 0
            async for exploit in iter_exploits(session, query.filters, query.sort):
                yield csv_row(exploit)
                sent += 1
                if limit is not None and sent >= limit:
                    break

    headers = {
        "Content-Disposition": 'attachment; filename="kamiyo-exploits.csv"',
        "X-Kamiyo-Row-Limit": str(limit) if limit is not None else "none",
        "Cache-Control": "no-store",
    }
    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/app/exploits/{ref}")
async def exploit_detail(
    request: Request, session: SessionDep, user: OptionalUser, ref: Annotated[str, Path(max_length=200)]
) -> Response:
    exploit = await service.get_exploit(session, ref)
    addresses, transactions = await queries.labelled_facts(session, exploit["id"])
    chain = CHAINS.get(exploit["chain"])
    return render_html(
        request,
        "exploit.html",
        user=user,
        title=f"{exploit['name'] or exploit['protocol']} exploit · Kamiyo",
        exploit=exploit,
        chain=chain,
        addresses=addresses,
        transactions=transactions,
        timeline=_timeline(exploit),
        sources_by_name=REGISTRY,
    )


@dataclass(slots=True)
class Event:
    at: datetime | None  # None: a report whose time is not known (backfilled history)
    kind: str  # incident | report | seen
    what: str
    source: dict[str, Any] | None = None
    after_s: float = 0.0


def _timeline(exploit: dict[str, Any]) -> list[Event]:
    """The incident, each source's report and when Kamiyo learned of it, in time order; reports whose time is
    not known come last, without a delay (never as "now")."""
    incident = moment(exploit["timestamp"]) or utcnow()
    events = [Event(incident, "incident", "Incident")]
    events += [Event(moment(r["reported_at"]), "report", "Reported", r) for r in exploit["sources"]]
    events.append(Event(moment(exploit["first_seen_at"]) or utcnow(), "seen", "First seen by Kamiyo"))
    for event in events:
        event.after_s = (event.at - incident).total_seconds() if event.at else 0.0
    events.sort(key=lambda e: (e.at is None, e.at or incident))
    return events


RANKING_WINDOWS = ((30, "30 days"), (90, "90 days"), (365, "1 year"), (3650, "10 years"))


@router.get("/app/sources")
async def sources_page(request: Request, session: SessionDep, user: OptionalUser, days: str = "") -> Response:
    """Health, and the rankings of `GET /sources/rankings` over one of a few windows (12 months unless chosen)."""
    window = int(days) if days.isdigit() and int(days) in dict(RANKING_WINDOWS) else 365
    return render_html(
        request,
        "sources.html",
        user=user,
        title="Sources · Kamiyo",
        sources=await list_sources(session),
        rankings=await rankings.compute_rankings(session, window),
        days=window,
        windows=RANKING_WINDOWS,
        weights=rankings.WEIGHTS,
    )
