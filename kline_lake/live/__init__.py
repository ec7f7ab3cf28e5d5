"""Live tail: keep the lake current from the exchange's WebSocket market streams.

Owns the stream side of `kline-lake follow`: stream names, payload parsing and the
connection seam (`streams`), and the follower that stitches REST catch-up, streams and
REST backfill of every hole into one gap-free lake (`follower`).

May import: `kline_lake.core`, `kline_lake.exchange`, `kline_lake.download`,
`kline_lake.lake` (and `kline_lake.archive` through the download path); never `backtest`.
"""
