"""The serving baseline of bench.serving: a plain `transformers.pipeline` behind FastAPI.

What most people would write first: one pipeline, called once per request from an async
endpoint (the call runs on the event loop, one request at a time), no batching across
requests. It speaks the subset of our /invocations that the benchmark sends
({"instances": [{"id", "text" | "subject", "body"}]} or {"inputs": "text"}; subject and
body joined as our server joins them), and truncates to the model's
max_length (model_info.json) like our predictor.

    python -m bench.baseline_server --model DIR --port 8081
"""

import argparse
import json
import os
from pathlib import Path

import torch
import uvicorn
from fastapi import FastAPI
from transformers import pipeline

from model.console import quiet_libraries
from model.data import email_text


def create_app(model_dir: Path) -> FastAPI:
    torch.set_num_threads(os.cpu_count() or 1)  # the same threads as our single worker
    classifier = pipeline("text-classification", model=str(model_dir), top_k=3, device="cpu")
    info_file = model_dir / "model_info.json"
    info = json.loads(info_file.read_text()) if info_file.exists() else {}
    max_length = info.get("max_length", 128)
    app = FastAPI(title="baseline: transformers.pipeline per request")

    @app.get("/ping")
    async def ping() -> dict:
        return {"status": "ok"}

    @app.post("/invocations")
    async def invocations(payload: dict) -> dict:
        if "instances" in payload:
            instances = [{"id": i.get("id"), "text": text_of(i)} for i in payload["instances"]]
        else:
            inputs = payload["inputs"]
            texts = [inputs] if isinstance(inputs, str) else inputs
            instances = [{"id": None, "text": text} for text in texts]
        ranked = classifier([i["text"] for i in instances], truncation=True, max_length=max_length)
        return {
            "predictions": [
                {"id": i["id"], "label": top[0]["label"], "score": top[0]["score"], "top_k": top}
                for i, top in zip(instances, ranked, strict=True)
            ]
        }

    return app


def text_of(instance: dict) -> str:
    if "text" in instance:
        return instance["text"]
    return email_text(instance.get("subject", ""), instance.get("body", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args()
    quiet_libraries()
    uvicorn.run(create_app(args.model), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
