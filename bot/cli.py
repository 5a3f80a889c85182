"""python -m bot [--http] [--port N]                                 run the bot
python -m bot credentials set|delete|check [--account NAME | --demo]
                                  an account's OKX key in the OS keyring (default: live)
python -m bot audit [--since DATE] [--until DATE] [--account NAME] [--format jsonl|csv]
                                  the audit log on stdout, oldest first (reads AUTOREPAY_DB)
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

from dotenv import load_dotenv
from dotenv.parser import parse_stream

from bot.config import report


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m bot", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    root.add_argument("--http", action="store_true", help="HTTP mode even if SLACK_APP_TOKEN")
    root.add_argument("--port", type=int, help="HTTP port (default: PORT or 3000)")
    sub = root.add_subparsers(dest="command")
    creds = sub.add_parser("credentials",
                           help="manage an account's OKX credentials in the OS keyring")
    creds.add_argument("action", choices=["set", "delete", "check"])
    creds.add_argument("--account", metavar="NAME",
                       help="one of the accounts AUTOREPAY_ACCOUNTS names (default: live)")
    creds.add_argument("--demo", action="store_true", help="short for --account demo")
    audit = sub.add_parser(
        "audit", help="print the audit log (JSON Lines or CSV)",
        description="The audit log on stdout, oldest first: at (UTC), event, actor, "
                    "request_id, account, detail. Reads AUTOREPAY_DB (default autorepay.db) "
                    "and nothing else; works beside the running bot.")
    audit.add_argument("--since", metavar="DATE",
                       help="from this moment on: YYYY-MM-DD or an ISO 8601 date-time "
                            "(UTC unless it has Z or an offset)")
    audit.add_argument("--until", metavar="DATE",
                       help="before this moment; a bare date includes that whole day")
    audit.add_argument("--account", metavar="NAME", help="only this account's records")
    audit.add_argument("--format", choices=["jsonl", "csv"], default="jsonl",
                       help="JSON Lines (default) or CSV with a header row")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    problems = read_dotenv(Path.cwd() / ".env")
    if problems:
        return report(problems)
    environ = dict(os.environ)
    if args.command in ("credentials", "audit"):
        # A person at a prompt or a pipe: Ctrl-C is KeyboardInterrupt again (exit 130),
        # SIGTERM ends.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if args.command == "credentials":
        from bot.credentials_cli import credentials_command

        return credentials_command(args.action, args.account, args.demo, environ)
    if args.command == "audit":
        from bot.audit_cli import export_audit  # no Slack or OKX settings needed

        return export_audit(environ, since=args.since, until=args.until,
                            account=args.account, fmt=args.format)
    return run(environ, force_http=args.http, port=args.port)


def read_dotenv(path: Path) -> list[str]:
    """Load `.env` into the environment (the real environment wins); what is wrong with
    it, one line each. A line python-dotenv can't parse, or a name without `=`, is an
    error rather than a warning: the value meant for it would be silently missing."""
    if not path.is_file():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return [f"{path.name} is not UTF-8 text: save it as UTF-8"]
    except OSError as exc:
        return [f"{path.name} cannot be read: {exc.strerror}"]
    problems = []
    for binding in parse_stream(io.StringIO(text)):
        line = binding.original.line
        if binding.error:
            problems.append(f"{path.name} line {line} is not NAME=value")
        elif binding.key and binding.value is None:
            problems.append(f"{path.name} line {line}: {binding.key} has no value "
                            f"(write {binding.key}=…, or delete the line)")
    if not problems:
        load_dotenv(stream=io.StringIO(text), override=False)
    return problems


def run(environ: Mapping[str, str], *, force_http: bool, port: int | None) -> int:
    from bot.lifecycle import serve  # its imports take a while; signals are handled already

    return asyncio.run(serve(environ, force_http=force_http, port=port))
