"""The one error type of the `postwerk` command: a failure the user reads (one line), not a
bug, with the exit status scripts can trust."""

RAN_AND_FAILED = 1  # the job or call ran and failed; the reason is printed
COULD_NOT_START = 2  # bad input, AWS unreachable or refusing, the local AWS not running


class CommandError(Exception):
    def __init__(self, message: str, code: int = COULD_NOT_START):
        super().__init__(message)
        self.code = code
