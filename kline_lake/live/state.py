"""What the follower knows of one series, shared by the follower and its tracks. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

from kline_lake.core.series import SeriesKey


@dataclass
class SeriesState:
    """What the follower knows of one series (the fields a track does not use stay unset)."""

    key: SeriesKey
    symbol: str
    covered_ms: int  # coverage is complete up to here (exclusive); recorders: the last update
    buffer: dict[int, tuple] = field(default_factory=dict)  # key -> (row, receive time), not yet committed
    uncovered: dict[int, int] = field(default_factory=dict)  # committed beyond a hole: key -> time ms
    hole_since: float | None = None
    needs_backfill: bool = False
    last_closed_ms: int | None = None  # the latest closed kline / trade / update received
    received: int = 0
    reconnects: int = 0
    next_id: int | None = None  # agg trades: the first id the lake lacks after its coverage
    seen: dict[int, list[int]] = field(default_factory=dict)  # recorders: connection -> recent keys
