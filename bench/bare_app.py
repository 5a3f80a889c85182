"""The floor for ack latency: a Bolt AsyncApp on the same server stack as the bot
(aiohttp, Bolt's request parsing and verification, auth.test cached) that only acks.

    python -m bench.bare_app PORT SLACK_API_URL SIGNING_SECRET BOT_TOKEN
"""

from __future__ import annotations

import sys
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient


def main() -> None:
    port, api_url, secret, token = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    app = AsyncApp(client=AsyncWebClient(token=token, base_url=api_url), signing_secret=secret)

    @app.command("/autorepay")
    async def only_ack(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack(text="ok", response_type="ephemeral")

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ready": True})

    server = web.Application()
    server.router.add_post("/slack/events", events)
    server.router.add_get("/healthz", healthz)
    web.run_app(server, host="127.0.0.1", port=int(port), print=None, access_log=None)


if __name__ == "__main__":
    main()
