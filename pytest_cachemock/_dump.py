"""Memoizer dumps: the JSON file format, and ``dump``/``load`` of a memoizer's entries.

A dump holds blocks of entries per scope (kind, version, context): ``{"format", "format_version",
"scopes": {"<kind>/<scope id>": {"kind", "version", "context", "entries": {key: form}}}}``. An
entry's form is its JSON record itself when the serde wrote JSON, else ``{"$base64": ...}``
(bytes) or ``{"$object": ...}`` (a serde that stores objects).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ._keys import _text
from ._writer import _writer
from .errors import MemoizerWarning, UserError, ValueDecodingError, ValueEncodingError
from .locks import file_lock, flock
from .serde import PickleSerde, SignedPickleSerde, _json_text

if TYPE_CHECKING:
    from .memoize import Memoizer

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: a lock file next to the dump
    fcntl = None  # type: ignore[assignment]

DUMP_FORMAT = "pytest-cachemock/memoize"
DUMP_FORMAT_VERSION = 1


def dump(memo: Memoizer, path: str | os.PathLike[str]) -> int:
    """Write this memoizer's entries (this version and context) to the JSON file ``path``.

    What the file already holds is kept (other memoizers, versions and contexts) and
    merged; the file is replaced atomically under a file lock. Returns the number of
    entries written for this memoizer.
    """
    _writer.flush()
    if not memo._backend.lists_entries:
        raise UserError(
            f"Memoizer {memo.name!r} cannot dump: its backend {memo._backend!r} cannot "
            "list its entries (its lists_entries is False)"
        )
    context_text, scope_id = memo._current_scope()
    prefix = f"{memo.name}/{scope_id}/"
    ours: dict[str, object] = {}
    target = os.path.abspath(os.fspath(path))
    for key, stored in memo._own_items(memo._backend, prefix):
        try:
            form = _dump_form(stored)
        except RecursionError:
            raise ValueEncodingError(
                f"Memoizer {memo.name!r} cannot dump to {target!r}: the entry {key!r} is "
                "nested too deeply (or refers to itself) to be written as JSON; the file "
                "is left as it was. Return flatter results, or cache_clear() that one"
            ) from None
        if form is not None:
            ours[key] = form
    with _dump_lock(target, memo._backend.lock_timeout):
        existing = _read_dump(target, missing_ok=True)
        scopes = existing["scopes"] if existing is not None else {}
        block = scopes.get(f"{memo.name}/{scope_id}")
        entries: dict[str, object] = dict(block["entries"]) if block else {}
        if memo.deterministic:
            for key, form in ours.items():
                entries.setdefault(key, form)
        else:
            entries.update(ours)
        scopes[f"{memo.name}/{scope_id}"] = {
            "context": json.loads(context_text),
            "entries": entries,
            "kind": memo.name,
            "version": memo.version,
        }
        _write_json_atomic(
            target,
            {"format": DUMP_FORMAT, "format_version": DUMP_FORMAT_VERSION, "scopes": scopes},
        )
    return len(entries)


def load(memo: Memoizer, path: str | os.PathLike[str], *, strict: bool = False) -> int:
    """Put the entries of a dump (those of this version and context) into the backend.

    With ``strict=True`` every later miss of ``memoize`` raises :class:`ReplayMissError`
    (``record`` still computes). A missing file loads nothing, or raises
    ``FileNotFoundError`` when strict. Returns the number of entries loaded.
    """
    target = os.path.abspath(os.fspath(path))
    if isinstance(memo.serde, PickleSerde) and not isinstance(memo.serde, SignedPickleSerde):
        # Every loaded entry is unpickled at its first hit, and unpickling runs whatever
        # code the file's writer put in it: a dump is a file others write (it is committed).
        raise UserError(
            f"Memoizer {memo.name!r} will not load {target!r}: its serde is PickleSerde, "
            "and unpickling a dump's entries runs any code whoever wrote the file put in "
            "them. Use JsonSerde (the default) or SignedPickleSerde(secret), whose "
            "signature is checked with the secret before anything is unpickled"
        )
    dump = _read_dump(target, missing_ok=not strict)
    if dump is None:
        return 0
    context_text, scope_id = memo._current_scope()
    block = dump["scopes"].get(f"{memo.name}/{scope_id}")
    if block is None:
        held = _describe_scopes(dump["scopes"])
        message = (
            f"dump {target!r} holds no entries for memoizer {memo.name!r} at version "
            f"{memo.version}, context {context_text}; it holds {held}. Record them with "
            "this version and context, or check what changed"
        )
        if strict:
            raise UserError(message)
        warnings.warn(message, MemoizerWarning, stacklevel=2)
        return 0
    backend = memo._backend
    loaded = bad = 0
    for key, form in block["entries"].items():
        stored = _stored_from_form(form)
        record = None
        if stored is not None:
            try:
                record = memo._decode_record(key, stored)
            except Exception:
                record = None
        if (
            record is None
            or not isinstance(record["fn"], str)
            or memo._key(scope_id, record["fn"], record.get("args")) != key
        ):
            bad += 1
            continue
        try:
            if memo.deterministic:
                backend.add(key, stored)
            else:
                backend.put(key, stored)
        except Exception as exc:
            memo._failed(exc, "write", backend)
            bad += 1
            continue
        loaded += 1
    if bad:
        for _ in range(bad):
            next(memo._counters.exception)
        warnings.warn(
            f"Memoizer {memo.name!r}: skipped {bad} entr{'y' if bad == 1 else 'ies'} of "
            f"{target!r} that cannot be decoded or do not match their keys",
            MemoizerWarning,
            stacklevel=2,
        )
    memo._strict = bool(strict)
    return loaded


@contextlib.contextmanager
def _dump_lock(target: str, timeout: float) -> Iterator[None]:
    # The lock is the dump's directory itself, locked through a descriptor of it: nothing
    # is created (so nothing is left next to a dump kept in a repository), and no other
    # user can plant it, as anyone could a predictable name in the temporary directory.
    directory = os.path.dirname(target)
    os.makedirs(directory, exist_ok=True)
    if fcntl is None:  # pragma: no cover - Windows: a lock file next to the dump
        with file_lock(target + ".lock", timeout):
            yield
        return
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        flock(fd, fcntl.LOCK_EX, timeout, directory, "another dump holds it")
        yield
    finally:
        os.close(fd)  # drops the flock


def _json_bytes(value: object) -> bytes:
    """JSON as JsonSerde writes it, so a parsed record turns back into the same bytes."""
    return _json_text(value).encode("utf-8")


def _is_record(value: object) -> bool:
    return isinstance(value, dict) and {"fn", "args", "result"} <= value.keys()


def _dump_form(stored: Any) -> Any:
    """How a stored entry is written in a dump: the record itself when it is JSON."""
    if isinstance(stored, (bytes, bytearray)):
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            parsed = json.loads(stored)
            if _is_record(parsed) and _json_bytes(parsed) == bytes(stored):
                return parsed
        return {"$base64": base64.b64encode(bytes(stored)).decode("ascii")}
    try:
        _text(stored)
    except (TypeError, ValueError):
        return None
    return {"$object": stored}


def _stored_from_form(form: object) -> Any:
    if _is_record(form):
        try:
            return _json_bytes(form)
        except (TypeError, ValueError):
            return None
    if isinstance(form, dict) and len(form) == 1:
        if isinstance(form.get("$base64"), str):
            with contextlib.suppress(ValueError):
                return base64.b64decode(form["$base64"], validate=True)
            return None
        if "$object" in form:
            return form["$object"]
    return None


def _read_dump(path: str, *, missing_ok: bool) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        if missing_ok:
            return None
        raise
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueDecodingError(
            f"{path!r} is not a memoizer dump: it is not valid JSON ({exc}); remove it or "
            "pass another path"
        ) from exc
    except RecursionError:
        raise ValueDecodingError(
            f"{path!r} is not a memoizer dump: it is nested too deeply to read (no dump "
            "is); it is left as it was. Remove it or pass another path"
        ) from None
    if not isinstance(data, dict) or data.get("format") != DUMP_FORMAT:
        raise ValueDecodingError(
            f"{path!r} is not a pytest-cachemock memoizer dump (no "
            f'"format": "{DUMP_FORMAT}"); it was written by something else. Remove it or '
            "pass another path"
        )
    if data.get("format_version") != DUMP_FORMAT_VERSION:
        raise ValueDecodingError(
            f"{path!r} is a memoizer dump of format version {data.get('format_version')!r}; "
            f"this version reads {DUMP_FORMAT_VERSION}. Record it again"
        )
    scopes = data.get("scopes")
    if not isinstance(scopes, dict) or not all(
        isinstance(b, dict) and isinstance(b.get("entries"), dict) for b in scopes.values()
    ):
        raise ValueDecodingError(
            f"{path!r} is a damaged memoizer dump: its scopes are not as written; record it again"
        )
    return data


def _describe_scopes(scopes: dict[str, Any]) -> str:
    if not scopes:
        return "nothing"
    parts = []
    for block in scopes.values():
        context = _text(block.get("context"))
        n = len(block["entries"])
        parts.append(
            f"{block.get('kind')!r} version {block.get('version')} context {context} "
            f"({n} entr{'y' if n == 1 else 'ies'})"
        )
    return "; ".join(parts)


_tmp_seq = itertools.count()


def _write_json_atomic(path: str, data: object) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    text = json.dumps(data, sort_keys=True, indent=2, allow_nan=False) + "\n"
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{next(_tmp_seq)}.tmp")
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
