"""kline-lake: Binance klines, aggregate trades and funding into a Hive-partitioned Parquet lake."""

from __future__ import annotations

__all__ = ["Lake", "download_data"]


def __getattr__(name: str):
    # `from kline_lake import Lake` without importing DuckDB/Polars for every CLI call.
    # `Lake` is the catalog plus `download` (kline_lake.download.api: the lake layer may
    # not import the downloader, so the method lives on a subclass above both).
    if name == "Lake":
        from kline_lake.download.api import Lake

        return Lake
    if name == "download_data":
        from kline_lake.download.api import download

        return download
    raise AttributeError(name)
