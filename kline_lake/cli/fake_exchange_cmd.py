"""`kline-lake fake-exchange`: run the fake Binance exchange until SIGINT/SIGTERM.

Options are taken as text and validated here, so every bad value is one
`kline-lake: error: ...` line and exit status 2 (via InputError), not a usage dump.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from kline_lake.errors import InputError


def _int(name: str, text: str | None, low: int, high: int | None = None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"{name} must be an integer, got {text!r}") from None
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"within {low}..{high}"
        raise InputError(f"{name} must be {bounds}, got {value}")
    return value


def _seconds(name: str, text: str, low: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{name} must be a number of seconds, got {text!r}") from None
    if not value >= low:
        raise InputError(f"{name} must be >= {low:g}, got {text}")
    return value


@click.command("fake-exchange")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default="8080", show_default=True, help="Port (0 picks a free one and prints it).")
@click.option("--seed", default="1", show_default=True, help="Seed of the synthetic data and of the faults.")
@click.option("--minute-seconds", default="60", show_default=True,
              help="Length of the weight window in whole seconds (the exchange's minute).")
@click.option("--weight-limit", default=None,
              help="Weight budget per window for every market (default: spot 6000, um/cm 2400, us 1200).")
@click.option("--data-dir", default=None, help="Serve real archive files laid out like data.binance.vision/data/.")
@click.option("--faults", default=None,
              help="e.g. 500:0.05,503:0.02,slow:0.02,drop:0.01,truncate:0.01,corrupt-archive:0.1")
@click.option("--slow-seconds", default="1.0", show_default=True, help="Delay of a 'slow' fault.")
@click.option("--venues", default="spot,um,cm,us", show_default=True,
              help="Markets to serve: spot /api/v3, um /fapi/v1, cm /dapi/v1, us (Binance.US) /us/api/v3.")
@click.option("--speed", default=None,
              help="Run the data clock this many times faster than real time, REST and streams alike "
                   "(60: one fake minute per real second). Default: the real clock.")
@click.option("--universe-size", default="0", show_default=True,
              help="Also serve N generated spot pairs and USD-M perpetuals (X000USDT...) with "
                   "staggered listings and a few delistings, for cross-sectional tests.")
def fake_exchange(host: str, port: str, seed: str, minute_seconds: str, weight_limit: str | None,
                  data_dir: str | None, faults: str | None, slow_seconds: str, venues: str,
                  speed: str | None = None, universe_size: str = "0") -> None:
    """Serve a fake Binance (REST for every market and the archive) on HOST:PORT."""
    from kline_lake.fake_exchange import FakeExchange
    from kline_lake.fake_exchange.server import VENUES

    port_n = _int("--port", port, 0, 65535)
    seed_n = _int("--seed", seed, 0)
    limit_n = _int("--weight-limit", weight_limit, 1)
    size_n = _int("--universe-size", universe_size, 0, 500)
    minute_s = _seconds("--minute-seconds", minute_seconds, 1)
    if not minute_s.is_integer():
        raise InputError(f"--minute-seconds must be a whole number of seconds, got {minute_seconds}")
    slow_s = _seconds("--slow-seconds", slow_seconds, 0)
    speed_x = None if speed is None else _seconds("--speed", speed, 1e-6)
    venue_list = [v.strip() for v in venues.split(",") if v.strip()]
    if not venue_list or any(v not in VENUES for v in venue_list):
        raise InputError(f"--venues must list some of {','.join(VENUES)}, got {venues!r}")
    if data_dir is not None and not Path(data_dir).is_dir():
        raise InputError(f"--data-dir {data_dir} is not a directory")
    try:
        fx = FakeExchange(seed=seed_n or 0, minute_seconds=int(minute_s), weight_limit=limit_n,
                          data_dir=data_dir, faults=faults, venues=venue_list, host=host,
                          port=port_n or 0, slow_s=slow_s, speed=speed_x,
                          universe_size=size_n or 0)
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
