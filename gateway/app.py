"""The FastAPI application: routes, error handlers and the service clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gateway.clients import Clients
from gateway.config import DEV_TOKENS, GatewaySettings
from gateway.errors import install_error_handlers
from gateway.routes import health, members
from gateway.routes import ledger
from services.common.config import CommonSettings
from services.common.identity import CachingSigner, signer_from
from services.common.logs import get_logger

log = get_logger(__name__)


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.clients = Clients.connect(settings)
        if any(token in DEV_TOKENS for token in settings.api_tokens):
            log.warning("the development token is accepted; set CROWDPACK_GATEWAY_API_TOKENS in production")
        log.info("gateway started", http=f"http://{settings.host}:{settings.port}")
        yield
        await app.state.clients.close()

    app = FastAPI(title="Crowdpack gateway", version="1", lifespan=lifespan)
    app.state.settings = settings
    app.state.signer = CachingSigner(signer_from(CommonSettings(), issuer="gateway", ttl_s=settings.identity_ttl_s))
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(members.router)
    app.include_router(ledger.router)
    return app
