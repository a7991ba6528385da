"""A script's session with the AWS CLI against the local service: deploy a model, invoke,
update, rescale, transform, tag, delete; every call is `aws sagemaker ...` as a user types it.

Run with the CLI venv's Python: `python cli.py '<json arguments>'`. Prints one JSON object,
client call -> "ok" or the error, and exits 1 when a call failed.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

AWS = str(Path(sys.executable).with_name("aws"))
arguments = json.loads(sys.argv[1])
results: dict[str, str] = {}


def aws(*command: str) -> dict:
    name = " ".join(command[:2])
    done = subprocess.run([AWS, *command, "--output", "json"], capture_output=True, text=True)
    if done.returncode != 0:
        results[name] = done.stderr.strip()[-500:]
        print("\n" + json.dumps(results))
        sys.exit(1)
    results[name] = "ok"
    return json.loads(done.stdout or "{}")


def until(command: list[str], key: str, done: set[str]) -> dict:
    """Poll a describe call (the CLI's own waiters poll every 30 s or more)."""
    for _ in range(600):
        answer = aws(*command)
        if answer[key] in done:
            return answer
        time.sleep(0.5)
    raise SystemExit(f"{' '.join(command)}: still {answer[key]}")


model_data = arguments["model_data"]
container = {
    "Image": "postwerk-model:latest",
    "ModelDataUrl": model_data,
}
model_arn = aws("sagemaker", "create-model", "--model-name", "cli-model",
    "--execution-role-arn", arguments["role"], "--primary-container", json.dumps(container),
    "--tags", "Key=team,Value=routing")["ModelArn"]  # fmt: skip
variant = "VariantName=primary,ModelName=cli-model,InitialInstanceCount=1,InstanceType=ml.m5.large"
for config in ("cli-config", "cli-config-2"):
    aws("sagemaker", "create-endpoint-config", "--endpoint-config-name", config,
        "--production-variants", variant)  # fmt: skip
aws("sagemaker", "create-endpoint", "--endpoint-name", "cli-endpoint",
    "--endpoint-config-name", "cli-config")  # fmt: skip
describe = ["sagemaker", "describe-endpoint", "--endpoint-name", "cli-endpoint"]
until(describe, "EndpointStatus", {"InService", "Failed"})
body = json.dumps({"inputs": ["my invoice is wrong"]})
answer_file = Path(arguments["scratch"]) / "answer.json"
aws("sagemaker-runtime", "invoke-endpoint", "--endpoint-name", "cli-endpoint",
    "--content-type", "application/json", "--body", body, str(answer_file))  # fmt: skip
aws("sagemaker", "update-endpoint", "--endpoint-name", "cli-endpoint",
    "--endpoint-config-name", "cli-config-2")  # fmt: skip
until(describe, "EndpointStatus", {"InService", "Failed"})
aws("sagemaker", "update-endpoint-weights-and-capacities", "--endpoint-name", "cli-endpoint",
    "--desired-weights-and-capacities", "VariantName=primary,DesiredWeight=1")  # fmt: skip
until(describe, "EndpointStatus", {"InService", "Failed"})
aws("sagemaker", "delete-endpoint", "--endpoint-name", "cli-endpoint")

transform = arguments["transform"] | {"ModelName": "cli-model"}
aws("sagemaker", "create-transform-job", "--cli-input-json", json.dumps(transform))
job = until(
    ["sagemaker", "describe-transform-job", "--transform-job-name", transform["TransformJobName"]],
    "TransformJobStatus",
    {"Completed", "Failed", "Stopped"},
)
if job["TransformJobStatus"] != "Completed":
    results["sagemaker describe-transform-job"] = job.get("FailureReason", "")
aws("sagemaker", "list-transform-jobs")
tags = aws("sagemaker", "list-tags", "--resource-arn", model_arn)["Tags"]
if tags != [{"Key": "team", "Value": "routing"}]:
    results["sagemaker list-tags"] = f"tags: {tags}"
aws("sagemaker", "delete-model", "--model-name", "cli-model")
results["prediction"] = answer_file.read_text()[:200]
print("\n" + json.dumps(results))
