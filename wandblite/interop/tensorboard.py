"""TensorBoard event files from a wandblite run, written without TensorFlow or ``tensorboard``.

``export_tensorboard(run_dir, out_dir)`` writes ONE file,
``<out_dir>/events.out.tfevents.<created_at>.<host>.wandblite``, that TensorBoard (and its
``EventAccumulator``) reads (a shared run adds one file per writer, see below):

* every numeric history leaf -> a scalar summary (``simple_value``, a float32) at the row's
  ``_step``, tag = the dotted key (``{"acc": {"top1": x}}`` -> ``acc.top1``), wall time = the row's
  ``_timestamp``; bools, strings and ``None`` are not scalars and are left out;
* images (``image-file``, and each member of an ``images/separated`` list as ``<key>/<i>``) ->
  image summaries holding PNG bytes (other formats are re-encoded to PNG with Pillow);
* histograms (``{"_type": "histogram", "values", "bins"}``) -> ``HistogramProto`` with
  ``bucket_limit`` = the right bin edges and ``bucket`` = the counts;
* WAV audio -> audio summaries;
* the config (and the notes, if any) -> text summaries (plugin ``text``, a string tensor) at step 0.

Videos, tables, 3D objects and HTML have no TensorBoard equivalent and are not written.

A shared run (several writers, ``mode="shared"``): the file above holds the merged history, as a
single run's would; each writer gets its own file ``<out_dir>/<label>/events.out.tfevents...``
(the label with path separators replaced), which TensorBoard lists as a run of its own beside it:
the writer's system metrics as scalars ``system/<metric>`` (step = sample index, wall time = the
sample's time) and its console output as the text summary ``console``.

The file name carries the run's creation time, so exporting the same run again replaces the same
file (written to a temporary name and renamed) instead of adding a second copy of every point.

Format (from the TFRecord and ``tensorflow/core/util/event.proto`` / ``summary.proto``
documentation): each record is ``uint64 length | uint32 masked_crc32c(length) | data |
uint32 masked_crc32c(data)``, little-endian, where ``masked(c) = ((c >> 15) | (c << 17)) +
0xa282ead8 (mod 2**32)`` and CRC-32C is the Castagnoli polynomial. ``data`` is an ``Event``
protobuf; the first event of a file carries ``file_version = "brain.Event:2"``. The protobuf
wire encoding is written by hand below (varints, fixed 32/64-bit, length-delimited fields).

Layer 5. Imports: stdlib, numpy, ``wandblite.vocab`` and ``wandblite.interop.common``;
``wandblite.replay`` when exporting; Pillow only to re-encode a non-PNG image.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import struct
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from wandblite.interop.common import writer_file_label
from wandblite.vocab import (
    RESERVED,
    STEP,
    TIMESTAMP,
    TYPE_KEY,
    WANDB_KEY,
    is_number,
    is_subtree,
    is_typed_value,
)

__all__ = ["crc32c", "export_tensorboard", "masked_crc32c", "read_records", "tfrecord"]

# ---------------------------------------------------------------------------------------- CRC-32C


def _make_crc_table() -> list[int]:
    poly = 0x82F63B78  # Castagnoli, bit-reversed
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _make_crc_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``; ``crc32c(b"123456789") == 0xE3069283``."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    # TFRecord masks the CRC so that a CRC stored inside checksummed data does not checksum to a
    # fixed value.
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord(data: bytes) -> bytes:
    """One TFRecord frame around ``data``."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc32c(length)) + data + struct.pack("<I", masked_crc32c(data))


def read_records(path: str | os.PathLike[str]) -> Iterator[bytes]:
    """The payloads of a TFRecord file, checking both CRCs (a torn tail ends the iteration)."""
    data = Path(path).read_bytes()
    pos = 0
    while pos + 12 <= len(data):
        head = data[pos : pos + 8]
        (n,) = struct.unpack("<Q", head)
        (hcrc,) = struct.unpack("<I", data[pos + 8 : pos + 12])
        if hcrc != masked_crc32c(head):
            raise ValueError(f"{path}: bad length checksum at byte {pos}")
        end = pos + 12 + n + 4
        if end > len(data):
            return
        payload = data[pos + 12 : pos + 12 + n]
        (dcrc,) = struct.unpack("<I", data[pos + 12 + n : end])
        if dcrc != masked_crc32c(payload):
            raise ValueError(f"{path}: bad data checksum in the record at byte {pos}")
        yield payload
        pos = end


# ---------------------------------------------------------------------------------------- protobuf
# Wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32.


def _varint(n: int) -> bytes:
    n &= 0xFFFFFFFFFFFFFFFF  # negative int64 values are sent as their 64-bit two's complement
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint((field << 3) | wire)


def _f_varint(field: int, n: int) -> bytes:
    return _key(field, 0) + _varint(n)


def _f_double(field: int, x: float) -> bytes:
    return _key(field, 1) + struct.pack("<d", x)


def _f_float(field: int, x: float) -> bytes:
    # numpy turns out-of-range values into +-inf instead of raising as struct.pack('<f') does.
    with np.errstate(over="ignore"):
        return _key(field, 5) + np.float32(x).tobytes()


def _f_bytes(field: int, data: bytes) -> bytes:
    return _key(field, 2) + _varint(len(data)) + data


def _f_str(field: int, s: str) -> bytes:
    return _f_bytes(field, s.encode("utf-8"))


def _f_packed_doubles(field: int, xs: list[float]) -> bytes:
    return _f_bytes(field, np.asarray(xs, dtype="<f8").tobytes())


# Message builders. Field numbers from tensorflow/core/framework/summary.proto and
# tensorflow/core/util/event.proto.


def _event(wall_time: float, step: int, summary: bytes | None = None, file_version: str | None = None) -> bytes:
    out = _f_double(1, wall_time) + _f_varint(2, step)
    if file_version is not None:
        out += _f_str(3, file_version)
    if summary is not None:
        out += _f_bytes(5, summary)
    return out


def _summary(values: list[bytes]) -> bytes:
    return b"".join(_f_bytes(1, v) for v in values)


def _value_scalar(tag: str, x: float) -> bytes:
    return _f_str(1, tag) + _f_float(2, x)


def _value_image(tag: str, png: bytes, width: int, height: int, colorspace: int) -> bytes:
    image = _f_varint(1, height) + _f_varint(2, width) + _f_varint(3, colorspace) + _f_bytes(4, png)
    return _f_str(1, tag) + _f_bytes(4, image)


def _value_histogram(tag: str, values: list[float], bins: list[float]) -> bytes:
    counts = np.asarray(values, dtype=np.float64)
    edges = np.asarray(bins, dtype=np.float64)
    centers = (edges[:-1] + edges[1:]) / 2 if len(edges) > 1 else edges
    histo = (
        _f_double(1, float(edges[0]) if len(edges) else 0.0)
        + _f_double(2, float(edges[-1]) if len(edges) else 0.0)
        + _f_double(3, float(counts.sum()))
        + _f_double(4, float((counts * centers).sum()) if len(counts) else 0.0)
        + _f_double(5, float((counts * centers * centers).sum()) if len(counts) else 0.0)
        + _f_packed_doubles(6, edges[1:].tolist())
        + _f_packed_doubles(7, counts.tolist())
    )
    return _f_str(1, tag) + _f_bytes(5, histo)


def _value_audio(tag: str, wav: bytes, sample_rate: float, channels: int, frames: int) -> bytes:
    audio = (_f_float(1, sample_rate) + _f_varint(2, channels) + _f_varint(3, frames) + _f_bytes(4, wav)
             + _f_str(5, "audio/wav"))
    return _f_str(1, tag) + _f_bytes(6, audio)


def _value_text(tag: str, text: str) -> bytes:
    # SummaryMetadata{plugin_data{plugin_name: "text"}} + TensorProto{dtype: DT_STRING (7),
    # tensor_shape: {} (a scalar), string_val: [text]}.
    metadata = _f_bytes(1, _f_str(1, "text"))
    tensor = _f_varint(1, 7) + _f_bytes(2, b"") + _f_bytes(8, text.encode("utf-8"))
    return _f_str(1, tag) + _f_bytes(9, metadata) + _f_bytes(8, tensor)


# ---------------------------------------------------------------------------------------- export


def _leaves(row: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in row.items():
        if not prefix and k in RESERVED:
            continue
        key = f"{prefix}{k}"
        if is_subtree(v):
            yield from _leaves(v, key + ".")
        else:
            yield key, v


def _png(data: bytes) -> tuple[bytes, int, int, int]:
    """PNG bytes, width, height and TensorBoard colorspace (1 L, 2 LA, 3 RGB, 4 RGBA) of an image."""
    from PIL import Image as PILImage

    im: Any = PILImage.open(io.BytesIO(data))
    if im.mode not in ("L", "LA", "RGB", "RGBA"):
        im = im.convert("RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB")
    if im.format != "PNG":
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        data = buf.getvalue()
    return data, im.width, im.height, {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[im.mode]


def _media_values(tag: str, v: Any, warn: list[str]) -> list[bytes]:
    t = v.get(TYPE_KEY)
    try:
        if t == "histogram":
            return [_value_histogram(tag, list(v["values"]), list(v["bins"]))]
        if t == "image-file":
            png, w, h, cs = _png(v.bytes())
            return [_value_image(tag, png, w, h, cs)]
        if t == "images/separated" and hasattr(v, "media"):
            out: list[bytes] = []
            for i, item in enumerate(v.media()):
                png, w, h, cs = _png(item.bytes())
                out.append(_value_image(f"{tag}/{i}", png, w, h, cs))
            return out
        if t == "audio-file" and str(v.get("path", "")).endswith(".wav"):
            import wave

            data = v.bytes()
            with wave.open(io.BytesIO(data), "rb") as w_:
                return [_value_audio(tag, data, float(w_.getframerate()), w_.getnchannels(), w_.getnframes())]
    except Exception as exc:  # noqa: BLE001 - one unreadable blob must not stop the export
        warn.append(f"{tag}: {t} not exported ({exc})")
    return []


def _config_markdown(config: Mapping[str, Any]) -> str:
    from wandblite.replay import flatten

    flat = flatten({k: v for k, v in config.items() if not str(k).startswith(WANDB_KEY)})
    lines = ["| key | value |", "|---|---|"]
    for k in sorted(flat):
        val = json.dumps(flat[k], default=str) if not isinstance(flat[k], str) else flat[k]
        lines.append(f"| {k} | {val.replace('|', '&#124;')} |")
    return "\n".join(lines)


def export_tensorboard(run_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                       warnings: list[str] | None = None, files: list[Path] | None = None) -> Path:
    """Write the run's event file into ``out_dir`` (created if needed); returns its path.

    ``warnings`` (if given) receives one line per value that could not be exported; ``files`` (if
    given) every event file written, the run's first, then a shared run's writers' files.
    """
    from wandblite.replay import Replay

    r = Replay(run_dir)
    dest = _export_run(r, Path(out_dir), warnings if warnings is not None else [])
    written = [dest]
    if r.shared:
        created = float(r.created_at or time.time())
        for w in r.writers:
            written.append(_export_writer(r, w, Path(out_dir), created))
    if files is not None:
        files.extend(written)
    return dest


def _export_run(r: Any, out: Path, warn: list[str]) -> Path:
    """The run's own event file (a shared run: its merged history) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    created = r.created_at or time.time()  # loads the metadata: one pass; the rows are a second
    host = (r.host or socket.gethostname()).replace("/", "_")
    dest = out / f"events.out.tfevents.{int(created)}.{host}.wandblite"
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".tfevents", dir=out)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(tfrecord(_event(float(created), 0, file_version="brain.Event:2")))
            texts = [_value_text("config", _config_markdown(r.config))]
            if r.notes:
                texts.append(_value_text("notes", r.notes))
            f.write(tfrecord(_event(float(created), 0, summary=_summary(texts))))

            def write_row(row: dict[str, Any]) -> None:
                values: list[bytes] = []
                for tag, v in _leaves(row):
                    if is_number(v):
                        values.append(_value_scalar(tag, float(v)))
                    elif is_typed_value(v):
                        values.extend(_media_values(tag, v, warn))
                if values:
                    ts: Any = row.get(TIMESTAMP)
                    wall = float(ts) if is_number(ts) else float(created)
                    f.write(tfrecord(_event(wall, int(row[STEP]), summary=_summary(values))))

            for row in r.scan_history():
                write_row(row)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, dest)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        raise
    return dest


def _export_writer(r: Any, w: dict[str, Any], out: Path, created: float) -> Path:
    """One writer of a shared run as its own TensorBoard run: ``<out>/<label>/events...``.

    Its system-metrics samples become scalars ``system/<metric>`` (step = the sample's index in
    the writer's stream, wall time = the sample's time) and its console output one text summary
    ``console`` (a Markdown code block) at step 0; the merged history is the run's own file.
    """
    name = "" if w["label"] is None else str(w["label"])
    wdir = out / writer_file_label(name)
    wdir.mkdir(parents=True, exist_ok=True)
    host = str(w.get("host") or r.host or socket.gethostname()).replace("/", "_")
    dest = wdir / f"events.out.tfevents.{int(created)}.{host}.wandblite"
    started = float(w.get("started_at") or created)
    events = [tfrecord(_event(started, 0, file_version="brain.Event:2"))]
    for i, (ts, metrics) in enumerate(r.system_metrics(writer=name)):
        values = [_value_scalar(f"system/{k}", float(v)) for k, v in metrics.items() if is_number(v)]
        if values:
            events.append(tfrecord(_event(float(ts), i, summary=_summary(values))))
    lines = list(r.console(joined=True, writer=name))
    if lines:
        text = "".join(line for _ts, _stream, line in lines)
        block = "\n".join("    " + x for x in text.splitlines())  # Markdown code: shown verbatim
        events.append(tfrecord(_event(float(lines[-1][0]), 0, summary=_summary([_value_text("console", block)]))))
    _write_atomically(dest, events)
    return dest


def _write_atomically(dest: Path, records: list[bytes]) -> None:
    """``records`` as the file ``dest``: a temporary file in its directory, fsync, rename."""
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".tfevents", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            for rec in records:
                f.write(rec)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
