"""Accounts API under /api/v1: signup, login, logout, me, API keys. Thin: parse, call a service, render."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response

from kamiyo.accounts import service, sessions
from kamiyo.accounts.csrf import csrf_token, csrf_token_for_session, verify_csrf
from kamiyo.accounts.deps import CurrentUser, PrincipalDep, get_limiter
from kamiyo.accounts.login import login_with_password, signup_with_password
from kamiyo.accounts.models import ApiKey, User
from kamiyo.accounts.schemas import (
    AuthOut,
    KeyCreatedOut,
    KeyCreateIn,
    KeyOut,
    LoginIn,
    MeOut,
    SignupIn,
)
from kamiyo.api_deps import SessionDep, row_id
from kamiyo.kit.attrs import pick
from kamiyo.tiers import get_tier, tiers_markdown

router = APIRouter(tags=["accounts"])
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {401: {"description": "Missing, invalid or revoked API key"}}


def _user(user: User) -> dict[str, Any]:
    return {"id": user.id, "email": user.email, "tier": user.tier, "created_at": user.created_at}


def _key(key: ApiKey) -> dict[str, Any]:
    return pick(key, "id", "name", "prefix", "created_at", "last_used_at")


def _auth(request: Request, user: User) -> dict[str, Any]:
    token = sessions.session_token(request)
    return {"user": _user(user), "csrf_token": csrf_token_for_session(request, token) if token else ""}


@router.post("/auth/signup", response_model=AuthOut, status_code=201, summary="Create an account and log in")
async def signup(body: SignupIn, request: Request, response: Response, session: SessionDep) -> dict[str, Any]:
    user = await signup_with_password(session, request, response, body.email, body.password)
    return _auth(request, user)


@router.post(
    "/auth/login",
    response_model=AuthOut,
    summary="Log in with e-mail and password (sets the dashboard session cookie)",
    responses={401: {"description": "Wrong e-mail or password"}, 429: {"description": "Too many failures"}},
)
async def login(body: LoginIn, request: Request, response: Response, session: SessionDep) -> dict[str, Any]:
    user = await login_with_password(session, request, response, body.email, body.password)
    return _auth(request, user)


@router.post("/auth/logout", status_code=204, summary="End the dashboard session")
async def logout(request: Request, session: SessionDep) -> Response:
    response = Response(status_code=204)
    if sessions.session_token(request):
        await verify_csrf(request)
    await sessions.logout(session, request, response)
    return response


@router.get(
    "/me",
    response_model=MeOut,
    summary="The caller: account, tier, usage today and limits",
    description="Tiers:\n\n" + tiers_markdown(),
    responses=AUTH_ERRORS,
)
async def me(request: Request, principal: PrincipalDep, user: CurrentUser) -> dict[str, Any]:
    tier = get_tier(user.tier)
    window = await get_limiter(request).peek_daily("user", str(user.id), tier.requests_per_day)
    limits = tier.as_dict()
    return {
        "user": _user(user),
        "tier": tier.name,
        "usage": {"requests_today": window.count, "remaining": window.remaining, "reset": window.reset},
        "limits": limits,
        "csrf_token": csrf_token(request) if principal.via == "session" else None,
    }


@router.get("/keys", response_model=list[KeyOut], summary="Your active API keys (prefix only)", responses=AUTH_ERRORS)
async def list_keys(user: CurrentUser, session: SessionDep) -> list[dict[str, Any]]:
    return [_key(k) for k in await service.list_keys(session, user.id)]


@router.post(
    "/keys",
    response_model=KeyCreatedOut,
    status_code=201,
    summary="Create an API key (the full key is in this answer only)",
    responses=AUTH_ERRORS,
)
async def create_key(user: CurrentUser, session: SessionDep, body: KeyCreateIn | None = None) -> dict[str, Any]:
    key, raw = await service.create_key(session, user.id, body.name if body else None)
    return {**_key(key), "key": raw}


KeyId = Annotated[int, row_id("API key id.")]


@router.delete("/keys/{key_id}", status_code=204, summary="Revoke an API key at once", responses=AUTH_ERRORS)
async def revoke_key(user: CurrentUser, session: SessionDep, key_id: KeyId) -> Response:
    await service.revoke_key(session, user.id, key_id)
    return Response(status_code=204)
