"""The admin console: NiceGUI pages served by the gateway at ``/``, calling the gateway's own API.

``mount(app)`` registers the pages (one module per screen under ``gateway/console/pages``),
the session routes and NiceGUI itself on the gateway's FastAPI application. NiceGUI keeps
its pages in one process-wide registry, so a process mounts the console once: the gateway
process does (gateway/__main__.py); in-process API tests build the app without it.
"""

from __future__ import annotations

import importlib

from fastapi import FastAPI, HTTPException

PAGES = ("sign_in", "dashboard", "members", "member_detail", "import_wizard", "crowd_builder", "crowds",
         "settings", "levels", "groups", "tags", "virtual_customers", "alerts", "organisation", "business")


def mount(app: FastAPI, *, secure_cookie: bool = False) -> None:
    from nicegui import ui

    from gateway.console import session
    from gateway.console.layout import Console

    Console.sessions = session.Sessions(app)
    app.include_router(session.router(Console.sessions, secure_cookie))

    @app.api_route("/v1/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    async def no_such_api_route(rest: str) -> None:
        """An API path no route serves stays a JSON 404 rather than falling through to the console's pages."""
        raise HTTPException(status_code=404)

    for name in PAGES:
        importlib.import_module(f"gateway.console.pages.{name}")
    ui.run_with(app, title="Crowdpack", language="zh-CN", favicon="🛍️", show_welcome_message=False,
                reconnect_timeout=10.0)
