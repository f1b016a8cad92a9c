"""Account pages: log in, sign up, log out, API keys, billing and pricing.

Thin: every form is checked for its CSRF token, handed to the accounts and billing services, and
answered either with a redirect (post/redirect/get) or with the same form and the errors next to
their fields. A new API key is the one answer rendered straight from a POST, since it is shown once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kamiyo.accounts import service as accounts
from kamiyo.accounts import sessions
from kamiyo.accounts.deps import OptionalUser, RateLimited
from kamiyo.accounts.login import InvalidCredentials, login_with_password, signup_with_password
from kamiyo.accounts.models import User
from kamiyo.api_deps import SessionDep, SettingsDep, row_id
from kamiyo.billing import service as billing
from kamiyo.billing.stripe_api import BillingNotConfigured
from kamiyo.errors import KamiyoError
from kamiyo.tiers import TIERS, stripe_price
from kamiyo.web.page_deps import CSRF_MESSAGE, PageForm, PageUser, SubmittedForm, ValidCsrf, see_other
from kamiyo.web.render import account_html, render_html

router = APIRouter(include_in_schema=False)
DEFAULT_NEXT = "/app/keys"
CHECKOUT_NOTICES = {
    "success": "Thank you! Your subscription starts as soon as Stripe confirms the payment.",
    "cancelled": "Checkout was cancelled; nothing was charged.",
}


def safe_next(value: str | None) -> str:
    """Only a local path may follow a login (no open redirect to another site)."""
    if value and value.startswith("/") and not value.startswith(("//", "/\\")) and len(value) <= 500:
        return value
    return DEFAULT_NEXT


def field_errors(exc: KamiyoError, fields: tuple[str, ...]) -> dict[str, str]:
    """`"email: not valid"` → {"email": "not valid"}; anything else is a form-level error."""
    name, _, rest = exc.message.partition(": ")
    if name in fields and rest:
        return {name: rest[0].upper() + rest[1:]}
    return {"form": exc.message[0].upper() + exc.message[1:]}


# ---------------------------------------------------------------- log in, sign up, log out

AUTH_PAGES = {
    "login": {
        "title": "Log in · Kamiyo",
        "heading": "Log in",
        "intro": "Welcome back. Log in to manage your API keys, alerts and plan.",
        "submit": "Log in",
        "password_hint": "",
    },
    "signup": {
        "title": "Sign up · Kamiyo",
        "heading": "Create your free account",
        "intro": "An account gives you an API key with higher limits, alerts, and paid plans when you need them.",
        "submit": "Create account",
        "password_hint": f"at least {accounts.PASSWORD_MIN} characters",
    },
}


def auth_page(request: Request, mode: str, *, email: str = "", next_path: str = DEFAULT_NEXT, **extra: Any) -> Response:
    errors: dict[str, str] = extra.pop("errors", {})
    return render_html(
        request,
        "auth.html",
        status=extra.pop("status", 200),
        mode=mode,
        action=f"/{mode}",
        email=email,
        next=next_path,
        default_next=DEFAULT_NEXT,
        errors=errors,
        **AUTH_PAGES[mode],
    )


@router.get("/login")
async def login_page(request: Request, user: OptionalUser, next: str | None = None) -> Response:
    if user is not None:
        return see_other(safe_next(next))
    return auth_page(request, "login", next_path=safe_next(next))


@router.get("/signup")
async def signup_page(request: Request, user: OptionalUser, next: str | None = None) -> Response:
    if user is not None:
        return see_other(safe_next(next))
    return auth_page(request, "signup", next_path=safe_next(next))


def _missing(values: dict[str, str]) -> dict[str, str]:
    errors = {}
    if not values.get("email", "").strip():
        errors["email"] = "Enter your e-mail address"
    if not values.get("password"):
        errors["password"] = "Enter a password"  # noqa: S105 (a message, not a secret)
    return errors


Sign = Callable[[Response, str, str], Awaitable[None]]  # (the answer to set the session on, e-mail, password)


async def auth_submit(
    request: Request,
    form: SubmittedForm,
    mode: str,
    sign: Sign,
    refused: tuple[type[KamiyoError], ...],
    errors_of: Callable[[KamiyoError], dict[str, str]],
) -> Response:
    """A submitted login or signup form: on to `next` with a session, or the form again with the errors of a
    `refused` attempt (other errors get the error page)."""
    email, next_path = form.text("email"), safe_next(form.values.get("next"))

    def again(status: int, errors: dict[str, str]) -> Response:
        return auth_page(request, mode, email=email, next_path=next_path, errors=errors, status=status)

    if not form.csrf_ok:
        return again(403, {"form": CSRF_MESSAGE})
    if errors := _missing(form.values):
        return again(422, errors)
    response = see_other(next_path)
    try:
        await sign(response, email, form.values["password"])
    except refused as exc:
        return again(exc.status, errors_of(exc))
    return response


@router.post("/login")
async def login_submit(request: Request, session: SessionDep, form: PageForm) -> Response:
    async def sign(response: Response, email: str, password: str) -> None:
        await login_with_password(session, request, response, email, password)

    def errors_of(exc: KamiyoError) -> dict[str, str]:
        return {"form": "Wrong e-mail or password." if isinstance(exc, InvalidCredentials) else exc.message}

    return await auth_submit(request, form, "login", sign, (InvalidCredentials, RateLimited), errors_of)


@router.post("/signup")
async def signup_submit(request: Request, session: SessionDep, form: PageForm) -> Response:
    async def sign(response: Response, email: str, password: str) -> None:
        await signup_with_password(session, request, response, email, password)

    def errors_of(exc: KamiyoError) -> dict[str, str]:
        if exc.code == "email_taken":
            return {"email": "An account with this e-mail already exists. Log in instead?"}
        return field_errors(exc, ("email", "password"))

    return await auth_submit(request, form, "signup", sign, (KamiyoError,), errors_of)


@router.post("/logout")
async def logout(request: Request, session: SessionDep, _csrf: ValidCsrf) -> Response:
    response = see_other("/")
    await sessions.logout(session, request, response)
    return response


# ---------------------------------------------------------------- API keys


async def keys_page(
    request: Request, session: SessionDep, user: User, *, status: int = 200, **context: Any
) -> Response:
    context.setdefault("errors", {})
    context.setdefault("name", "")
    keys = await accounts.list_keys(session, user.id)
    return account_html(request, "keys.html", "API keys", user, status=status, keys=keys, **context)


@router.get("/app/keys")
async def keys(request: Request, session: SessionDep, user: PageUser, revoked: str | None = None) -> Response:
    return await keys_page(request, session, user, notice="The key was revoked." if revoked else None)


@router.post("/app/keys")
async def create_key(request: Request, session: SessionDep, user: PageUser, form: PageForm) -> Response:
    name = form.text("name")
    if not form.csrf_ok:
        return await keys_page(request, session, user, status=403, name=name, errors={"form": CSRF_MESSAGE})
    if len(name) > 100:
        return await keys_page(request, session, user, status=422, name=name, errors={"name": "At most 100 characters"})
    try:
        key, raw = await accounts.create_key(session, user.id, name or None)
    except KamiyoError as exc:
        return await keys_page(request, session, user, status=exc.status, name=name, errors={"form": exc.message})
    return await keys_page(request, session, user, status=201, new_key=raw, new_key_name=key.name)


@router.post("/app/keys/{key_id}/revoke")
async def revoke_key(
    session: SessionDep, user: PageUser, _csrf: ValidCsrf, key_id: Annotated[int, row_id("API key id.")]
) -> Response:
    await accounts.revoke_key(session, user.id, key_id)
    return see_other("/app/keys?revoked=1")


# ---------------------------------------------------------------- billing and pricing


async def billing_page(
    request: Request, session: SessionDep, settings: SettingsDep, user: User, *, status: int = 200, **context: Any
) -> Response:
    try:
        subscription: dict[str, Any] | None = await billing.subscription_status(session, settings, user)
    except BillingNotConfigured:
        subscription = None
    return account_html(
        request,
        "billing.html",
        "Billing",
        user,
        status=status,
        subscription=subscription,
        configured=subscription is not None,
        errors=context.pop("errors", {}),
        **context,
    )


@router.get("/app/billing")
async def billing_view(
    request: Request, session: SessionDep, settings: SettingsDep, user: PageUser, checkout: str | None = None
) -> Response:
    return await billing_page(request, session, settings, user, notice=CHECKOUT_NOTICES.get(checkout or ""))


@router.post("/app/billing/portal")
async def billing_portal(
    request: Request, session: SessionDep, settings: SettingsDep, user: PageUser, form: PageForm
) -> Response:
    if not form.csrf_ok:
        return await billing_page(request, session, settings, user, status=403, errors={"form": CSRF_MESSAGE})
    try:
        url = await billing.open_portal(session, settings, user)
    except KamiyoError as exc:
        message = (
            "You have no subscription yet: choose a plan first." if exc.code == "no_billing_account" else exc.message
        )
        return await billing_page(request, session, settings, user, status=exc.status, errors={"form": message})
    return see_other(url)


def pricing_page(request: Request, settings: SettingsDep, user: User | None, **context: Any) -> Response:
    priced = [name for name, tier in TIERS.items() if stripe_price(settings, tier)]
    return render_html(
        request,
        "pricing.html",
        status=context.pop("status", 200),
        title="Pricing · Kamiyo",
        user=user,
        tiers=list(TIERS.values()),
        configured=bool(settings.stripe_secret_key),
        priced=priced,
        errors=context.pop("errors", {}),
    )


@router.get("/pricing")
async def pricing(request: Request, settings: SettingsDep, user: OptionalUser) -> Response:
    return pricing_page(request, settings, user)


@router.post("/pricing/checkout")
async def checkout(
    request: Request, session: SessionDep, settings: SettingsDep, user: OptionalUser, form: PageForm
) -> Response:
    if user is None:  # a visitor choosing a plan signs up first
        return see_other("/signup?next=/pricing")
    tier = form.values.get("tier", "")
    if not form.csrf_ok:
        return pricing_page(request, settings, user, status=403, errors={"form": CSRF_MESSAGE})
    try:
        url = await billing.start_checkout(session, settings, user, tier)
    except KamiyoError as exc:
        return pricing_page(request, settings, user, status=exc.status, errors={"form": exc.message})
    return see_other(url)
