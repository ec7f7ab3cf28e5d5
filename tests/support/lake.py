"""Constants shared by the lake tests (a named module: `conftest` is ambiguous across dirs)."""

JAN_2024_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
MINUTE_MS = 60_000
MINUTE_US = 60_000_000
