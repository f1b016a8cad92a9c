"""Review of submissions on SQLite and PostgreSQL: approval into public data, corrections, rejection,
the `kamiyo submissions review` / `kamiyo users set-admin` commands and the admin page."""

from __future__ import annotations

import re
import subprocess
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from kamiyo.accounts.models import User
from kamiyo.db import Database
from kamiyo.errors import Conflict, NotFound
from kamiyo.exploits.cache import DATA_VERSION
from kamiyo.exploits.models import Meta
from kamiyo.ingest.store import store_reports
from kamiyo.sources import defihacklabs
from kamiyo.submissions import service
from tests.submissions.helpers import NEW_TX, body, community_reports, public_count, seeded
from tests.support.cli import kamiyo_async
from tests.support.users import PASSWORD, add_user, bearer, user_with_key


@pytest.fixture
async def submitter(db_url: str) -> tuple[int, dict[str, str]]:
    user_id, raw = await user_with_key(db_url, "ada@example.com", tier="free")
    return user_id, bearer(raw)


async def submit(c: httpx.AsyncClient, headers: dict[str, str], **changes: Any) -> dict[str, Any]:
    r = await c.post("/api/v1/submissions", json=body(**changes), headers=headers)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


async def approve(database: Database, submission_id: int, **kwargs: Any) -> Any:
    async with database.session() as session:
        return await service.decide(session, submission_id, "approved", **kwargs)


async def reject(database: Database, submission_id: int, **kwargs: Any) -> Any:
    async with database.session() as session:
        return await service.decide(session, submission_id, "rejected", **kwargs)


async def data_version(database: Database) -> int:
    async with database.session() as session:
        return int((await session.execute(select(Meta.value).where(Meta.key == DATA_VERSION))).scalar_one())


async def test_an_approved_missing_incident_is_public_with_its_provenance(
    app_client: httpx.AsyncClient, database: Database, submitter: tuple[int, dict[str, str]]
) -> None:
    user_id, key = submitter
    before = await public_count(database)
    sub = await submit(app_client, key)
    stored = await approve(database, sub["id"], note="checked the tx")
    assert (await public_count(database)) == before + 1
    exploit = (await app_client.get(f"/exploits/{NEW_TX}")).json()
    assert exploit["id"] == stored.exploit_id and exploit["protocol"] == "Quokka Vault"
    assert exploit["amount_usd"] == 1_250_000 and exploit["timestamp"] == "2026-11-20T14:03:11Z"
    assert exploit["category"] == "price_oracle" and exploit["attacker_address"] == "0x" + "12" * 20
    assert [(s["source"], s["url"]) for s in exploit["sources"]] == [("community", "https://example.org/post-mortem")]
    assert exploit["sources"][0]["reported_at"] == sub["created_at"]
    feed = (await app_client.get("/feed.xml")).text  # the newest entry, with its contributor
    assert feed.index("<contributor><name>community</name></contributor>") < feed.index("</entry>")
    listed = (await app_client.get("/exploits?source=community")).json()
    assert [e["id"] for e in listed["data"]] == [exploit["id"]]
    [report] = await community_reports(database)
    assert report.source_ref == f"submission:{sub['id']}" and report.raw["submitted_by"] == user_id
    assert report.raw["evidence_urls"] == body()["evidence_urls"]
    mine = (await app_client.get(f"/api/v1/submissions/{sub['id']}", headers=key)).json()
    assert (
        mine["status"] == "approved" and mine["exploit_id"] == exploit["id"] and mine["review_note"] == "checked the tx"
    )


async def test_an_approved_correction_lands_on_the_exploit_holding_the_hash(
    app_client: httpx.AsyncClient, database: Database, submitter: tuple[int, dict[str, str]]
) -> None:
    euler = await seeded(database, "EulerFinance")
    before = await public_count(database)
    sub = await submit(app_client, submitter[1], tx_hash=euler["tx_hash"], protocol="Euler", amount_usd=196_000_000)
    await approve(database, sub["id"])
    assert await public_count(database) == before
    exploit = (await app_client.get(f"/exploits/{euler['id']}")).json()
    assert [s["source"] for s in exploit["sources"]] == ["defihacklabs"]  # a correction is not a source
    assert exploit["amount_usd"] == 196_000_000  # the approved correction outranks the sources
    assert [(c["field"], c["value"]) for c in exploit["corrections"]][:1] == [("amount_usd", 196_000_000)]
    assert exploit["corrections"][0]["reference"] == body()["evidence_urls"][0]
    assert exploit["protocol"] == "EulerFinance"  # the more trusted source keeps its name


async def test_a_correction_lands_on_its_target_even_when_its_facts_would_not_match(
    app_client: httpx.AsyncClient, database: Database, submitter: tuple[int, dict[str, str]]
) -> None:
    strong = await seeded(database, "StrongBlock")  # no tx hash: only the named target ties it
    later = (strong["timestamp"] + timedelta(days=40)).isoformat()
    sub = await submit(
        app_client, submitter[1], tx_hash=None, protocol="Strong", exploit_id=strong["id"],
        amount_usd=50_000_000, timestamp=later, description="The loss was far larger.",
    )  # fmt: skip
    assert sub["kind"] == "correction"
    stored = await approve(database, sub["id"])
    assert stored.exploit_id == strong["id"]
    exploit = (await app_client.get(f"/exploits/{strong['id']}")).json()
    assert "community" not in {s["source"] for s in exploit["sources"]}
    assert exploit["amount_usd"] == 50_000_000 and exploit["timestamp"] == later.replace("+00:00", "Z")
    async with database.session() as session:  # a later ingest of the sources' rows does not undo it
        await store_reports(session, [r for r in defihacklabs.load_bundled() if "Strong" in r.protocol])
    again = (await app_client.get(f"/exploits/{strong['id']}")).json()
    assert again["amount_usd"] == 50_000_000 and again["corrections"] == exploit["corrections"]


async def test_two_corrections_of_one_exploit_both_land_on_it(
    app_client: httpx.AsyncClient, database: Database, submitter: tuple[int, dict[str, str]]
) -> None:
    strong = await seeded(database, "StrongBlock")
    first = await submit(app_client, submitter[1], tx_hash=None, exploit_id=strong["id"], protocol="Strong A")
    second = await submit(app_client, submitter[1], tx_hash=None, exploit_id=strong["id"], protocol="Strong B")
    for sub in (first, second):
        assert (await approve(database, sub["id"])).exploit_id == strong["id"]
    exploit = (await app_client.get(f"/exploits/{strong['id']}")).json()
    assert "community" not in [s["source"] for s in exploit["sources"]]
    assert len({c["reason"] for c in exploit["corrections"]}) == 2  # both listed, each with its own reason


async def test_a_rejection_leaves_no_trace_in_public_data(
    app_client: httpx.AsyncClient, database: Database, submitter: tuple[int, dict[str, str]]
) -> None:
    before, version = await public_count(database), await data_version(database)
    euler = await seeded(database, "EulerFinance")
    new = await submit(app_client, submitter[1])
    correction = await submit(app_client, submitter[1], tx_hash=euler["tx_hash"], amount_usd=5)
    for sub in (new, correction):
        await reject(database, sub["id"], note="no evidence")
    assert await public_count(database) == before and await data_version(database) == version
    assert await community_reports(database) == []
    assert (await app_client.get(f"/exploits/{NEW_TX}")).status_code == 404
    assert (await app_client.get(f"/exploits/{euler['id']}")).json()["amount_usd"] == euler["amount_usd"]
    mine = (await app_client.get(f"/api/v1/submissions/{new['id']}", headers=submitter[1])).json()
    assert mine["status"] == "rejected" and mine["review_note"] == "no evidence"


async def test_a_submission_is_reviewed_once(
    app_client: httpx.AsyncClient, database: Database, submitter: tuple[int, dict[str, str]]
) -> None:
    sub = await submit(app_client, submitter[1])
    await reject(database, sub["id"])
    with pytest.raises(Conflict, match="already rejected"):
        await approve(database, sub["id"])
    with pytest.raises(NotFound):
        await reject(database, 10**9)
    assert await community_reports(database) == []


# ------------------------------------------------------------------ the commands


async def kamiyo(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return await kamiyo_async(*args, KAMIYO_DATABASE_URL=db_url)


async def test_review_commands_list_approve_and_reject(
    db_url: str, app_client: httpx.AsyncClient, database: Database, submitter: tuple[int, dict[str, str]]
) -> None:
    await add_user(db_url, "admin@example.com")
    good = await submit(app_client, submitter[1])
    spam = await submit(app_client, submitter[1], tx_hash=None, protocol="Casino Bonus")
    listed = await kamiyo(db_url, "submissions", "review")
    assert listed.returncode == 0, listed.stderr
    assert "Quokka Vault" in listed.stdout and "Casino Bonus" in listed.stdout and "ada@example.com" in listed.stdout
    refused = await kamiyo(db_url, "submissions", "review", "--approve", str(good["id"]), "--as", "admin@example.com")
    assert refused.returncode == 1 and "no admin" in refused.stderr
    promoted = await kamiyo(db_url, "users", "set-admin", "admin@example.com")
    assert promoted.returncode == 0 and "now an admin" in promoted.stderr
    approved = await kamiyo(db_url, "submissions", "review", "--approve", str(good["id"]), "--as", "admin@example.com")
    assert approved.returncode == 0 and "stored as a community report on exploit" in approved.stderr
    rejected = await kamiyo(db_url, "submissions", "review", "--reject", str(spam["id"]), "--note", "spam")
    assert rejected.returncode == 0 and f"rejected submission {spam['id']}" in rejected.stderr
    again = await kamiyo(db_url, "submissions", "review", "--reject", str(good["id"]))
    assert again.returncode == 1 and "already approved" in again.stderr
    assert "Quokka" not in (await kamiyo(db_url, "submissions", "review")).stdout
    assert "Casino Bonus" in (await kamiyo(db_url, "submissions", "review", "--status", "rejected")).stdout
    assert (await kamiyo(db_url, "submissions", "review", "--status", "nope")).returncode == 2
    assert (await app_client.get(f"/exploits/{NEW_TX}")).json()["sources"][0]["source"] == "community"
    async with database.session() as session:
        admin = (await session.execute(select(User).where(User.email == "admin@example.com"))).scalar_one()
        assert admin.is_admin
    assert (await approve_status(app_client, submitter[1], good["id"])) == "approved"
    demoted = await kamiyo(db_url, "users", "set-admin", "admin@example.com", "--off")
    assert demoted.returncode == 0 and "no longer an admin" in demoted.stderr


async def approve_status(c: httpx.AsyncClient, key: dict[str, str], submission_id: int) -> str:
    status: str = (await c.get(f"/api/v1/submissions/{submission_id}", headers=key)).json()["status"]
    return status


# ------------------------------------------------------------------ the admin page


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match
    return match.group(1)


async def log_in(c: httpx.AsyncClient, email: str) -> None:
    token = csrf_of((await c.get("/login")).text)
    r = await c.post("/login", data={"csrf_token": token, "email": email, "password": PASSWORD})
    assert r.status_code == 303


async def make_admin(database: Database, email: str) -> None:
    async with database.session() as session:
        user = (await session.execute(select(User).where(User.email == email))).scalar_one()
        user.is_admin = True


async def test_only_admins_reach_the_review_page(
    db_url: str, app_client: httpx.AsyncClient, database: Database
) -> None:
    visitor = await app_client.get("/app/admin/submissions")
    assert visitor.status_code == 303 and visitor.headers["location"].startswith("/login")
    await add_user(db_url, "user@example.com")
    await log_in(app_client, "user@example.com")
    refused = await app_client.get("/app/admin/submissions")
    assert refused.status_code == 403 and "text/html" in refused.headers["content-type"]
    assert "Review</a>" not in (await app_client.get("/app/exploits")).text
    await make_admin(database, "user@example.com")
    page = await app_client.get("/app/admin/submissions")
    assert page.status_code == 200 and 'href="/app/admin/submissions"' in page.text


async def test_an_admin_approves_and_rejects_from_the_page_and_text_stays_inert(
    db_url: str, app_client: httpx.AsyncClient, database: Database, submitter: tuple[int, dict[str, str]]
) -> None:
    evil = "<script>alert(1)</script> <img src=x onerror=alert(2)>"
    good = await submit(app_client, submitter[1], description=evil, protocol="<b>Quokka</b>")
    spam = await submit(app_client, submitter[1], tx_hash=None, protocol="Casino Bonus")
    await add_user(db_url, "admin@example.com")
    await make_admin(database, "admin@example.com")
    await log_in(app_client, "admin@example.com")
    page = (await app_client.get("/app/admin/submissions")).text
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>Quokka" not in page and "&lt;b&gt;Quokka&lt;/b&gt;" in page
    assert 'href="https://example.org/post-mortem" rel="nofollow ugc noopener noreferrer external"' in page
    forged = await app_client.post(f"/app/admin/submissions/{good['id']}/approve", data={"note": "x"})
    assert forged.status_code == 403 and await community_reports(database) == []
    token = csrf_of(page)
    done = await app_client.post(f"/app/admin/submissions/{good['id']}/approve", data={"csrf_token": token})
    assert done.status_code == 303
    notice = (await app_client.get(done.headers["location"])).text
    assert f"Submission {good['id']} approved" in notice and "Casino Bonus" in notice and "Quokka" not in notice
    rejected = await app_client.post(
        f"/app/admin/submissions/{spam['id']}/reject", data={"csrf_token": token, "note": "casino spam"}
    )
    assert rejected.status_code == 303
    twice = await app_client.post(f"/app/admin/submissions/{spam['id']}/approve", data={"csrf_token": token})
    assert twice.status_code == 409 and "already rejected" in twice.text
    exploit = (await app_client.get(f"/exploits/{NEW_TX}")).json()
    assert exploit["description"] == evil
    detail = (await app_client.get(f"/app/exploits/{exploit['id']}")).text
    assert "<script>alert" not in detail and "&lt;script&gt;" in detail
    history = (await app_client.get("/app/admin/submissions?status=all")).text
    assert "casino spam" in history and "Approved" in history and "Rejected" in history
