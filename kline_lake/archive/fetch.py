"""Download one data.binance.vision zip, verify its sha256 CHECKSUM, extract its CSV.

The order is the point: the zip's bytes are hashed while they stream in, compared with
the published ``<file>.zip.CHECKSUM`` (``"<sha256 hex>  <file name>"``), and only a zip
that matches is opened. A mismatch is retried (the CHECKSUM is re-read too: the exchange
may have replaced the file in between) a bounded number of times, then raised as
ChecksumError naming the file. A 404 (or 403, which the archive's storage answers for a
key it does not hold) on either URL means "not in the archive": NotInArchive, which the
planner turns into a REST piece. 5xx, timeouts and dropped or truncated transfers are
retried with exponential backoff and full jitter (the exchange client's schedule:
:func:`kline_lake.exchange.retry.backoff_delay_s`), then raised as TransientError.

Bodies are held in memory under a size cap (``FetchPolicy.max_zip_bytes``), enforced on
the declared Content-Length and again while streaming. A verified zip's CSV is inflated
whole, or (``stream=True``, for a day of trades: gigabytes of CSV) left in the zip and
inflated as it is read (:func:`kline_lake.archive.zip_safety.open_single_member`, the same
rules). The archive costs no request
weight, so there is no limiter here; concurrency is bounded by the caller.

Requests, retries, 429/418 answers and bytes received are counted in the
:class:`kline_lake.exchange.request_stats.RequestStats` passed as ``stats`` (weight 0).

I/O: an ``httpx.AsyncClient`` passed in (tests swap its transport or point it at a
loopback server) and an injectable ``sleep``.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import BinaryIO

import httpx

from kline_lake.archive.checksum import checksum_matches, parse_checksum
from kline_lake.archive.zip_safety import ZipLimits, extract_single_csv, open_single_member
from kline_lake.errors import (
    ArchiveHTTPError,
    ChecksumError,
    NotInArchive,
    TransientError,
)
from kline_lake.exchange.request_stats import RequestStats
from kline_lake.exchange.retry import RetryPolicy, backoff_delay_s

DEFAULT_MAX_ZIP_BYTES = 1024**3
_MAX_CHECKSUM_BYTES = 4096

ByteCallback = Callable[[int], None]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class FetchPolicy:
    """Retry budgets and size caps for archive downloads.

    Backoff before retry ``n`` (0-based) is uniform in ``[0, min(backoff_max_s,
    backoff_base_s * 2**n)]`` (full jitter: :attr:`retry` with ``jitter=1``).
    """

    checksum_attempts: int = 3  # total downloads of one file before ChecksumError
    transient_attempts: int = 4  # total tries of one request on 5xx/timeouts/drops
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    max_zip_bytes: int = DEFAULT_MAX_ZIP_BYTES
    zip_limits: ZipLimits = field(default_factory=ZipLimits)

    def __post_init__(self) -> None:
        if self.checksum_attempts < 1 or self.transient_attempts < 1:
            raise ValueError("attempt counts must be at least 1")
        if self.max_zip_bytes <= 0 or self.backoff_base_s < 0 or self.backoff_max_s < 0:
            raise ValueError("max_zip_bytes must be positive and backoff non-negative")

    @property
    def retry(self) -> RetryPolicy:
        """The backoff schedule of transient retries, in the exchange client's terms."""
        return RetryPolicy(max_attempts=self.transient_attempts, base_delay_s=self.backoff_base_s,
                           max_delay_s=self.backoff_max_s, jitter=1.0)


@dataclass(frozen=True)
class FetchedArchive:
    """A verified archive file: its CSV and what was checked.

    The CSV is ``csv_bytes``, inflated whole, or, fetched with ``stream=True``, still in
    the verified zip: ``csv_bytes`` is None and ``open_csv()`` returns a binary stream that
    inflates it as it is read (each call from the start; refusals are UnsafeArchiveError,
    raised by the read that meets them). ``csv_size`` is its size either way (the
    member's declared size, for a stream: the stream ends there or raises).
    """

    url: str
    filename: str
    sha256: str
    zip_bytes: int
    member: str
    csv_bytes: bytes | None
    attempts: int
    csv_size: int = 0
    open_csv: Callable[[], BinaryIO] | None = None


def filename_of(url: str) -> str:
    """The file name at the end of an archive URL."""
    return url.rsplit("/", 1)[-1]


def _raise_for_status(resp: httpx.Response, url: str) -> None:
    if resp.status_code in (403, 404):
        raise NotInArchive(url, resp.status_code)
    if resp.status_code == 429 or resp.status_code >= 500:
        raise TransientError(f"archive answered HTTP {resp.status_code}: {url}")
    if resp.status_code >= 400:
        raise ArchiveHTTPError(f"archive answered HTTP {resp.status_code}: {url}")


async def _get_bounded(
    client: httpx.AsyncClient, url: str, max_bytes: int, on_bytes: ByteCallback | None,
    stats: RequestStats,
) -> tuple[bytes, str]:
    """GET ``url`` into memory under ``max_bytes``; returns (body, sha256 hex)."""
    try:
        stats.record_sent()
        async with client.stream("GET", url) as resp:
            stats.record_answer(resp.status_code)
            _raise_for_status(resp, url)
            declared = resp.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise ArchiveHTTPError(f"{filename_of(url)}: {declared} bytes exceeds the cap of {max_bytes}")
            digest = hashlib.sha256()
            buf = bytearray()
            async for chunk in resp.aiter_bytes():
                buf += chunk
                digest.update(chunk)
                stats.record_received(len(chunk))
                if len(buf) > max_bytes:
                    raise ArchiveHTTPError(f"{filename_of(url)}: body exceeds the cap of {max_bytes} bytes")
                if on_bytes is not None:
                    on_bytes(len(chunk))
            return bytes(buf), digest.hexdigest()
    except httpx.RequestError as exc:
        # RequestError covers timeouts, refused/dropped connections, bodies shorter than
        # their Content-Length (RemoteProtocolError) and undecodable bodies.
        raise TransientError(f"archive transfer failed ({type(exc).__name__}: {exc}): {url}") from exc


@dataclass
class _Transfer:
    """How one fetch talks to the archive: the client, the retry budget and backoff
    (``policy.retry``, jitter drawn from ``rng``), the sleeper and the counters."""

    client: httpx.AsyncClient
    policy: FetchPolicy
    sleep: Sleep
    rng: random.Random
    stats: RequestStats

    async def backoff(self, retry_index: int) -> None:
        await self.sleep(backoff_delay_s(retry_index, self.policy.retry, self.rng.random()))

    async def get(self, url: str, max_bytes: int,
                  on_bytes: ByteCallback | None = None) -> tuple[bytes, str]:
        """`_get_bounded` with bounded retries of transient failures."""
        attempts = self.policy.transient_attempts
        for attempt in range(attempts):
            try:
                return await _get_bounded(self.client, url, max_bytes, on_bytes, self.stats)
            except TransientError:
                if attempt + 1 == attempts:
                    raise
                self.stats.record_retry()
                await self.backoff(attempt)
        raise AssertionError("unreachable")  # pragma: no cover


async def fetch_archive_file(
    client: httpx.AsyncClient,
    url: str,
    policy: FetchPolicy | None = None,
    *,
    sleep: Sleep = asyncio.sleep,
    on_bytes: ByteCallback | None = None,
    rng: random.Random | None = None,
    stats: RequestStats | None = None,
    stream: bool = False,
) -> FetchedArchive:
    """Download ``url`` and its ``.CHECKSUM``, verify, and extract the CSV (``stream``:
    check the zip's layout and leave the CSV in it, see :class:`FetchedArchive`).

    Every GET is counted in ``stats`` when given. Raises NotInArchive (404/403),
    ChecksumError (still mismatched after ``policy.checksum_attempts`` downloads; names
    the file and both digests), TransientError (retries exhausted), UnsafeArchiveError
    (bad zip layout/size; for a stream, the size rules met while inflating are raised
    by its reads instead).
    """
    policy = policy or FetchPolicy()
    transfer = _Transfer(client, policy, sleep, rng or random.Random(),
                         stats if stats is not None else RequestStats())
    name = filename_of(url)
    got = expected = ""
    for attempt in range(1, policy.checksum_attempts + 1):
        body, _ = await transfer.get(url + ".CHECKSUM", _MAX_CHECKSUM_BYTES)
        expected = parse_checksum(body.decode("utf-8", "replace"), name)
        data, got = await transfer.get(url, policy.max_zip_bytes, on_bytes)
        if checksum_matches(got, expected):
            # the sha256 just matched: skip the redundant CRC-32 pass
            if stream:  # reads the zip's directory only: no inflating here
                member, size, opener = open_single_member(data, name, policy.zip_limits,
                                                          check_crc=False)
                return FetchedArchive(url, name, got, len(data), member, None, attempt,
                                      size, opener)
            # inflating a month of klines takes tens of ms: keep it off the event loop
            member, csv_bytes = await asyncio.to_thread(
                partial(extract_single_csv, check_crc=False), data, name, policy.zip_limits
            )
            return FetchedArchive(url, name, got, len(data), member, csv_bytes, attempt,
                                  len(csv_bytes))
        if attempt < policy.checksum_attempts:
            await transfer.backoff(attempt - 1)
    raise ChecksumError(
        f"{name}: sha256 {got} does not match its CHECKSUM {expected} after "
        f"{policy.checksum_attempts} download(s); nothing from it was ingested ({url})"
    )


async def fetch_checksum(
    client: httpx.AsyncClient,
    url: str,
    policy: FetchPolicy | None = None,
    *,
    sleep: Sleep = asyncio.sleep,
    stats: RequestStats | None = None,
) -> str:
    """The published sha256 of the archive file at ``url`` (reads only its CHECKSUM)."""
    transfer = _Transfer(client, policy or FetchPolicy(), sleep, random.Random(),
                         stats if stats is not None else RequestStats())
    body, _ = await transfer.get(url + ".CHECKSUM", _MAX_CHECKSUM_BYTES)
    return parse_checksum(body.decode("utf-8", "replace"), filename_of(url))
