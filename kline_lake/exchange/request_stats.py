"""The one tally of what was sent to the exchange's hosts: requests, request weight,
retries, 429 and 418 answers, bytes received.

Pure bookkeeping, no I/O. The REST client (`kline_lake.exchange.client.ExchangeClient`,
one `RequestStats` per client) and the archive fetcher (`kline_lake.archive.fetch`, which
records into the `RequestStats` it is given; the archive costs no weight) are the only
code that counts these; the download summary and progress bars read them. The rate
limiter acts on 429/418 answers but does not count them.

Status codes: 429 = request weight exceeded, 418 = IP banned for sending during a 429
back-off (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits).
"""

from __future__ import annotations

from dataclasses import dataclass

HTTP_TOO_MANY_REQUESTS = 429
HTTP_BANNED = 418


@dataclass
class RequestStats:
    """Counters of one channel (a REST client, an archive download).

    `requests` counts every request sent, retries included, and `weight` their request
    weight; `retries` counts transient failures (5xx, timeouts, dropped connections,
    bad bodies) that were tried again; `rate_limited_429` and `banned_418` count those
    answers (a 418 is not also a 429).
    """

    requests: int = 0
    weight: int = 0
    retries: int = 0
    rate_limited_429: int = 0
    banned_418: int = 0
    bytes_received: int = 0

    def record_sent(self, weight: int = 0) -> None:
        """One request of `weight` is going out now."""
        if weight < 0:
            raise ValueError(f"request weight must be >= 0, got {weight}")
        self.requests += 1
        self.weight += weight

    def record_answer(self, status: int) -> None:
        """An answer with HTTP `status` came back (429 and 418 are counted)."""
        if status == HTTP_TOO_MANY_REQUESTS:
            self.rate_limited_429 += 1
        elif status == HTTP_BANNED:
            self.banned_418 += 1

    def record_received(self, n_bytes: int) -> None:
        """`n_bytes` more body bytes arrived."""
        self.bytes_received += n_bytes

    def record_retry(self) -> None:
        """A transient failure is about to be tried again."""
        self.retries += 1
