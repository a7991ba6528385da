"""Start uvicorn with SageMaker's settings: port, worker processes, timeouts."""

import math

import uvicorn

from model.settings import Settings


def main() -> int:
    settings = Settings()
    uvicorn.run(
        "model.serving.app:create_app",
        factory=True,
        host=settings.bind_host,
        port=settings.port,
        workers=settings.workers,
        http="model.serving.protocol:BoundedHttpToolsProtocol",
        # At least 1 s: with 0, a new connection could be closed before its first request.
        timeout_keep_alive=max(1, math.ceil(settings.timeout_seconds)),
        log_level="warning",
    )
    return 0
