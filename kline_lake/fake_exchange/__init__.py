"""A fake Binance exchange on loopback: REST for spot (`/api/v3`), USD-M (`/fapi/v1`),
COIN-M (`/dapi/v1`) and Binance.US (`/us/api/v3`: its own venue, see `server`), the
data.binance.vision archive tree, request weight with 429/418, seeded faults, and the
WebSocket market streams on the same port (`ws_server`, `ws_streams`) with a clock that
can run fast (`speed`).

    from kline_lake.fake_exchange import FakeExchange
    with FakeExchange(seed=1, minute_seconds=10) as fx:
        httpx.get(f"{fx.base_url}/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m"})

Synthetic symbols, listing dates and maintenance gaps: `kline_lake.fake_exchange.universe`.
Its request weights come from its own table (`weights`), written from the exchange docs
independently of the client's, so that the fake exchange is an oracle for the client.

May import: `kline_lake.core` (markets, intervals, schemas) and `kline_lake.errors`; never
the client, the downloader or the lake, whose behaviour it exists to test.
"""

from kline_lake.fake_exchange.server import FakeExchange

__all__ = ["FakeExchange"]
