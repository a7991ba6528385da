"""The container entry point: SageMaker runs `<image> train` or `<image> serve`."""

import sys

from model.console import quiet_libraries

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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
