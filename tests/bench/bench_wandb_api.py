"""wandb.Api benchmark: ``run.history()`` (wandb's sampled rows) of a long run, on SQLite, as ratios to floors.

Run: ``python tests/bench/bench_wandb_api.py [--steps 1000000] [--repeat 7]``. Not a test: nothing
here asserts a time. The run is ``bench_query.build``'s (rows of ``loss`` and ``epoch`` stored straight
into the tables). Printed, as medians, each beside a floor measured in the same run on the same database:

  (a) ``read.sample_history`` without keys, ``samples=500`` (what ``wandb.Api().run(...).history()``
      asks for): 500 whole rows picked by index        floor: one SELECT of every row's text
  (b) the same with ``keys=["_step", "loss"]`` (``history(keys=["loss"])``): every row is read and
      checked for the keys                              floor: the same SELECT of every row's text
  (c) both through ``wandblite.api_compat.Api`` over HTTP from a ``wandblite server`` process
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_query import _median_ms, _port, build  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()

    import requests
    import sqlalchemy as sa

    from wandblite.server import read
    from wandblite.server.schema import history, runs
    from wandblite.server.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="wl-bench-wapi-"))
    url = f"sqlite:///{tmp / 'bench.db'}"
    store = Store(url, media_dir=tmp / "media")
    build(store, args.steps, 0)
    _, key = store.create_key("bench")
    with store.read_engine.connect() as conn:
        pk = conn.execute(sa.select(runs.c.id).where(runs.c.run_id == "big")).scalar_one()

    def floor() -> int:
        with store.read_engine.connect() as conn:
            return len(conn.execute(sa.select(history.c.row).where(history.c.run == pk)).all())

    whole = _median_ms(lambda: read.sample_history(store, "bench", "big", 500), args.repeat)
    keyed = _median_ms(lambda: read.sample_history(store, "bench", "big", 500, ["_step", "loss"]), args.repeat)
    base = _median_ms(floor, args.repeat)
    print(f"(a) history(), {args.steps:,} rows -> 500: {whole:8.1f} ms  floor (read every row) {base:8.1f} ms  "
          f"ratio {whole / base:.3f}")
    print(f"(b) history(keys=['loss']):          {keyed:8.1f} ms  floor (read every row) {base:8.1f} ms  "
          f"ratio {keyed / base:.2f}")
    store.close()

    port = _port()
    srv = subprocess.Popen([sys.executable, "-c", "import sys; from wandblite_cli.main import main; main(sys.argv[1:])",
                            "server", "--db", url, "--media", str(tmp / "media"), "--port", str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base_url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if requests.get(base_url + "/api/v1/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        from wandblite.api_compat import Api

        run = Api(overrides={"base_url": base_url}, api_key=key).run("bench/big")
        http_whole = _median_ms(lambda: run.history(pandas=False), args.repeat)
        http_keyed = _median_ms(lambda: run.history(keys=["loss"], pandas=False), args.repeat)
        print(f"(c) over HTTP: history() {http_whole:.1f} ms (ratio to floor {http_whole / base:.3f}), "
              f"history(keys=['loss']) {http_keyed:.1f} ms (ratio {http_keyed / base:.2f})")
    finally:
        srv.terminate()
        srv.wait(10)


if __name__ == "__main__":
    main()
