"""Helpers for archive tests: zips built in memory and a tiny loopback archive server.

The server is a real ThreadingHTTPServer on 127.0.0.1 serving a dict of paths, with
counters and per-path fault hooks (serve corrupted bytes N times, answer 500 N times,
cut the body short N times). The fake exchange's archive tree is used where it exists.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

REAL_DIR = str(Path(__file__).resolve().parents[1] / "data" / "real_data" / "spot" / "daily" / "klines" / "BTCUSDT" / "1m")


def make_zip(member: str, data: bytes) -> bytes:
    """A deterministic single-member zip (fixed timestamp, deflate)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo(member, date_time=(2024, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, data)
    return buf.getvalue()


def checksum_line(data: bytes, name: str) -> bytes:
    return f"{hashlib.sha256(data).hexdigest()}  {name}\n".encode()


@dataclass
class ArchiveServer:
    """Serves ``files`` (path without leading slash -> bytes) over loopback."""

    files: dict[str, bytes] = field(default_factory=dict)
    hits: Counter = field(default_factory=Counter)
    corrupt: Counter = field(default_factory=Counter)  # path -> times to serve flipped bytes
    fail_500: Counter = field(default_factory=Counter)  # path -> times to answer 500
    truncate: Counter = field(default_factory=Counter)  # path -> times to cut the body
    base_url: str = ""

    def add_zip(self, path: str, csv_bytes: bytes, *, checksum: bool = True) -> bytes:
        """Add ``path`` (a .zip) holding one CSV, and its CHECKSUM; returns the zip bytes."""
        name = path.rsplit("/", 1)[-1]
        data = make_zip(name[:-4] + ".csv", csv_bytes)
        self.files[path] = data
        if checksum:
            self.files[path + ".CHECKSUM"] = checksum_line(data, name)
        return data


def handler_for(server_state: ArchiveServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output clean
            return

        def do_GET(self) -> None:  # noqa: N802 (stdlib name)
            path = self.path.lstrip("/")
            server_state.hits[path] += 1
            if server_state.fail_500[path] > 0:
                server_state.fail_500[path] -= 1
                self._send(500, b"oops")
                return
            body = server_state.files.get(path)
            if body is None:
                self._send(404, b"<Error><Code>NoSuchKey</Code></Error>")
                return
            if server_state.corrupt[path] > 0:
                server_state.corrupt[path] -= 1
                body = body[:-30] + bytes(b ^ 0xFF for b in body[-30:])
            if server_state.truncate[path] > 0:
                server_state.truncate[path] -= 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self._send(200, body)

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler




KLINE_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
    "taker_buy_volume,taker_buy_quote_volume,ignore\n"
)


def kline_csv(start_ms: int, n: int, step_ms: int = 60_000, *, micro: bool = False,
              header: bool = False, skip: frozenset[int] = frozenset()) -> bytes:
    """``n`` synthetic archive kline rows from ``start_ms`` (rows whose index is in
    ``skip`` are left out, as in an exchange gap)."""
    scale = 1000 if micro else 1
    lines = [KLINE_HEADER] if header else []
    for i in range(n):
        if i in skip:
            continue
        o = start_ms + i * step_ms
        close = (o + step_ms) * scale - 1
        p = 100 + (i % 50) * 0.25
        lines.append(
            f"{o * scale},{p:.8f},{p + 1:.8f},{p - 1:.8f},{p + 0.5:.8f},{i % 7}.5,{close},"
            f"{(i % 7) * 100.25:.8f},{i % 11},{i % 3}.25,{(i % 3) * 50:.8f},0\n"
        )
    return "".join(lines).encode()
