"""A recognisable API key, and a search for it in anything a test can get hold of.

Use it wherever something could carry the key out of the kernel: outputs, printed text,
error messages, exported or saved files, and (for the batch and Dask work) caches on
disk and task graphs::

    from canary import CANARY_KEY, assert_no_key

    ...  # run with OPENROUTER_API_KEY=CANARY_KEY (FakeOpenRouter(api_key=CANARY_KEY))
    assert_no_key(messages, tmp_path, graph)

:func:`key_hits` looks inside strings and bytes (also percent-, base64- and
JSON-escaped forms), files and whole directories, mappings and sequences, exceptions, and
any other object through ``pickle`` (else ``repr``): what a Dask graph or a cache would
hold. It reports the full key and also a long distinctive piece of it, so a key cut
short in a message is still found; the masked label OpenRouter itself shows for a key
(``sk-or-v1-can...ary``) is not a hit.
"""

from __future__ import annotations

import base64
import json
import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = ["CANARY_KEY", "assert_no_key", "key_hits"]

CANARY_KEY = "sk-or-v1-canary-" + "c4n4ry0k3y" * 5 + "canary"
_PIECE = "c4n4ry0k3yc4n4ry0k3y"  # in every 20-character stretch of the key's middle


def _needles() -> list[bytes]:
    pieces = [CANARY_KEY, _PIECE]
    needles = {p.encode() for p in pieces}
    needles |= {quote(p, safe="").encode() for p in pieces}
    needles |= {json.dumps(p).strip('"').encode() for p in pieces}
    needles.add(base64.b64encode(CANARY_KEY.encode())[:40])
    return sorted(needles)


_NEEDLES = _needles()


def key_hits(*things: Any) -> list[str]:
    """Where the key (or a long piece of it) appears in ``things``; [] when nowhere."""
    hits: list[str] = []
    for i, thing in enumerate(things):
        _search(thing, f"[{i}]", hits, depth=0)
    return hits


def assert_no_key(*things: Any) -> None:
    hits = key_hits(*things)
    assert hits == [], f"the API key was found in: {hits[:10]}"


def _search(thing: Any, where: str, hits: list[str], depth: int) -> None:
    if depth > 50:
        _search_bytes(repr(thing).encode(), where, hits)
    elif isinstance(thing, str):
        _search_bytes(thing.encode("utf-8", "surrogatepass"), where, hits)
    elif isinstance(thing, bytes | bytearray | memoryview):
        _search_bytes(bytes(thing), where, hits)
    elif isinstance(thing, Path):
        _search_path(thing, hits)
    elif isinstance(thing, BaseException):
        _search((type(thing).__name__, str(thing), thing.args, vars(thing)), where, hits, depth + 1)
    elif isinstance(thing, Mapping):
        for key, value in thing.items():
            _search(key, f"{where} key", hits, depth + 1)
            _search(value, f"{where}[{key!r}]", hits, depth + 1)
    elif isinstance(thing, Iterable) and not hasattr(thing, "read"):
        for n, item in enumerate(list(thing)):
            _search(item, f"{where}[{n}]", hits, depth + 1)
    else:
        try:
            data = pickle.dumps(thing, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # not picklable: its attributes, else what it shows of itself
            if hasattr(thing, "__dict__"):
                _search(vars(thing), f"{where} ({type(thing).__name__})", hits, depth + 1)
                return
            data = repr(thing).encode()
        _search_bytes(data, f"{where} ({type(thing).__name__})", hits)


def _search_path(path: Path, hits: list[str]) -> None:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if file.is_file():
            _search_bytes(file.read_bytes(), str(file), hits)


def _search_bytes(data: bytes, where: str, hits: list[str]) -> None:
    for needle in _NEEDLES:
        at = data.find(needle)
        if at >= 0:
            context = data[max(0, at - 40) : at + len(needle) + 20].decode("utf-8", "replace")
            hits.append(f"{where}: ...{context}...")
            return
