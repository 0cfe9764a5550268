"""Read a wandb ``.wandb`` transaction log with the wandb package's own protobuf classes (tests only).

The framing is LevelDB's log format as wandb writes it: a 7-byte file header (``:W&B``, magic
0xBEE1 little-endian, version 0), then 32 KiB blocks of chunks ``crc32 u32 | length u16 | type u8 |
data`` (type 1 full, 2 first, 3 middle, 4 last); a block tail shorter than a chunk header is zero
padding. Each reassembled record is a ``wandb.proto.wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BLOCK = 32 * 1024
HEADER = 7


def records(path: str | Path) -> Iterator[Any]:
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path}: not a wandb transaction log"
    pos = HEADER
    pending = b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:
            pos += left  # zero padding at the end of a block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 0:
            break
        if kind == 1:
            pending = chunk
        elif kind == 2:
            pending = chunk
            continue
        elif kind == 3:
            pending += chunk
            continue
        else:
            pending += chunk
        rec = pb.Record()
        rec.ParseFromString(pending)
        yield rec


def _loads(text: str) -> Any:
    return json.loads(text)  # json accepts NaN/Infinity as wandb writes them


def _put(tree: dict[str, Any], path: list[str], value: Any) -> None:
    for p in path[:-1]:
        tree = tree.setdefault(p, {})
    tree[path[-1]] = value


def _items(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for it in items:
        path = list(it.nested_key) or [it.key]
        _put(out, path, _loads(it.value_json))
    return out


def read_run(path: str | Path) -> dict[str, Any]:
    """The run as wandb recorded it: meta, config, history rows (nested), summary, console, exit."""
    run: dict[str, Any] = {"history": [], "config": {}, "summary": {}, "console": [], "exit_code": None,
                           "metrics": [], "meta": {}}
    for rec in records(path):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            run["meta"] = {"id": r.run_id, "name": r.display_name, "project": r.project, "tags": list(r.tags),
                           "notes": r.notes, "group": r.run_group, "job_type": r.job_type}
            for it in r.config.update:
                run["config"][it.key] = _loads(it.value_json)
        elif kind == "config":
            for it in rec.config.update:
                if it.nested_key:
                    _put(run["config"], list(it.nested_key), _loads(it.value_json))
                else:
                    run["config"][it.key] = _loads(it.value_json)
            for it in rec.config.remove:
                run["config"].pop(it.key, None)
        elif kind == "history":
            row = _items(rec.history.item)
            row.setdefault("_step", rec.history.step.num)
            run["history"].append(row)
        elif kind == "summary":
            for it in rec.summary.update:
                _put(run["summary"], list(it.nested_key) or [it.key], _loads(it.value_json))
            for it in rec.summary.remove:
                path = list(it.nested_key) or [it.key]
                node = run["summary"]
                for p in path[:-1]:
                    node = node.get(p, {})
                node.pop(path[-1], None)
        elif kind == "output_raw":
            run["console"].append((rec.output_raw.output_type, rec.output_raw.line,
                                   rec.output_raw.timestamp.ToNanoseconds() / 1e9))
        elif kind == "exit":
            run["exit_code"] = rec.exit.exit_code
        elif kind == "metric":
            run["metrics"].append(rec.metric)
    return run
