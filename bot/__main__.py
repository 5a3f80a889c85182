"""`python -m bot`: see bot.cli. Signals are handled before anything else is imported, so
a SIGTERM or Ctrl-C in the first moments ends the process quietly with exit 0."""

import signal
import sys


def _quiet_exit(signum: int, frame: object) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _quiet_exit)
    signal.signal(signal.SIGINT, _quiet_exit)
    from bot.cli import main

    sys.exit(main())
