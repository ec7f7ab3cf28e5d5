"""Talking to the exchange's REST API without earning a ban.

Owns: the one HTTP client and its transport seam (`client`), request weights per
endpoint (`weights`), the rate limiter that reads `rateLimits` and the
`X-MBX-USED-WEIGHT-*` headers (`rate_limiter`), the machine-wide weight ledger shared by
processes on one IP (`weight_ledger`), the retry schedule and the clock seam (`retry`),
the one place that counts requests, weight, 429s and 418s (`request_stats`), and
exchangeInfo (`exchange_info`).

May import: `kline_lake.core`, `kline_lake.errors`. Never the lake or the downloader.
"""
