"""`kline-lake fake-exchange`: run the fake Binance exchange until SIGINT/SIGTERM.

Numbers are typed (`--port INTEGER`) with `kline_lake.cli.options` types, so every bad
value is one `kline-lake: error: ...` line and exit status 2 (via InputError), not a
usage dump.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from kline_lake.cli.options import Integer, Number
from kline_lake.errors import InputError


@click.command("fake-exchange")
@click.option("--host", default="127.0.0.1", show_default=True, metavar="ADDRESS",
              help="Address to bind (loopback by default).")
@click.option("--port", default=8080, show_default=True, type=Integer(0, 65535),
              help="Port (0 picks a free one and prints it).")
@click.option("--seed", default=1, show_default=True, type=Integer(0),
              help="Seed of the synthetic data and of the faults.")
@click.option("--minute-seconds", default=60, show_default=True, type=Number(1, whole=True),
              help="Length of the weight window in whole seconds (the exchange's minute; "
                   "advertised honestly in rateLimits and the X-MBX-USED-WEIGHT-* header).")
@click.option("--weight-limit", default=None, type=Integer(1),
              help="Weight budget per window for every market (default: spot 6000, um/cm 2400, us 1200).")
@click.option("--data-dir", default=None, metavar="DIR",
              help="Serve real archive files laid out like data.binance.vision/data/.")
@click.option("--faults", default=None, metavar="SPEC",
              help="Seeded faults as kind:probability, comma-separated, e.g. "
                   "500:0.05,503:0.02,slow:0.02,drop:0.01,truncate:0.01,corrupt-archive:0.1")
@click.option("--slow-seconds", default=1.0, show_default=True, type=Number(0),
              help="Delay of a 'slow' fault, in seconds.")
@click.option("--venues", default="spot,um,cm,us", show_default=True, metavar="MARKETS",
              help="Markets to serve: spot /api/v3, um /fapi/v1, cm /dapi/v1, us (Binance.US) /us/api/v3.")
@click.option("--speed", default=None, type=Number(1e-6, unit=None),
              help="Run the data clock this many times faster than real time, REST and streams alike "
                   "(60: one fake minute per real second). Default: the real clock.")
@click.option("--universe-size", default=0, show_default=True, type=Integer(0, 500),
              help="Also serve N generated spot pairs and USD-M perpetuals (X000USDT...) with "
                   "staggered listings and a few delistings, for cross-sectional tests.")
def fake_exchange(host: str, port: int, seed: int, minute_seconds: float, weight_limit: int | None,
                  data_dir: str | None, faults: str | None, slow_seconds: float, venues: str,
                  speed: float | None = None, universe_size: int = 0) -> None:
    """Serve a fake Binance (REST for every market and the archive) on HOST:PORT.

    Deterministic synthetic data (seeded per symbol) or real archive files, the real
    weight headers, 429/418 and Retry-After, optional faults. Runs until SIGINT/SIGTERM.

    Examples:

    \b
      kline-lake fake-exchange --port 0
      kline-lake fake-exchange --port 8080 --minute-seconds 10 --weight-limit 400 \\
          --faults 500:0.05,slow:0.02
      KLINE_LAKE_BASE_URL=http://127.0.0.1:8080 kline-lake download --market spot \\
          --data klines --symbols BTCUSDT --interval 1h --start 2024-01-01
    """
    from kline_lake.fake_exchange import FakeExchange
    from kline_lake.fake_exchange.server import VENUES

    venue_list = [v.strip() for v in venues.split(",") if v.strip()]
    if not venue_list or any(v not in VENUES for v in venue_list):
        raise InputError(f"--venues must list some of {','.join(VENUES)}, got {venues!r}")
    if data_dir is not None and not Path(data_dir).is_dir():
        raise InputError(f"--data-dir {data_dir} is not a directory")
    try:
        fx = FakeExchange(seed=seed, minute_seconds=int(minute_seconds), weight_limit=weight_limit,
                          data_dir=data_dir, faults=faults, venues=venue_list, host=host,
                          port=port, slow_s=slow_seconds, speed=speed,
                          universe_size=universe_size)
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
