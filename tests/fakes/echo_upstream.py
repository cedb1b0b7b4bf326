"""An upstream that hands back what it was sent, as a debugging or company proxy in front of
the Messages API may: every request's headers, in a JSON body and in response headers, or as
an SSE stream that cuts each header across two writes (the key split between chunks)."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from aiohttp import web


class EchoUpstream:
    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        self.url = f"http://127.0.0.1:{self.port}"

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._echo)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return site._server.sockets[0].getsockname()[1]   # type: ignore[union-attr]

    async def _echo(self, request: web.Request) -> web.StreamResponse:
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.seen.append(headers)
        body = await request.read()
        try:
            streamed = json.loads(body).get("stream") is True
        except (ValueError, AttributeError):
            streamed = False
        if not streamed:
            data = json.dumps({"type": "echo", "headers": headers, "body": body.decode()})
            # Echoed back as response headers too (X-Echo-<name>).
            echoed = {f"X-Echo-{k}": v for k, v in headers.items() if k in (
                "x-api-key", "authorization")}
            return web.Response(text=data, content_type="application/json", headers=echoed)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for name, value in headers.items():
            event = f"event: echo\ndata: {json.dumps({name: value})}\n\n".encode()
            half = len(event) // 2
            await response.write(event[:half])
            await asyncio.sleep(0.01)
            await response.write(event[half:])
        await response.write_eof()
        return response

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def __enter__(self) -> EchoUpstream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
