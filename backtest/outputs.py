"""Output files of the backtest commands (``--json``, ``--report``): checked before the
run, written after it.

Both options are treated the same (decisions where the issue was silent):

- ``-`` means standard output. Then the console summary and notes go to standard error,
  so ``backtest run ... --json - | jq .sharpe`` reads clean JSON. Only one of the two
  options can be ``-``, and the two cannot name the same file.
- Missing folders are created, for both (when the file is written, so a run that fails
  leaves nothing behind).
- Before anything is loaded or simulated, each path is checked: not a directory, its
  nearest existing ancestor a directory this process can create files in (probed with a
  real temporary file, so read-only mounts and root without write access are caught
  too). A bad path is one line (InputError, exit 2), not a traceback after a long run.
- Files are written atomically through the lake's writer (temp file, fsync, rename); an
  error while writing is still one line.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from kline_lake.errors import InputError
from kline_lake.lake.atomic import atomic_write_bytes

STDOUT = "-"


def _nearest_existing(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    return probe


def check_output_path(path: str | os.PathLike | None, option: str) -> None:
    """InputError (one line) unless `path` can be written later: ``-``, or a file path
    whose missing folders can be created."""
    if path is None or str(path) == STDOUT:
        return
    target = Path(path)
    if str(path).endswith(os.sep) or target.is_dir():
        raise InputError(f"{option} {path} is a directory; give a file name")
    folder = _nearest_existing(target.parent)
    if not folder.is_dir():
        raise InputError(f"{option} {path}: cannot write there, {folder} is a file, "
                         "not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".backtest-probe-"):
            pass
    except OSError as exc:
        raise InputError(f"{option} {path}: cannot write in {folder} "
                         f"({exc.strerror or exc})") from None


def check_outputs(json_path: str | None, report_path: str | None) -> None:
    """`check_output_path` for both options, and that they do not collide."""
    check_output_path(json_path, "--json")
    check_output_path(report_path, "--report")
    if json_path is None or report_path is None:
        return
    if str(json_path) == STDOUT and str(report_path) == STDOUT:
        raise InputError("--json and --report cannot both be - (standard output)")
    if STDOUT not in (str(json_path), str(report_path)) and \
            Path(json_path).resolve() == Path(report_path).resolve():
        raise InputError(f"--json and --report name the same file {json_path}")


def to_stdout(json_path: str | None, report_path: str | None) -> bool:
    """True when an output goes to standard output (the console text then goes to stderr)."""
    return STDOUT in (str(json_path), str(report_path))


def write_output(path: str | os.PathLike, text: str, option: str) -> str:
    """Write `text` to `path` (``-``: standard output), creating missing folders; returns
    what was written, for the console ("standard output" or the path)."""
    if str(path) == STDOUT:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
        return "standard output"
    try:
        atomic_write_bytes(Path(path), (text if text.endswith("\n") else text + "\n").encode())
    except OSError as exc:
        raise InputError(f"{option} {path}: cannot write ({exc.strerror or exc})") from exc
    return str(path)
