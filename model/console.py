"""What the model container and the benchmarks print: our own lines, not library noise."""

import logging
import sys


def quiet_libraries() -> None:
    """Log our lines to stdout; no download bars or load reports from transformers."""
    import transformers

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
