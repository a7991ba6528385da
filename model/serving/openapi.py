"""The OpenAPI description of POST /invocations: its two request types and every answer.

FastAPI cannot see the contract (the handler reads the raw body, see requests.py), so it is
spelled out here for clients, client generators and `make fuzz`; a test keeps it true.
"""

from model.serving.requests import JSON_TYPES, JSONLINES_TYPES

ERRORS = {
    400: "Malformed or mistyped input (the reason names the field)",
    406: "The Accept header allows neither JSON nor JSON Lines",
    408: "Request headers or body not received in time",
    413: "Payload over 6 MB, or more instances than POSTWERK_MAX_INSTANCES",
    414: "Request target too long",
    415: "Content type other than JSON or JSON Lines, a charset other than UTF-8, "
    "or a Content-Encoding",
    431: "Too many header fields, or too large",
    504: "The model did not answer within SAGEMAKER_MODEL_SERVER_TIMEOUT",
}

TEXT = {"type": "string"}
INSTANCE = {
    "description": "An e-mail ('subject' and/or 'body') or a text; 'id' is echoed back",
    "type": "object",
    "properties": {
        "id": {"anyOf": [TEXT, {"type": "integer"}]},
        "text": TEXT,
        "subject": TEXT,
        "body": TEXT,
    },
    "additionalProperties": False,
    "anyOf": [{"required": ["text"]}, {"required": ["subject"]}, {"required": ["body"]}],
}
TOP_K = {"type": "integer", "minimum": 1, "description": "labels per prediction (default 3)"}
EMBED = {"type": "boolean", "description": "answer with each text's embedding too"}
SCORED = {
    "type": "object",
    "properties": {"label": TEXT, "score": {"type": "number"}},
    "required": ["label", "score"],
}
MODEL = {
    "type": "object",
    "properties": {"name": TEXT, "version": TEXT},
    "required": ["name", "version"],
}
PREDICTION = {
    "type": "object",
    "properties": {
        "id": {"anyOf": [TEXT, {"type": "integer"}, {"type": "null"}]},
        "label": TEXT,
        "score": {"type": "number"},
        "top_k": {"type": "array", "items": SCORED},
        "review_threshold": {
            "type": "number",
            "description": "the label's review threshold from calibration.json (absent for "
            "a model without one): a score below it needs review",
        },
        "embedding": {
            "type": "array",
            "items": {"type": "number"},
            "description": "only when asked: the mean-pooled, L2-normalised second-to-last layer",
        },
    },
    "required": ["id", "label", "score", "top_k"],
}
ERROR = {"type": "object", "properties": {"error": TEXT}, "required": ["error"]}


def invocations(max_instances: int) -> dict:
    """The operation's requestBody and responses, for FastAPI's openapi_extra."""
    instances = {
        "type": "array",
        "items": {"anyOf": [INSTANCE, TEXT]},
        "minItems": 1,
        "maxItems": max_instances,
    }
    json_body = {
        "oneOf": [
            {
                "type": "object",
                "properties": {"instances": instances, "top_k": TOP_K, "embed": EMBED},
                "required": ["instances"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": {
                    "inputs": {"anyOf": [TEXT, instances | {"items": TEXT}]},
                    "top_k": TOP_K,
                    "embed": EMBED,
                },
                "required": ["inputs"],
                "additionalProperties": False,
            },
        ]
    }
    lines = instances | {"description": "one instance per line, each a JSON value"}
    answer = {
        "type": "object",
        "properties": {"predictions": {"type": "array", "items": PREDICTION}, "model": MODEL},
        "required": ["predictions", "model"],
    }
    answer_lines = {"type": "string", "description": "one prediction per line, with 'model'"}
    return {
        "requestBody": {
            "required": True,
            "content": {kind: {"schema": json_body} for kind in JSON_TYPES}
            | {kind: {"schema": lines} for kind in sorted(JSONLINES_TYPES)},
        },
        "responses": {
            "200": {
                "description": "One prediction per instance, in order (the Accept header "
                "chooses the type; by default the request's own)",
                "content": {kind: {"schema": answer} for kind in JSON_TYPES}
                | {kind: {"schema": answer_lines} for kind in sorted(JSONLINES_TYPES)},
            },
        }
        | {
            str(status): {
                "description": reason,
                "content": {"application/json": {"schema": ERROR}},
            }
            for status, reason in ERRORS.items()
        },
    }
