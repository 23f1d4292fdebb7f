"""Console sessions: the signed-in person's tokens live on the server; the browser holds only an id.

Signing in is a plain HTTP POST to ``/console/session`` (the page's script sends the form), so
the answer can set the cookie: ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other
site sends it), ``Path=/``. The cookie's value is a random id naming the tokens in this
process's memory; a restart of the gateway signs everyone out. The access token is renewed
with the refresh token when the API says it has expired.

The language is a second, ordinary cookie (``console_lang``): it holds nothing secret and
the sign-in page needs it before anyone is signed in.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.types import ASGIApp

from gateway.console.api import REFRESH_PATH, SIGN_IN_PATH, SIGN_OUT_PATH, Api, ApiError
from gateway.console.i18n import DEFAULT_LANGUAGE, LANGUAGES, Labels

COOKIE = "console_session"
LANG_COOKIE = "console_lang"
IDLE_S = 8 * 3600


@dataclass
class Session:
    access_token: str
    refresh_token: str
    staff_id: str
    name: str
    role: str
    mall_ids: list[str] = field(default_factory=list)
    seen: float = field(default_factory=time.monotonic)
    # Lists the person's pages remembered (Api.call_remembered), by call.
    memory: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict, repr=False)

    @property
    def super_admin(self) -> bool:
        return self.role in ("super_admin", "ROLE_SUPER_ADMIN", "STAFF_ROLE_SUPER_ADMIN")


def _session_of(answer: dict[str, Any]) -> Session:
    """A session from the sign-in answer: tokens, and who signed in."""
    staff = answer.get("staff") or {}
    tokens = answer.get("tokens") or answer
    role = str(staff.get("role") or answer.get("role") or "")
    return Session(access_token=str(tokens["access_token"]), refresh_token=str(tokens.get("refresh_token", "")),
                   staff_id=str(staff.get("staff_id") or answer.get("staff_id") or ""),
                   name=str(staff.get("name") or answer.get("name") or staff.get("staff_id") or ""),
                   role=role.lower().removeprefix("staff_role_").removeprefix("role_"),
                   mall_ids=list(staff.get("mall_ids") or answer.get("mall_ids") or []))


class Sessions:
    """Sessions by cookie id, in memory."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._by_id: dict[str, Session] = {}

    def get(self, sid: str | None) -> Session | None:
        session = self._by_id.get(sid or "")
        if session is None:
            return None
        if time.monotonic() - session.seen > IDLE_S:
            self._by_id.pop(sid or "", None)
            return None
        session.seen = time.monotonic()
        return session

    async def sign_in(self, username: str, password: str) -> tuple[str, Session]:
        answer = await Api(self.app).post(SIGN_IN_PATH, {"login": username, "password": password})
        session = _session_of(answer)
        sid = secrets.token_urlsafe(32)
        self._by_id[sid] = session
        return sid, session

    async def refresh(self, session: Session) -> bool:
        """A new access token from the refresh token; False when the refresh is refused."""
        if not session.refresh_token:
            return False
        try:
            answer = await Api(self.app).post(REFRESH_PATH, {"refresh_token": session.refresh_token})
        except ApiError:
            return False
        tokens = answer.get("tokens") or answer
        session.access_token = str(tokens["access_token"])
        session.refresh_token = str(tokens.get("refresh_token") or session.refresh_token)
        return True

    async def sign_out(self, sid: str | None) -> None:
        """Forgets the session and revokes its refresh token."""
        session = self._by_id.pop(sid or "", None)
        if session is not None and session.refresh_token:
            try:
                await Api(self.app, session.access_token).post(SIGN_OUT_PATH, {"refresh_token": session.refresh_token})
            except ApiError:
                pass  # already expired or revoked: signed out either way

    def api(self, session: Session, labels: Labels | None = None) -> SessionApi:
        """The API as ``session``'s person; errors read in ``labels``' language."""
        return SessionApi(self, session, labels)


class SessionApi(Api):
    """The API as the session's person, renewing the access token once when it has expired."""

    def __init__(self, sessions: Sessions, session: Session, labels: Labels | None = None) -> None:
        super().__init__(sessions.app, session.access_token, labels=labels, memory=session.memory)
        self._sessions, self.session = sessions, session

    async def call(self, rpc: str, request: dict[str, Any] | None = None) -> dict[str, Any]:
        self.access_token = self.session.access_token
        try:
            return await super().call(rpc, request)
        except ApiError as err:
            if not err.unauthenticated or not await self._sessions.refresh(self.session):
                raise
        self.access_token = self.session.access_token
        return await super().call(rpc, request)


def language_of(request: Request) -> str:
    lang = request.cookies.get(LANG_COOKIE, "")
    return lang if lang in LANGUAGES else DEFAULT_LANGUAGE


def router(sessions: Sessions, secure_cookie: bool) -> APIRouter:
    routes = APIRouter(prefix="/console", include_in_schema=False)

    @routes.post("/session")
    async def sign_in(request: Request) -> JSONResponse:
        try:
            form = await request.json()
        except ValueError:
            form = {}
        username = str(form.get("username", "")).strip() if isinstance(form, dict) else ""
        password = str(form.get("password", "")) if isinstance(form, dict) else ""
        try:
            sid, _ = await sessions.sign_in(username, password)
        except ApiError as err:
            return JSONResponse({"error": {"code": err.code, "message": err.message, "field": err.field}},
                                status_code=err.status)
        response = JSONResponse({"signed_in": True})
        response.set_cookie(COOKIE, sid, httponly=True, samesite="strict", secure=secure_cookie, path="/",
                            max_age=IDLE_S)
        return response

    @routes.post("/sign-out")
    async def sign_out(request: Request) -> RedirectResponse:
        await sessions.sign_out(request.cookies.get(COOKIE))
        response = RedirectResponse("/sign-in", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=secure_cookie)
        return response

    @routes.get("/language/{lang}")
    async def language(lang: str, request: Request, back: str = "/") -> RedirectResponse:
        target = back if back.startswith("/") and not back.startswith("//") else "/"
        response = RedirectResponse(target, status_code=303)
        if lang in LANGUAGES:
            response.set_cookie(LANG_COOKIE, lang, samesite="lax", secure=secure_cookie, path="/",
                                max_age=365 * 86400)
        return response

    return routes
