"""The container entry point: SageMaker runs `<image> train` or `<image> serve`."""

import logging
import sys

USAGE = "usage: python -m model {train|serve}"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("train", "serve"):
        print(USAGE, file=sys.stderr)
        return 2
    quiet_libraries()
    if argv[0] == "train":
        from model.train import main as train

        return train()
    from model.serving.server import main as serve

    return serve()


def quiet_libraries() -> None:
    """Our own log lines only: no download bars or load reports from transformers."""
    import transformers

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
