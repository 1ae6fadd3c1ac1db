"""What the tests read back: the LogBackend's records (through the module's own code), files
on disk, cache_stats readings, odd keys, and the torch profile's flags.
"""

from __future__ import annotations

from pathlib import Path

from pytest_cachemock import cache_stats
from pytest_cachemock.backends import _logfile

# The five torch._inductor.config flags the torch profile switches (what the tests expect,
# written out here rather than read from the package).
TORCH_FLAGS = (
    "fx_graph_cache",
    "fx_graph_remote_cache",
    "autotune_local_cache",
    "autotune_remote_cache",
    "bundled_autotune_remote_cache",
)


# -- counters and files --------------------------------------------------------------------


def snap(name: str) -> dict[str, int]:
    """What cache_stats counted under ``name``, zeros when nothing was."""
    return cache_stats.snapshot().get(name, {"hit": 0, "miss": 0, "put": 0, "exception": 0})


def every_file(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if not p.is_dir())


# Keys that look like paths, or are empty, huge or foreign: every backend's odd-key lists
# start with these, and add the ones that matter to it.
PATH_KEYS = [
    "ключ/日本語/🔑",
    "../x",
    "../../../../../../../../tmp/escaped",
    "/etc/passwd",
    "a/../../b",
    "..",
    ".",
    "",
    "k" * 100_000,
    "C:\\Windows\\system32",
    "~/.ssh/id_rsa",
]


# -- the LogBackend's format ---------------------------------------------------------------
# The record layout and the reader are the module's own (pytest_cachemock/backends/_logfile.py
# has no public reader: these are its private names). ``read_log`` replays the file's bytes with
# the module's record reader on a fresh, unopened _LogFile, so what is on disk is checked
# apart from any backend's live index. Reading a file opens and closes a descriptor of it,
# and closing any descriptor drops every POSIX lock the process holds on the file:
# ``read_log`` is only called while no thread of this process is writing.

HEADER = _logfile._HEADER  # magic, type, key length, value length, digest
MAGIC = _logfile.MAGIC
PUT, DELETE, CLEAR = _logfile._PUT, _logfile._DELETE, _logfile._CLEAR


def record_of(key: str, value: bytes, kind: int = PUT) -> bytes:
    """The bytes of one record, as the module writes it."""
    return _logfile._record(kind, key.encode("utf-8", "surrogatepass"), value)


def read_log(path: Path) -> tuple[dict[str, bytes], int]:
    """(entries, end of the last good record) of the log at ``path``, replayed from its bytes
    the way a reader does: whole records whose digest holds, up to the first that is not."""
    data = path.read_bytes()
    reader = _logfile._LogFile(str(path))  # never opened: only its record reader runs
    end = reader.apply_records(data, 0)
    entries = {key: data[at : at + n] for key, (at, n, _) in reader.index.items()}
    return entries, end


def size_of(path: Path) -> int:
    return path.stat().st_size  # by path: opens no descriptor, so drops no lock
