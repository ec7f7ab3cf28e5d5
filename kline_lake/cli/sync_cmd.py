"""``kline-lake sync SRC DST``: copy a lake between local and object storage."""

from __future__ import annotations

import click


@click.command("sync")
@click.argument("src", metavar="SRC")
@click.argument("dst", metavar="DST")
@click.option("--delete", is_flag=True, default=False,
              help="Also remove objects of DST that SRC does not have.")
@click.option("--lock-timeout", type=float, default=30.0, show_default=True,
              help="Seconds to wait for DST's writer lock.")
def sync(src: str, dst: str, delete: bool, lock_timeout: float) -> None:
    """Copy the lake SRC to DST, only what changed (size and SHA-256).

    SRC and DST are lake directories or object-store URLs (s3://BUCKET/PREFIX, any
    fsspec URL); credentials and endpoint come from the standard AWS variables
    (AWS_ENDPOINT_URL for MinIO or R2). Data partitions are copied before coverage
    records, under DST's writer lock.

    \b
    Example:
      kline-lake download ... --lake ./data
      kline-lake sync ./data s3://team-bucket/lake
    """
    from kline_lake.lake.sync import sync_lake

    report = sync_lake(src, dst, delete=delete, lock_timeout_s=lock_timeout)
    click.echo(f"synced {src} -> {dst}: {report.summary()}")
