"""What the client scripts share (each runs in its client's own venv, with this folder on
its path): every call recorded as "ok" or its error, printed as one JSON object."""

import json
import sys

results: dict[str, str] = {}


def call(name: str, function, *args, **kwargs):
    """The call's value; on an error, print what happened so far and exit 1."""
    try:
        value = function(*args, **kwargs)
    except Exception as error:
        results[name] = f"{type(error).__name__}: {error}"
        report()
        sys.exit(1)
    results[name] = "ok"
    return value


def report() -> None:
    print("\n" + json.dumps(results))  # on a line of its own, after any progress dots
