"""python -m bot [--http] [--port N]            run the bot
python -m bot credentials set|delete|check [--demo]   manage OKX keys in the OS keyring
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from aiohttp import web
from dotenv import load_dotenv

from bot import credentials
from bot.app import Runtime, build, socket_mode, web_app
from bot.config import ConfigError, Settings, load_settings, okx_base_url
from bot.credentials import Account, CredentialsError
from okx import Credentials, OkxClient, OkxError

CONFIG_EXIT = 2


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
    try:
        settings = load_settings(environ)
        if port is not None:
            settings = replace(settings, port=port)
        if force_http and not settings.slack_signing_secret:
            raise ConfigError(["SLACK_SIGNING_SECRET is not set: --http needs it"])
        logging.basicConfig(level=settings.log_level,
                            format="%(asctime)s %(levelname)s %(name)s %(message)s")
        runtime = build(settings, environ)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"autorepay: config error: {problem}", file=sys.stderr)
        return CONFIG_EXIT
    if settings.socket_mode and not force_http:
        asyncio.run(run_socket_mode(runtime))
    else:
        serve_http(runtime, settings)
    return 0


def serve_http(runtime: Runtime, settings: Settings) -> None:
    logging.getLogger("bot").info("listening on http://%s:%d/slack/events", settings.host,
                                  settings.port)
    # run_app handles SIGTERM/SIGINT: stops accepting, finishes requests, runs cleanup.
    web.run_app(web_app(runtime), host=settings.host, port=settings.port, print=None,
                access_log=None)


async def run_socket_mode(runtime: Runtime) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await socket_mode(runtime, stop)


def manage_credentials(action: str, account: Account, environ: Mapping[str, str]) -> int:
    try:
        if action == "set":
            credentials.ensure_keyring(account)
            credentials.save(account, prompt_credentials(account))
            print(f"Stored the OKX {account} credentials in the keyring "
                  f"(service {credentials.SERVICE}).")
        elif action == "delete":
            found = credentials.delete(account)
            print(f"Deleted the OKX {account} credentials." if found
                  else f"There were no OKX {account} credentials in the keyring.")
        else:
            return asyncio.run(check_credentials(account, environ))
    except (CredentialsError, ConfigError) as exc:
        print(f"autorepay: {exc}", file=sys.stderr)
        return CONFIG_EXIT
    return 0


def prompt_credentials(account: Account) -> Credentials:
    print(f"OKX {account} API key (from okx.com → API; the input of the last two is hidden)")
    values = (input("API key: ").strip(), getpass.getpass("Secret key: ").strip(),
              getpass.getpass("Passphrase: ").strip())
    if not all(values):
        raise CredentialsError("API key, secret key and passphrase are all needed; "
                               "nothing was stored")
    return Credentials(*values)


async def check_credentials(account: Account, environ: Mapping[str, str]) -> int:
    creds = credentials.load(account, environ)
    async with OkxClient(creds, demo=account.is_demo, base_url=okx_base_url(environ)) as client:
        try:
            config = await client.get_account_config()
        except OkxError as exc:
            print(f"autorepay: OKX {account} check failed: {exc}", file=sys.stderr)
            return 1
    print(f"OKX {account} account: uid {config.uid}" + (f" ({config.label})" if config.label
                                                        else ""))
    print(f"  account mode: {config.mode_name}, borrowing "
          f"{'enabled' if config.enable_spot_borrow else 'disabled'}")
    print(f"  permissions:  {', '.join(config.perm) or 'none reported'}")
    print(f"  auto repay:   {'ON' if config.auto_repay else 'OFF'}"
          + ("" if config.supports_auto_repay else " (does not apply in this mode)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
