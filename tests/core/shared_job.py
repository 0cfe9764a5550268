"""One rank of a torch.distributed job (gloo, CPU) logging into one shared run: started by torchrun
from tests/core/test_shared_run.py. Not a test module.

Usage: torchrun --nproc_per_node N shared_job.py MODE RUNS_DIR STEPS [VICTIM KILL_AT]

MODE ``ok``: every rank trains STEPS steps. ``kill``: rank VICTIM prints its last words at step
KILL_AT and SIGKILLs itself. ``oom``: rank VICTIM grows its memory by 40 MB a step from step 1 on,
then dies the same way. Every rank joins the run through WANDBLITE_SHARED=1 (the run id comes from
torchrun's TORCHELASTIC_RUN_ID); rank 0 is the primary.

What each rank logs at step s (``expected_row`` in the test computes the same):
* ``log({"loss": loss(rank, s)}, step=s, commit=False)``: every rank writes ``loss``, the primary's wins;
* ``log({"rank<r>": {"x": x(rank, s)}, "sum": sum of rank+s over ranks}, step=s)``: a partial that
  stays pending until the next step's call flushes it (commit defaults to False with a step);
* odd ranks on even steps also ``log({"extra<r>": s}, step=s, commit=True)``.
"""

from __future__ import annotations

import datetime
import os
import signal
import sys
import time

import torch
import torch.distributed as dist

import wandblite


def loss(rank: int, step: int) -> float:
    return 1.0 / (1 + step) + rank / 100.0


def x(rank: int, step: int) -> int:
    return rank * 1000 + step


def main() -> None:
    mode, runs_dir, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    victim = int(sys.argv[4]) if len(sys.argv) > 4 else -1
    kill_at = int(sys.argv[5]) if len(sys.argv) > 5 else -1
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    rank, world = dist.get_rank(), dist.get_world_size()
    run = wandblite.init(project="dist", dir=runs_dir, config={"world": world, f"seen_by_{rank}": True})
    hog: list[bytearray] = []
    for step in range(steps):
        t = torch.tensor([float(rank + step)])
        dist.all_reduce(t)
        run.log({"loss": loss(rank, step)}, step=step, commit=False)
        run.log({f"rank{rank}": {"x": x(rank, step)}, "sum": t.item()}, step=step)
        if rank % 2 == 1 and step % 2 == 0:
            run.log({f"extra{rank}": step}, step=step, commit=True)
        print(f"rank {rank} step {step} done", flush=True)
        if mode == "oom" and rank == victim and step >= 1:
            block = bytearray(40 << 20)
            for i in range(0, len(block), 4096):
                block[i] = 1  # touch every page: resident, not just reserved
            hog.append(block)
            time.sleep(0.3)  # let the sampler see each step's memory
        if mode in ("kill", "oom") and rank == victim and step == kill_at:
            print(f"rank {rank} last words at step {step}", flush=True)
            time.sleep(0.3)
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.05)
    run.finish()
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
