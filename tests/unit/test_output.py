"""The console `postwerk` prints through: a live display on a terminal must not feed the
console its own output (Rich's Live points sys.stdout back at the console)."""

import threading

from rich.console import Console
from rich.live import Live

from postwerk.output import StdoutThatMayVanish


def test_output_under_a_live_display_on_a_terminal_reaches_stdout_once(capsys):
    console = Console(file=StdoutThatMayVanish(), force_terminal=True, width=60)

    def show() -> None:
        with Live("counts", console=console, auto_refresh=False) as live:
            print("a line from print")  # through Live's redirect of sys.stdout
            console.print("a line from the console")
            live.update("new counts", refresh=True)

    shown = threading.Thread(target=show, daemon=True)  # a feedback loop spins forever
    shown.start()
    shown.join(timeout=10)
    assert not shown.is_alive(), "the console kept writing into itself"
    output = capsys.readouterr().out
    assert output.count("a line from print") == 1
    assert output.count("a line from the console") == 1
    assert "new counts" in output
