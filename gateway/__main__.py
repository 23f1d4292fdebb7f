import gc

import uvicorn

from gateway import console
from gateway.app import create_app
from gateway.config import GatewaySettings
from services.common.logs import configure_logging


def main() -> None:
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level, settings.log_format)
    app = create_app(settings)
    console.mount(app)
    # What the start built (routes, the transcoder's converters, the console, every imported module) lives as long
    # as the process: out of the collector's way, a full collection walks only what requests made (as the services).
    gc.freeze()
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None,
                access_log=False, timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main()
