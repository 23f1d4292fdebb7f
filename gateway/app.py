"""The FastAPI application: one route per ``google.api.http`` binding, the OpenAPI document, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import Route

from gateway import openapi
from gateway.auth import API_AUDIENCE
from gateway.bindings import all_bindings
from gateway.clients import Clients
from gateway.config import GatewaySettings
from gateway.errors import install_error_handlers
from gateway.route_index import RouteIndex
from gateway.routes import health
from gateway.transcoder import endpoint
from services.common.config import CommonSettings
from services.common.identity import CachingSigner, signer_from, verifier_from
from services.common.logs import get_logger

log = get_logger(__name__)


def create_app(settings: GatewaySettings | None = None, common: CommonSettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    common = common or CommonSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.clients = Clients.connect(settings)
        log.info("gateway started", http=f"http://{settings.host}:{settings.port}", routes=len(bindings))
        yield
        await app.state.clients.close()

    app = FastAPI(title="Crowdpack gateway", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.settings = settings
    app.state.signer = CachingSigner(signer_from(common, issuer="gateway", ttl_s=settings.identity_ttl_s))
    app.state.access_verifier = verifier_from(common, audience=API_AUDIENCE)
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=True,
                           allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
                           expose_headers=["Content-Disposition", "Retry-After", "X-Row-Count", "X-Truncated"])
    app.include_router(health.router)
    bindings = all_bindings()
    first = len(app.router.routes)
    for binding in bindings:
        app.router.add_route(binding.path, endpoint(binding), methods=[binding.verb], include_in_schema=False)
    # Before the bindings' routes, the index that finds a request's route among the few it could be.
    app.router.routes.insert(first, RouteIndex([r for r in app.router.routes[first:] if isinstance(r, Route)]))
    document = openapi.document(bindings)
    app.state.bindings = bindings

    async def openapi_json() -> JSONResponse:
        return JSONResponse(document)

    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Crowdpack API",
                                   swagger_js_url="/docs/static/swagger-ui-bundle.js",
                                   swagger_css_url="/docs/static/swagger-ui.css", swagger_favicon_url="")

    app.add_api_route("/openapi.json", openapi_json, include_in_schema=False)
    app.add_api_route("/docs", docs, include_in_schema=False)
    app.mount("/docs/static", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-static")
    return app


def routes_of(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves (the route-coverage test reads it)."""
    found: list[tuple[str, str]] = []
    for route in app.router.routes:
        methods: Any = getattr(route, "methods", None) or ()
        found.extend((m, getattr(route, "path", "")) for m in methods)
    return found
