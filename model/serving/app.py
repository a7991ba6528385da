"""`serve`: the SageMaker inference contract over FastAPI.

GET /ping, POST /invocations, GET /execution-parameters. See
https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-inference-code.html
"""

import asyncio
import logging
import os
from contextlib import asynccontextmanager

import orjson
import torch
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from model.serving import openapi
from model.serving.batching import DynamicBatcher
from model.serving.predictor import Predictor, load_predictor
from model.serving.requests import (
    JSONLINES_TYPES,
    MAX_PAYLOAD_BYTES,
    BadRequest,
    parse_invocation,
    request_type,
    response_type,
)
from model.settings import Settings

log = logging.getLogger("postwerk.serving")
JSON = "application/json"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Workers share the cores; each gets its slice so they do not fight over them.
        threads = max(1, (os.cpu_count() or 1) // settings.workers)
        torch.set_num_threads(threads)
        predictor = await asyncio.to_thread(
            load_predictor,
            settings.base_dir / "model",
            settings.max_batch_size,
            settings.quantize_int8,
            settings.engine,
            threads,
            settings.precision,
            settings.pass_size,
        )
        batcher = DynamicBatcher(
            predictor.predict, settings.max_batch_size, settings.batch_gather_ms / 1000
        )
        batcher.start()
        app.state.predictor, app.state.batcher = predictor, batcher
        yield
        await batcher.stop()

    app = FastAPI(title="postwerk model", lifespan=lifespan)

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, error: BadRequest) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=error.status)

    @app.get("/ping")
    async def ping(request: Request) -> dict:
        return {"status": "ok", "model": request.app.state.predictor.model_identity}

    @app.get("/execution-parameters")
    async def execution_parameters() -> dict:
        """What SageMaker batch transform should send this container."""
        return {
            "MaxConcurrentTransforms": settings.workers,
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": MAX_PAYLOAD_BYTES // (1024 * 1024),
        }

    @app.post("/invocations", openapi_extra=openapi.invocations(settings.max_instances))
    async def invocations(request: Request) -> Response:
        headers = request.headers
        content_type = request_type(headers.get("content-type"), headers.get("content-encoding"))
        accept = response_type(headers.get("accept"), content_type)
        body = await read_body(request)
        instances, top_k, embed = parse_invocation(body, content_type, settings.max_instances)
        texts = [instance.model_text() for instance in instances]
        predictor: Predictor = request.app.state.predictor
        try:
            predictions = await asyncio.wait_for(
                request.app.state.batcher.predict(texts, top_k or settings.top_k),
                timeout=settings.timeout_seconds,
            )
        except TimeoutError:
            error = f"model timed out after {settings.timeout_seconds} s"
            return JSONResponse({"error": error}, status_code=504)
        rows = [
            {"id": instance.id, "label": p.label, "score": p.score, "top_k": p.top_k}
            | ({"review_threshold": p.review_threshold} if p.review_threshold is not None else {})
            | ({"embedding": p.embedding} if embed else {})
            for instance, p in zip(instances, predictions, strict=True)
        ]
        identity = predictor.model_identity
        if accept in JSONLINES_TYPES:
            lines = b"".join(dumps(row | {"model": identity}) + b"\n" for row in rows)
            return Response(lines, media_type=accept)
        return Response(dumps({"predictions": rows, "model": identity}), media_type=JSON)

    return app


def dumps(document: dict) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)


async def read_body(request: Request) -> bytes:
    """The body, refusing payloads over 6 MB before reading them when the size is declared."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_PAYLOAD_BYTES:
        raise BadRequest(413, f"payload over {MAX_PAYLOAD_BYTES} bytes")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_PAYLOAD_BYTES:
                raise BadRequest(413, f"payload over {MAX_PAYLOAD_BYTES} bytes")
    except ClientDisconnect:
        log.warning("a client went away before the end of its body (%d bytes read)", len(body))
        raise BadRequest(400, "the body ended early") from None  # an answer to no one
    return bytes(body)
