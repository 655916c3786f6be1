"""A small HTTP/1.1 client over gevent sockets, enough for the Jupyter Server REST API.

No monkey-patching: http.client would block the whole process without it. One connection
per request (the REST calls are rare: start, interrupt, restart, shutdown), bodies read by
Content-Length, chunked transfer-encoding or until close, each bounded by `max_body`.
"""
from __future__ import annotations

import ipaddress
import json
import logging
from urllib.parse import quote, urlsplit

import gevent
import gevent.socket
from gevent import socket

from .errors import ClientError

log = logging.getLogger(__name__)

MAX_HEAD = 64 * 1024          # response status line + headers
MAX_BODY = 64 * 2 ** 20       # a REST response body (kernel models and specs are small)


class HTTPError(ClientError):
    """The server answered with a non-2xx status (or not with HTTP at all)."""

    def __init__(self, method: str, url: str, status: int, body: bytes = b""):
        self.status, self.body = status, body
        try:
            reason = json.loads(body).get("message") or body[:200].decode("utf-8", "replace")
        except (ValueError, AttributeError):
            reason = body[:200].decode("utf-8", "replace")
        super().__init__(f"{method} {url}: HTTP {status} {reason}".rstrip())


class ServerURL:
    """scheme://host:port/base_url split once; paths are joined under the base URL."""

    def __init__(self, url: str):
        parts = urlsplit(url if "://" in url else "http://" + url)
        if parts.scheme not in ("http", "https", "ws", "wss"):
            raise ValueError(f"unsupported URL scheme in {url!r} (http or https)")
        self.tls = parts.scheme in ("https", "wss")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.tls else 80)
        self.base = parts.path.rstrip("/")
        self.url = f"{'https' if self.tls else 'http'}://{parts.netloc}{self.base}"

    def path(self, *segments: str, query: str = "") -> str:
        p = self.base + "/" + "/".join(quote(s, safe="/") for s in segments)
        return p + ("?" + query if query else "")

    @property
    def host_header(self) -> str:
        default = 443 if self.tls else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


class SocketReader:
    """Buffered reads from a gevent socket: lines for the head, exact sizes for bodies."""

    def __init__(self, sock, chunk: int = 256 * 1024):
        self.sock, self.chunk = sock, chunk
        self.buf = bytearray()
        self.quickack = hasattr(socket, "TCP_QUICKACK")  # Linux only

    def _fill(self) -> bool:
        data = self.sock.recv(self.chunk)
        if self.quickack:
            # ACK at once: the server writes each kernel message separately, and with Nagle
            # on its side and delayed ACKs on ours every execute would wait ~40 ms
            try:
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            except OSError:
                self.quickack = False
        if not data:
            return False
        self.buf += data
        return True

    def readline(self, limit: int = MAX_HEAD) -> bytes:
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > limit:
                raise ClientError(f"HTTP line longer than {limit} bytes")
            if not self._fill():
                raise ConnectionError("connection closed in the middle of a line")

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionError(f"connection closed after {len(self.buf)} of {n} bytes")
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_to_close(self, limit: int) -> bytes:
        while self._fill():
            if len(self.buf) > limit:
                raise ClientError(f"HTTP body larger than {limit} bytes")
        data = bytes(self.buf)
        self.buf.clear()
        return data


def open_socket(url: ServerURL, timeout: float):
    try:
        ip = ipaddress.ip_address(url.host)
    except ValueError:
        # a host name: gevent resolves it in its resolver (by default a thread pool; set
        # GEVENT_RESOLVER=ares or dnspython to stay in one OS thread)
        sock = gevent.socket.create_connection((url.host, url.port), timeout=timeout)
    else:
        # an IP literal: connect directly, no getaddrinfo (and so no resolver thread)
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        sock = gevent.socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect((url.host, url.port))
        except BaseException:
            sock.close()
            raise
    sock.setsockopt(gevent.socket.IPPROTO_TCP, gevent.socket.TCP_NODELAY, 1)
    if url.tls:
        from gevent import ssl  # cooperative ssl; only imported for https servers
        sock = ssl.create_default_context().wrap_socket(sock, server_hostname=url.host)
    sock.settimeout(None)  # callers bound their waits with gevent.Timeout
    return sock


def format_request(method: str, path: str, headers: dict, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def read_head(reader: SocketReader) -> tuple[int, dict]:
    """Status code and headers (names lower-cased)."""
    status_line = reader.readline().decode("latin-1").strip()
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ClientError(f"not an HTTP response: {status_line[:100]!r}")
    headers: dict = {}
    size = 0
    while True:
        line = reader.readline().decode("latin-1")
        size += len(line)
        if size > MAX_HEAD:
            raise ClientError(f"HTTP response head larger than {MAX_HEAD} bytes")
        if line in ("\r\n", "\n"):
            return int(parts[1]), headers
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()


def read_body(reader: SocketReader, headers: dict, max_body: int) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        out = bytearray()
        while True:
            size = int(reader.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while reader.readline() not in (b"\r\n", b"\n"):  # trailers
                    pass
                return bytes(out)
            if len(out) + size > max_body:
                raise ClientError(f"HTTP body larger than {max_body} bytes")
            out += reader.read_exact(size)
            reader.readline()
    if "content-length" in headers:
        n = int(headers["content-length"])
        if n > max_body:
            raise ClientError(f"HTTP body of {n} bytes is larger than {max_body}")
        return reader.read_exact(n)
    return reader.read_to_close(max_body)


def auth_headers(url: ServerURL, token: str | None) -> dict:
    h = {"Host": url.host_header, "User-Agent": "geokernel.client"}
    if token:
        h["Authorization"] = f"token {token}"
    return h


def request(url: ServerURL, method: str, path: str, token: str | None = None,
            body=None, timeout: float = 30.0, max_body: int = MAX_BODY):
    """One request; returns the decoded JSON body (None if empty). Raises HTTPError on non-2xx."""
    data = b"" if body is None else json.dumps(body).encode("utf-8")
    headers = auth_headers(url, token)
    headers.update({"Accept": "application/json", "Connection": "close",
                    "Content-Length": str(len(data))})
    if body is not None:
        headers["Content-Type"] = "application/json"
    full = url.url + path[len(url.base):]
    with gevent.Timeout(timeout, ClientError(f"{method} {full}: no answer within {timeout}s")):
        sock = open_socket(url, timeout)
        try:
            sock.sendall(format_request(method, path, headers, data))
            reader = SocketReader(sock)
            status, resp_headers = read_head(reader)
            payload = b"" if method == "HEAD" or status in (204, 304) else \
                read_body(reader, resp_headers, max_body)
        finally:
            sock.close()
    log.debug("%s %s -> %s (%d bytes)", method, full, status, len(payload))
    if not 200 <= status < 300:
        raise HTTPError(method, full, status, payload)
    if not payload:
        return None
    try:
        return json.loads(payload)
    except ValueError as e:
        raise ClientError(f"{method} {full}: response is not JSON: {payload[:100]!r}") from e
