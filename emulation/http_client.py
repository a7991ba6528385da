"""The one HTTP client of emulation/: aiohttp.

aiohttp because the SageMaker service's hop to its replicas is all the latency InvokeEndpoint
adds (bench.invoke: target < 2 ms at p50), and with httpx's asyncio client instead the
service spent 2.77 ms of CPU per call instead of 1.56 (added p50 +2.83 ms against +1.67).
Synchronous code (the health probes, MiniStack's reset, batch transform's parameters) calls
it through `request`, which runs one request on an event loop of its own.
"""

import asyncio

import aiohttp

# What a request raises when no answer comes: refused, reset, or past its timeout.
NO_ANSWER = (aiohttp.ClientError, TimeoutError)


def request(method: str, url: str, timeout: float, **options) -> tuple[int, bytes]:
    """One request from synchronous code: the answer's status and body. `options` are
    aiohttp's (data=, headers=, ...); NO_ANSWER when none comes."""

    async def send() -> tuple[int, bytes]:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.request(method, url, **options) as answer,
        ):
            return answer.status, await answer.read()

    return asyncio.run(send())


def answers(url: str, timeout: float = 1) -> bool:
    """True when GET `url` answers 200 within `timeout` seconds."""
    try:
        return request("GET", url, timeout)[0] == 200
    except NO_ANSWER:
        return False
