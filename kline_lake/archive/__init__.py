"""The bulk archive (data.binance.vision): checksum-verified zips into the lake.

Owns: which files cover a range (`plan`), downloading a file and its `.CHECKSUM`
(`fetch`), the sha256 check (`checksum`), zip safety and fast inflate (`zip_safety`), the Numba CSV kernel
(`numeric_csv`) and the archive CSV formats (`csv`), ingesting files into the lake
(`ingest`), the `auto`/`archive` sources that combine archive and REST (`hybrid`), the
record of ingested files (`manifest`) and re-checking them later (`refresh`).

May import: `kline_lake.core`, `kline_lake.exchange`, `kline_lake.lake`, and from
`kline_lake.download` the context and the REST source (`hybrid` hands REST the rest).
"""
