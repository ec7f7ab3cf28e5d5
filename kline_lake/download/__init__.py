"""Downloading history into the lake: from a validated request to committed rows.

Owns: the public API, `download(...)` and `Lake` with `download` (`api`), the request
and its validation (`request`), which symbols it means (`select`), what a source works
with: series task, run context and the batching sink (`context`), the registry of sources behind
`--source` (`sources`), the REST source (`rest_source`) with its pure page plans
(`pages`) and REST JSON parsing (`rest_rows`), the orchestration of a run
(`orchestrate`) and progress display and counters (`progress`).

May import: `kline_lake.core`, `kline_lake.exchange`, `kline_lake.lake` (the writer;
`api` subclasses the catalog), and `kline_lake.archive` (only `sources` does, to register
the archive sources).
"""
