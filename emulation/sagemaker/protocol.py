"""AWS's error shapes for the two protocols, and helpers to read requests.

Control plane (awsJson1_1): HTTP 400 with `{"__type": code, "message": ...}`.
Runtime (restJson1): the status of the error shape, the code in `x-amzn-ErrorType`.
"""

import time
from typing import Any


class SageMakerError(Exception):
    def __init__(self, code: str, message: str, status: int = 400, **fields: Any):
        super().__init__(message)
        self.code, self.message, self.status, self.fields = code, message, status, fields

    def body(self) -> dict[str, Any]:
        return {"__type": self.code, "message": self.message, **self.fields}


def validation(message: str) -> SageMakerError:
    return SageMakerError("ValidationException", message)


def not_found(message: str) -> SageMakerError:
    return SageMakerError("ResourceNotFound", message)


def in_use(message: str) -> SageMakerError:
    return SageMakerError("ResourceInUse", message)


def required(request: dict[str, Any], name: str) -> Any:
    value = request.get(name)
    if value in (None, "", [], {}):
        raise validation(
            f"1 validation error detected: Value null at '{name}' failed to satisfy "
            "constraint: Member must not be null"
        )
    return value


def resource_arn(settings, resource_type: str, name: str) -> str:
    """A resource's ARN (`settings`: the service's region and account), its name in lower
    case as AWS writes it."""
    return (
        f"arn:aws:sagemaker:{settings.region}:{settings.account_id}:{resource_type}/{name.lower()}"
    )


def now() -> float:
    """AWS JSON timestamps are epoch seconds."""
    return time.time()


def filter_jobs(
    request: dict[str, Any],
    jobs: list[dict[str, Any]],
    name_key: str,
    status_key: str,
    time_fields: tuple[str, ...] = ("CreationTime",),
) -> list[dict[str, Any]]:
    """The List operations' NameContains, StatusEquals and <field>After/Before filters."""
    if "NameContains" in request:
        jobs = [j for j in jobs if request["NameContains"] in j[name_key]]
    if "StatusEquals" in request:
        jobs = [j for j in jobs if j[status_key] == request["StatusEquals"]]
    for bound, keep in (("After", float.__gt__), ("Before", float.__lt__)):
        for field in time_fields:
            if (moment := request.get(f"{field}{bound}")) is not None:
                jobs = [j for j in jobs if keep(float(j[field]), float(moment))]
    return jobs


def paginate(
    request: dict[str, Any],
    items: list[dict[str, Any]],
    key: str,
    sort_keys: dict[str, str],
    default_sort: str = "CreationTime",
) -> dict[str, Any]:
    """SortBy/SortOrder/MaxResults/NextToken of AWS's List operations (default 10 per page).
    The token is the offset: enough for a local service whose lists change slowly."""
    field = sort_keys.get(request.get("SortBy", default_sort), sort_keys[default_sort])
    items = sorted(
        items,
        key=lambda item: item.get(field, ""),
        reverse=request.get("SortOrder") == "Descending",
    )
    start = int(request.get("NextToken") or 0)
    size = int(request.get("MaxResults") or 10)
    page = {key: items[start : start + size]}
    if start + size < len(items):
        page["NextToken"] = str(start + size)
    return page
