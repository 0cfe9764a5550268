"""Core benchmark: log cost, replay speed, bytes per step and scan memory, as ratios to floors.

Run: ``python tests/bench/bench_core.py [--quick]`` (or ``make bench``). Not a test: nothing here
asserts a time. Each figure is printed beside a floor measured in the same run on the same disk,
and the ratio is what the targets of the core issue speak of:

  (a) us per log() of 10 float scalars        / msgpack.packb + os.write of the same dict   <= 1.5x
  (b) us per log(commit=False) of 10 scalars   / the same floor                              <= 1.5x
  (c) rows/s replaying a 1M-step run           / plain msgpack unpacking of its records      >= 0.6x
  (d) bytes on disk per step                   / msgpack size of the logged dict             <= 1.2x
  (e) peak memory of scan_history(), 1M steps  / the same over 10k steps                     <= 1.0x
  (f) (a) with console capture and the system sampler on / (a) with both off                 <= 1.1x
  (g) log() of one 64x64 RGB Image             / Pillow PNG encoding of the array + os.write  <= 1.3x
  (h) log() of a Histogram of 10,000 samples   / numpy.histogram of the samples              <= 1.5x
  (i) W2 partials: per step three log(commit=False) of 2-3 keys and one committing log
                                               / msgpack.packb + os.write of the same 4 dicts <= 1.2x
      and the same with explicit step= on every call (the last with commit=True); also printed
      against the framed floor: the same records framed in Python (format.frame) + os.write
  (j) finish() after 1M steps                  / finish() after 10k steps                    ~ 1.0x
      (quiet, as here; with the banner on, finish also folds what the ticker has not yet)

(i) is CPU time of the logging thread (time.thread_time, the write syscalls included), over many
short interleaved batches: wall time on a shared machine is mostly other processes' noise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgpack


def _dict10(i: int) -> dict[str, float]:
    return {f"metric_{k}": (i + k) * 0.001 for k in range(10)}


def bench_log(tmp: Path, n: int, batches: int, commit: bool | None, extras: bool = True) -> tuple[float, float]:
    """Median us per call for wandblite's log and for the floor, over interleaved batches.

    ``extras``: console capture (wrap) and the system sampler on, as by default; off otherwise.
    """
    import wandblite

    d = _dict10(1)
    ours: list[float] = []
    floor: list[float] = []
    settings = None if extras else wandblite.Settings(console="off", disable_stats=True)
    tag = ("p" if commit is False else "") + ("" if extras else "x")
    for b in range(batches):
        run = wandblite.init(project="bench", id=f"log{b}{tag}", dir=str(tmp), settings=settings)
        log = run.log
        t0 = time.perf_counter()
        if commit is False:
            for _ in range(n):
                log(d, commit=False)
        else:
            for _ in range(n):
                log(d)
        ours.append((time.perf_counter() - t0) / n * 1e6)
        run.finish()
        fd = os.open(tmp / f"floor{b}.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        packb, write = msgpack.packb, os.write
        t0 = time.perf_counter()
        for _ in range(n):
            write(fd, packb(d))
        floor.append((time.perf_counter() - t0) / n * 1e6)
        os.close(fd)
    return statistics.median(ours), statistics.median(floor)


def bench_media_log(tmp: Path, n: int, batches: int) -> tuple[float, float, float, float]:
    """Median us per log() of an image and of a histogram, with their floors."""
    import io

    import numpy as np
    from PIL import Image as PILImage

    import wandblite

    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8) for _ in range(n)]
    samples = rng.normal(size=10_000)
    img_ours, img_floor, hist_ours, hist_floor = [], [], [], []
    for b in range(batches):
        run = wandblite.init(project="bench", id=f"media{b}", dir=str(tmp),
                             settings=wandblite.Settings(console="off", disable_stats=True))
        t0 = time.perf_counter()
        for a in imgs:
            run.log({"img": wandblite.Image(a)})
        img_ours.append((time.perf_counter() - t0) / n * 1e6)
        t0 = time.perf_counter()
        for _ in range(n):
            run.log({"h": wandblite.Histogram(samples)})
        hist_ours.append((time.perf_counter() - t0) / n * 1e6)
        run.finish()
        fd = os.open(tmp / f"img-floor{b}.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        t0 = time.perf_counter()
        for a in imgs:
            buf = io.BytesIO()
            PILImage.fromarray(a).save(buf, format="PNG")
            os.write(fd, buf.getvalue())
        img_floor.append((time.perf_counter() - t0) / n * 1e6)
        os.close(fd)
        t0 = time.perf_counter()
        for _ in range(n):
            np.histogram(samples, bins=64)
        hist_floor.append((time.perf_counter() - t0) / n * 1e6)
    med = statistics.median
    return med(img_ours), med(img_floor), med(hist_ours), med(hist_floor)


_W2 = (
    {"loss": 0.25, "lr": 0.001},
    {"grad_norm": 1.5, "tokens": 4096, "phase": "train"},
    {"mfu": 0.41, "mem_gb": 12.5},
    {"step_time": 0.2},
)


def bench_w2(tmp: Path, steps: int, batches: int,
             explicit_step: bool) -> tuple[float, float, float, float, float]:
    """Median CPU us per W2 step (three partials + one commit) for log() and for the floor, the
    median of the per-batch ratios, and the same two against the records framed in Python.

    Interleaved: each batch logs ``steps`` steps into a fresh run, then packs and writes the same
    dicts to a plain file; a batch's ratio compares two measurements taken moments apart, so it
    is steadier than the ratio of the medians on a shared machine.
    """
    import wandblite

    a, b, c, d = _W2
    clock = time.thread_time
    ours: list[float] = []
    floor: list[float] = []
    settings = wandblite.Settings(console="off", disable_stats=True, quiet=True)
    tag = "s" if explicit_step else ""
    packb, write, now = msgpack.packb, os.write, time.time
    from wandblite.events import LOG_SCALARS as kind
    from wandblite.format import frame

    framed: list[float] = []
    commit_a, commit_d = (None, True) if explicit_step else (False, None)
    for k in range(batches):
        run = wandblite.init(project="bench", id=f"w2{tag}{k}", dir=str(tmp), settings=settings)
        log = run.log
        if explicit_step:
            t0 = clock()
            for i in range(steps):
                log(a, step=i)
                log(b, step=i)
                log(c, step=i)
                log(d, step=i, commit=True)
        else:
            t0 = clock()
            for _ in range(steps):
                log(a, commit=False)
                log(b, commit=False)
                log(c, commit=False)
                log(d)
        ours.append((clock() - t0) / steps * 1e6)
        run.finish()
        fd = os.open(tmp / f"w2-floor{tag}{k}.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        t0 = clock()
        for _ in range(steps):
            write(fd, packb(a))
            write(fd, packb(b))
            write(fd, packb(c))
            write(fd, packb(d))
        floor.append((clock() - t0) / steps * 1e6)
        t0 = clock()
        for i in range(steps):  # the records themselves, framed in Python: [ts, data, step, commit]
            s = i if explicit_step else None
            write(fd, frame(kind, packb([now(), a, s, commit_a])))
            write(fd, frame(kind, packb([now(), b, s, commit_a])))
            write(fd, frame(kind, packb([now(), c, s, commit_a])))
            write(fd, frame(kind, packb([now(), d, s, commit_d])))
        framed.append((clock() - t0) / steps * 1e6)
        os.close(fd)
    ratio = statistics.median(o / f for o, f in zip(ours, floor, strict=True))
    framed_ratio = statistics.median(o / f for o, f in zip(ours, framed, strict=True))
    return statistics.median(ours), statistics.median(floor), ratio, statistics.median(framed), framed_ratio


def make_run(tmp: Path, steps: int, run_id: str, banner: bool = False, settle: float = 0.0) -> tuple[Path, float]:
    """A run of ``steps`` logged steps; returns its directory and the seconds its finish() took.

    ``banner``: the finish banner on (its stderr lines are swallowed), so finish folds whatever the
    ticker's background catch-up has not folded yet; off, finish reads nothing. ``settle``: wait
    that long after logging (past one periodic fsync), then log 1,000 steps more, so that runs of
    any length reach finish with the same unsynced tail: finish's fsync costs what was written
    since the last periodic fsync, whatever the run's length.
    """
    import contextlib
    import io

    import wandblite

    silent = os.environ.pop("WANDBLITE_SILENT", None) if banner else None
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            run = wandblite.init(project="bench", id=run_id, dir=str(tmp), settings=wandblite.Settings(quiet=not banner))
            for i in range(steps):
                run.log(_dict10(i))
            if settle:
                time.sleep(settle)
                for i in range(1_000):
                    run.log(_dict10(steps + i))
            t0 = time.perf_counter()
            run.finish()
            took = time.perf_counter() - t0
    finally:
        if silent is not None:
            os.environ["WANDBLITE_SILENT"] = silent
    return tmp / run_id, took


def bench_replay(run_dir: Path, tmp: Path) -> tuple[float, float, float, int]:
    """Rows/s of replay (full history scan) against plain msgpack unpacking of the same payloads.

    Two floors: one streaming ``msgpack.Unpacker`` over the concatenated payloads (the fastest
    plain unpacking there is), and ``msgpack.unpackb`` of each record's payload in turn.
    """
    import wandblite
    from wandblite.format import RecordReader
    from wandblite.runfile import segments

    plain = tmp / "plain.msgpack"
    with open(plain, "wb") as f:
        for seg in segments(run_dir):
            for _offset, _kind, payload in RecordReader(seg):
                f.write(payload)
    t0 = time.perf_counter()
    n_plain = 0
    with open(plain, "rb") as f:
        for _obj in msgpack.Unpacker(f, raw=False):
            n_plain += 1
    t_plain = time.perf_counter() - t0
    payloads = []
    for seg in segments(run_dir):
        payloads.extend(p for _o, _k, p in RecordReader(seg))
    unpackb = msgpack.unpackb
    t0 = time.perf_counter()
    for p in payloads:
        unpackb(p)
    t_each = time.perf_counter() - t0
    del payloads
    t0 = time.perf_counter()
    r = wandblite.replay(run_dir)
    rows = 0
    for _row in r.scan_history():
        rows += 1
    t_ours = time.perf_counter() - t0
    return rows / t_ours, n_plain / t_plain, n_plain / t_each, rows


def peak_scan_memory(run_dir: Path) -> tuple[int, int]:
    """Peak RSS growth and peak traced Python allocations (KiB) of a fresh interpreter scanning the run."""
    code = (
        "import resource, sys, tracemalloc, wandblite\n"
        "r = wandblite.replay(sys.argv[1])\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "tracemalloc.start()\n"
        "n = sum(1 for _ in r.scan_history())\n"
        "peak = tracemalloc.get_traced_memory()[1] // 1024\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base, peak, n)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(run_dir)], capture_output=True, text=True, check=True)
    rss, traced, _n = out.stdout.split()
    return int(rss), int(traced)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (100k-step replay)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args()
    os.environ.setdefault("WANDBLITE_SILENT", "1")
    tmp = Path(tempfile.mkdtemp(prefix="wandblite-bench-"))
    results: dict[str, float] = {}
    from wandblite.format import ACCELERATED

    print(f"C accelerator: {'on' if ACCELERATED else 'off (not built, or WANDBLITE_NO_SPEEDUPS=1)'}")
    results["accelerated"] = float(ACCELERATED)
    try:
        n, batches = (5_000, 7) if args.quick else (20_000, 11)
        ours, floor = bench_log(tmp, n, batches, None)
        results.update(log_us=ours, log_floor_us=floor, log_ratio=ours / floor)
        print(f"(a) log() of 10 scalars      {ours:7.2f} us/call  floor {floor:6.2f} us  ratio {ours / floor:5.2f}x  (target <= 1.5x)")
        ours, floor = bench_log(tmp, n, batches, False)
        results.update(partial_us=ours, partial_floor_us=floor, partial_ratio=ours / floor)
        print(f"(b) log(commit=False)        {ours:7.2f} us/call  floor {floor:6.2f} us  ratio {ours / floor:5.2f}x  (target <= 1.5x)")
        bare, _floor = bench_log(tmp, n, batches, None, extras=False)
        with_extras = results["log_us"]
        results.update(log_bare_us=bare, extras_ratio=with_extras / bare)
        print(f"(f) log() capture+sampler on {with_extras:7.2f} us/call  off {bare:6.2f} us    ratio {with_extras / bare:5.2f}x  (target <= 1.1x)")

        img, img_floor, hist, hist_floor = bench_media_log(tmp, 200 if args.quick else 500, 3 if args.quick else 5)
        results.update(image_us=img, image_floor_us=img_floor, image_ratio=img / img_floor,
                       hist_us=hist, hist_floor_us=hist_floor, hist_ratio=hist / hist_floor)
        print(f"(g) log() of a 64x64 Image   {img:7.1f} us/call  floor {img_floor:6.1f} us  ratio {img / img_floor:5.2f}x  (target <= 1.3x)")
        print(f"(h) log() of a Histogram 10k {hist:7.1f} us/call  floor {hist_floor:6.1f} us  ratio {hist / hist_floor:5.2f}x  (target <= 1.5x)")

        w2_steps, w2_batches = (1_000, 21) if args.quick else (2_000, 61)
        for explicit, name, label in ((False, "w2", "(i) W2 partials, commit=False"), (True, "w2_step", "    W2 with step= each call ")):
            ours, floor, ratio, framed, framed_ratio = bench_w2(tmp, w2_steps, w2_batches, explicit)
            results.update({f"{name}_us": ours, f"{name}_floor_us": floor, f"{name}_ratio": ratio,
                            f"{name}_framed_floor_us": framed, f"{name}_framed_ratio": framed_ratio})
            print(f"{label}{ours:7.2f} us/step  floor {floor:6.2f} us  ratio {ratio:5.2f}x  (target <= 1.2x; CPU time, "
                  "median of per-batch ratios)")
            print(f"{'':30s}{'':16s}framed {framed:6.2f} us  ratio {framed_ratio:5.2f}x  (the records framed in "
                  "Python: frame(packb([ts, data, step, commit])) + os.write)")

        steps = 100_000 if args.quick else 1_000_000
        big, fin_big = make_run(tmp, steps, "big")
        small, fin_small = make_run(tmp, 10_000, "small")
        results.update(finish_ms_small=fin_small * 1e3, finish_ms_big=fin_big * 1e3, finish_ratio=fin_big / fin_small)
        print(f"(j) finish() after {steps:,} steps {fin_big * 1e3:7.2f} ms   after 10,000 {fin_small * 1e3:6.2f} ms  "
              f"ratio {fin_big / fin_small:5.2f}x  (quiet, right after a tight logging loop: fsync of its unsynced tail)")
        settle = 2.5  # past the default 2 s periodic fsync
        _b, set_big = make_run(tmp, steps, "big-settled", settle=settle)
        _s, set_small = make_run(tmp, 10_000, "small-settled", settle=settle)
        results.update(finish_settled_ms_small=set_small * 1e3, finish_settled_ms_big=set_big * 1e3,
                       finish_settled_ratio=set_big / set_small)
        print(f"    the same unsynced tail:    {set_big * 1e3:7.2f} ms   after 10,000 {set_small * 1e3:6.2f} ms  "
              f"ratio {set_big / set_small:5.2f}x  (target: the same within noise; 1,000 steps after a periodic fsync)")
        _b, ban_big = make_run(tmp, steps, "big-banner", banner=True)
        _s, ban_small = make_run(tmp, 10_000, "small-banner", banner=True)
        results.update(finish_banner_ms_small=ban_small * 1e3, finish_banner_ms_big=ban_big * 1e3)
        print(f"    with the banner:           {ban_big * 1e3:7.2f} ms   after 10,000 {ban_small * 1e3:6.2f} ms  "
              "(folds the tail the ticker had not read: logged in a tight loop, up to one fsync interval)")
        ours_rps, plain_rps, each_rps, rows = bench_replay(big, tmp)
        results.update(replay_rows_per_s=ours_rps, replay_floor_rows_per_s=plain_rps, replay_ratio=ours_rps / plain_rps,
                       replay_unpackb_rows_per_s=each_rps, replay_unpackb_ratio=ours_rps / each_rps)
        print(f"(c) replay {rows:>9,} rows      {ours_rps:9,.0f} rows/s  floor {plain_rps:9,.0f} rows/s  ratio {ours_rps / plain_rps:5.2f}x  (target >= 0.6x; streaming Unpacker floor)")
        print(f"                                                 unpackb each {each_rps:9,.0f} rows/s  ratio {ours_rps / each_rps:5.2f}x  (per-record unpackb floor)")

        from wandblite.runfile import segments

        size = sum(p.stat().st_size for p in segments(big))
        per_step = size / steps
        dict_size = statistics.mean(len(msgpack.packb(_dict10(i))) for i in range(0, steps, max(1, steps // 1000)))
        results.update(bytes_per_step=per_step, msgpack_dict_bytes=dict_size, bytes_ratio=per_step / dict_size)
        print(f"(d) bytes on disk per step   {per_step:7.1f} B        msgpack dict {dict_size:6.1f} B  ratio {per_step / dict_size:5.2f}x  (target <= 1.2x)")

        (rss_small, tr_small), (rss_big, tr_big) = peak_scan_memory(small), peak_scan_memory(big)
        results.update(scan_rss_kib_small=rss_small, scan_rss_kib_big=rss_big, scan_traced_kib_small=tr_small,
                       scan_traced_kib_big=tr_big)
        print(f"(e) scan_history peak, {steps:,} steps vs 10,000: RSS growth {rss_big} vs {rss_small} KiB, "
              f"traced allocations {tr_big} vs {tr_small} KiB  (target: big <= small, within noise)")
        if args.json:
            print(json.dumps(results))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    main()
