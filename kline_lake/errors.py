"""Typed errors for kline-lake.

Every failure the user can cause or meet has one class here, so the CLI maps them to
one clear line and an exit code in exactly one place.
"""

from __future__ import annotations


class KlineLakeError(Exception):
    """Base class of every error this package raises on purpose."""


class InputError(KlineLakeError, ValueError):
    """The caller asked for something invalid (bad symbol, interval, date range...)."""


class CoverageError(InputError):
    """A request rests on data the lake never fetched (an unknown hole, a range it does
    not cover): refused, naming the holes and the download that fills them."""


class BinanceAPIError(KlineLakeError):
    """The exchange answered a 4xx with a Binance error body: the request was wrong.

    Never retried: repeating a bad request only spends weight.
    """

    def __init__(self, status: int, code: int | None, msg: str, url: str = "") -> None:
        self.status = status
        self.code = code
        self.msg = msg
        self.url = url
        where = f" ({url})" if url else ""
        super().__init__(f"exchange rejected the request: HTTP {status} code {code}: {msg}{where}")


class BannedError(KlineLakeError):
    """The exchange banned this IP (HTTP 418) for longer than we are willing to wait."""

    def __init__(self, retry_after_s: float, url: str = "") -> None:
        self.retry_after_s = retry_after_s
        super().__init__(
            f"IP banned by the exchange (HTTP 418) for {retry_after_s:.0f} s; "
            f"stopping instead of waiting ({url})"
        )


class TransientError(KlineLakeError):
    """A retryable failure (5xx, timeout, dropped connection, truncated body) that
    persisted past the retry budget."""


class StreamError(KlineLakeError):
    """A WebSocket stream connection could not be opened or has ended (the follower
    reconnects and backfills)."""


class ChecksumError(KlineLakeError):
    """An archive file's bytes do not match its published sha256 CHECKSUM."""


class LakeError(KlineLakeError):
    """The lake on disk is unusable (path is a file, locked, corrupt...)."""


class NotInArchive(KlineLakeError):
    """The archive has no such file (HTTP 404/403): fetch the period from REST instead."""

    def __init__(self, url: str, status: int) -> None:
        self.url = url
        self.status = status
        super().__init__(f"not in the archive (HTTP {status}): {url}")


class ArchiveHTTPError(KlineLakeError):
    """The archive answered an unexpected client error (4xx other than 403/404)."""


class UnsafeArchiveError(KlineLakeError):
    """An archive zip breaks a safety rule (layout, member name, size or ratio)."""
