"""python -m bot [--http] [--port N]            run the bot
python -m bot credentials set|delete|check [--demo]   manage OKX keys in the OS keyring
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from dotenv import load_dotenv

from bot.credentials import Account
from bot.credentials_cli import manage_credentials


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m bot", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    root.add_argument("--http", action="store_true", help="HTTP mode even if SLACK_APP_TOKEN")
    root.add_argument("--port", type=int, help="HTTP port (default: PORT or 3000)")
    sub = root.add_subparsers(dest="command")
    creds = sub.add_parser("credentials", help="manage OKX credentials in the OS keyring")
    creds.add_argument("action", choices=["set", "delete", "check"])
    creds.add_argument("--demo", action="store_true", help="the demo-trading account")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    load_dotenv(Path.cwd() / ".env", override=False)  # the real environment wins
    args = parser().parse_args(argv)
    environ = dict(os.environ)
    if args.command == "credentials":
        account = Account.DEMO if args.demo else Account.LIVE
        return manage_credentials(args.action, account, environ)
    return run(environ, force_http=args.http, port=args.port)


def run(environ: Mapping[str, str], *, force_http: bool, port: int | None) -> int:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, quiet_exit)
    from bot.lifecycle import serve  # after the signal handlers: its imports take a while

    return asyncio.run(serve(environ, force_http=force_http, port=port))


def quiet_exit(signum: int, frame: object) -> None:
    """SIGTERM or Ctrl-C before the bot is running: nothing to drain, exit 0."""
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
