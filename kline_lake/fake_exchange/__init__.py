"""A fake Binance exchange on loopback: REST for spot/USD-M/COIN-M/Binance.US, the
data.binance.vision archive tree, request weight with 429/418, seeded faults.

    from kline_lake.fake_exchange import FakeExchange
    with FakeExchange(seed=1, minute_seconds=10) as fx:
        httpx.get(f"{fx.base_url}/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m"})

Synthetic symbols, listing dates and maintenance gaps: `kline_lake.fake_exchange.universe`.
"""

from kline_lake.fake_exchange.server import FakeExchange

__all__ = ["FakeExchange"]
