"""HTTP/1.1 for the serving container: uvicorn's httptools protocol, bounded.

uvicorn bounds neither the request head nor the time a client takes to send it or its
body: a body shorter than its Content-Length hangs, a client sending a byte a second holds
its connection forever, and headers of 64 MB are buffered. Here (see model.settings):
- a request target over max_request_target_bytes: 414;
- more than max_headers header fields, or over max_header_bytes of them: 431;
- request line and headers not in within header_timeout_seconds of their first byte, or a
  body not in within body_timeout_seconds of the headers: 408;
- a silent new connection is closed after the keep-alive timeout, like an idle one;
- beyond max_idle_connections connections without a request in progress, the longest idle
  is closed, so slow clients cannot crowd out /ping and normal ones.
Every refusal is a JSON {"error": reason} like the application's, and closes the connection.
"""

import functools
import json
import time

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from model.settings import Settings

HEAD_SLACK_BYTES = 1024  # the request line's method and version, and line ends


@functools.cache
def limits() -> Settings:
    return Settings()


class Refused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.limits = limits()
        self.refusal: Refused | None = None
        self.in_head = True  # waiting for, or reading, a request line and headers
        self.head_bytes = 0  # received since the current head began (an upper bound)
        self.header_bytes = 0
        self.idle_since = time.monotonic()
        self.head_timer = self.body_timer = None

    # Connections

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        # uvicorn arms its keep-alive timeout after a response only: a silent client too.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )
        self.close_idle_beyond_bound()

    def connection_lost(self, exc: Exception | None) -> None:
        self.cancel_timers()
        super().connection_lost(exc)

    def idle(self) -> bool:
        return self.in_head and (self.cycle is None or self.cycle.response_complete)

    def close_idle_beyond_bound(self) -> None:
        idle = [c for c in self.connections if isinstance(c, type(self)) and c.idle()]
        excess = len(idle) - self.limits.max_idle_connections
        for connection in sorted(idle, key=lambda c: c.idle_since)[: max(excess, 0)]:
            connection.transport.close()

    # Data and parser callbacks

    def data_received(self, data: bytes) -> None:
        if self.in_head:
            if self.head_timer is None:
                self.head_timer = self.loop.call_later(
                    self.limits.header_timeout_seconds,
                    self.refuse,
                    Refused(408, f"headers not received in {self.limits.header_timeout_seconds} s"),
                )
            self.head_bytes += len(data)
        super().data_received(data)
        # A head still unfinished but already over its bound: refuse before buffering more.
        head_bound = (
            self.limits.max_request_target_bytes + self.limits.max_header_bytes + HEAD_SLACK_BYTES
        )
        if self.in_head and self.head_bytes > head_bound and not self.transport.is_closing():
            self.refuse(Refused(431, f"request head over {head_bound} bytes"))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.header_bytes = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.max_request_target_bytes:
            raise self.refused(
                414, f"request target over {self.limits.max_request_target_bytes} bytes"
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self.header_bytes += len(name) + len(value)
        if len(self.headers) > self.limits.max_headers:
            raise self.refused(431, f"more than {self.limits.max_headers} header fields")
        if self.header_bytes > self.limits.max_header_bytes:
            raise self.refused(431, f"header fields over {self.limits.max_header_bytes} bytes")

    def on_headers_complete(self) -> None:
        self.in_head, self.head_bytes = False, 0
        self.cancel_timers()
        self.body_timer = self.loop.call_later(
            self.limits.body_timeout_seconds,
            self.refuse,
            Refused(408, f"body not received in {self.limits.body_timeout_seconds} s"),
        )
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.in_head = True
        self.cancel_timers()

    def on_response_complete(self) -> None:
        self.idle_since = time.monotonic()
        super().on_response_complete()

    # Refusals

    def refused(self, status: int, reason: str) -> Refused:
        """For a parser callback to raise: uvicorn then calls send_400_response."""
        self.refusal = Refused(status, reason)
        return self.refusal

    def send_400_response(self, msg: str) -> None:
        self.refuse(self.refusal or Refused(400, "the request line or headers do not parse"))

    def refuse(self, refusal: Refused) -> None:
        """Answer with the refusal where it can be the answer, and close."""
        self.cancel_timers()
        cycle = self.cycle
        between_requests = cycle is None or (self.in_head and cycle.response_complete)
        late_body = not self.in_head and not cycle.response_started
        if late_body:
            cycle.disconnected = True  # the application's answer, if any, goes nowhere
            cycle.message_event.set()
        if (between_requests or late_body) and not self.transport.is_closing():
            self.transport.write(self.error_response(refusal))
        self.transport.close()

    def error_response(self, refusal: Refused) -> bytes:
        body = json.dumps({"error": refusal.reason}).encode()
        head = [STATUS_LINE[refusal.status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        return b"".join(head) + body

    def cancel_timers(self) -> None:
        for timer in (self.head_timer, self.body_timer):
            if timer is not None:
                timer.cancel()
        self.head_timer = self.body_timer = None
