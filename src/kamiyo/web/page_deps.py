"""What every dashboard page handler needs before its own work: the logged-in user and the submitted form.

- `PageUser`: the logged-in user; a visitor is sent to `/login?next=<this path>` (303) instead, so no handler
  tests for a missing user. A dependency (or a page's helper) ends a request with its own answer by raising
  `Answered`, which `install_page_deps` sends.
- `AdminUser`: the same, and 403 unless the user is an admin.
- `PageForm`: the submitted form, read once, and whether its CSRF token was valid. A handler answers a bad
  token by rendering its own form again with `CSRF_MESSAGE` (403), so the visitor keeps what they typed;
  `ValidCsrf` is for the forms that have nothing to show again (log out, revoke): a plain 403 page.
- `PagePost`: all of these with the session and settings, for the handlers that pass them on together (the
  webhook and channel forms and actions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from kamiyo.accounts.csrf import CsrfFailed, verify_csrf
from kamiyo.accounts.deps import OptionalUser
from kamiyo.accounts.models import User
from kamiyo.api_deps import SessionDep, SettingsDep
from kamiyo.config import Settings
from kamiyo.errors import KamiyoError

CSRF_MESSAGE = "This form expired or did not come from this site. Please submit it again."


def see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


class Answered(Exception):
    """Raised by a page dependency that answers the request itself (the login page, a refused action)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


async def page_user(request: Request, user: OptionalUser) -> User:
    if user is None:
        raise Answered(see_other(f"/login?next={request.url.path}"))
    return user


PageUser = Annotated[User, Depends(page_user)]


async def admin_user(user: PageUser) -> User:
    if not user.is_admin:
        raise KamiyoError("this page is for admins", status=403, code="forbidden")
    return user


AdminUser = Annotated[User, Depends(admin_user)]


@dataclass(frozen=True, slots=True)
class SubmittedForm:
    """A page's submitted form: every field (`data`), its text fields (`values`), and whether the token was valid."""

    data: FormData
    values: dict[str, str]
    csrf_ok: bool

    def text(self, name: str) -> str:
        """A text field, trimmed ("" when absent)."""
        return self.values.get(name, "").strip()


async def page_form(request: Request) -> SubmittedForm:
    data = await request.form()
    try:
        await verify_csrf(request)
    except CsrfFailed:
        csrf_ok = False
    else:
        csrf_ok = True
    return SubmittedForm(data, {key: value for key, value in data.items() if isinstance(value, str)}, csrf_ok)


PageForm = Annotated[SubmittedForm, Depends(page_form)]
ValidCsrf = Annotated[None, Depends(verify_csrf)]


@dataclass(frozen=True, slots=True)
class Posted:
    """A logged-in user's form, posted to a page, with what its handler works with."""

    request: Request
    session: AsyncSession
    settings: Settings
    user: User
    form: SubmittedForm


async def posted(
    request: Request, session: SessionDep, settings: SettingsDep, user: PageUser, form: PageForm
) -> Posted:
    return Posted(request, session, settings, user, form)


PagePost = Annotated[Posted, Depends(posted)]


def install_page_deps(app: FastAPI) -> None:
    @app.exception_handler(Answered)
    async def _answer(_request: Request, exc: Answered) -> Response:
        return exc.response
