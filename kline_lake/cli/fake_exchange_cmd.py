"""`kline-lake fake-exchange`: run the fake Binance exchange until SIGINT/SIGTERM."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from kline_lake.errors import InputError


@click.command("fake-exchange")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port (0 picks a free one).")
@click.option("--seed", default=1, show_default=True, type=int, help="Seed of the synthetic data and faults.")
@click.option("--minute-seconds", default=60.0, show_default=True, type=float,
              help="Length of the weight window in seconds (the exchange's minute).")
@click.option("--weight-limit", default=None, type=int,
              help="Weight budget per window for every market (default: spot 6000, um/cm 2400, us 1200).")
@click.option("--data-dir", default=None, type=click.Path(path_type=Path),
              help="Serve real archive files laid out like data.binance.vision/data/.")
@click.option("--faults", default=None, help="e.g. 500:0.05,503:0.02,slow:0.02,drop:0.01,truncate:0.01,corrupt-archive:0.1")
@click.option("--venue", default="binance", show_default=True, type=click.Choice(["binance", "us"]),
              help="What /api/v3 serves: Binance spot or Binance.US.")
def fake_exchange(host: str, port: int, seed: int, minute_seconds: float, weight_limit: int | None,
                  data_dir: Path | None, faults: str | None, venue: str) -> None:
    """Serve a fake Binance (REST for every market and the archive) on HOST:PORT."""
    from kline_lake.fake_exchange import FakeExchange

    if minute_seconds < 1 or not minute_seconds.is_integer():
        raise InputError(f"--minute-seconds must be a whole number of seconds >= 1, got {minute_seconds:g}")
    if weight_limit is not None and weight_limit <= 0:
        raise InputError("--weight-limit must be positive")
    if not 0 <= port <= 65535:
        raise InputError(f"--port must be within 0..65535, got {port}")
    if data_dir is not None and not data_dir.is_dir():
        raise InputError(f"--data-dir {data_dir} is not a directory")
    try:
        fx = FakeExchange(seed=seed, minute_seconds=minute_seconds, weight_limit=weight_limit,
                          data_dir=data_dir, faults=faults, venue=venue, host=host, port=port)
        fx.start()
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(f"serving on {fx.base_url}")
    click.get_text_stream("stdout").flush()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        fx.stop()
