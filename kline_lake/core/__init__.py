"""The exchange's rules and the lake's vocabulary as pure data and functions.

Owns: markets, datasets, endpoints and symbol names (`markets`), kline intervals and
their calendar (`intervals`), the lake schemas and canonical timestamps (`schemas`),
the series identity (`series.SeriesKey`), time units, user-typed times and calendar
months (`timeutil`), the half-open range algebra (`ranges`) and small asyncio helpers
(`aio`). No I/O.

May import: `kline_lake.errors` only. Everything else in the package may import it.
"""
