"""Start uvicorn with SageMaker's settings: port, worker processes, timeouts."""

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
        timeout_keep_alive=int(settings.timeout_seconds),
        log_level="warning",
    )
    return 0
