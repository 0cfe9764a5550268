"""The training script of train.sbatch: resumes its run after a requeue and continues from its step.

wandblite.init reads WANDB_RUN_ID and WANDB_RESUME=allow from the job script; on a requeue the run
already exists, so init continues it (run.step is where the previous attempt stopped) instead of
starting over. Real training would also reload its checkpoint here.
"""

import math
import time

import wandblite

run = wandblite.init(config={"lr": 3e-4, "steps": 10_000}, resume="allow")
start = run.step
if run.resumed:
    print(f"resuming run {run.id} at step {start}", flush=True)
for step in range(start, run.config["steps"]):
    loss = math.exp(-step / 2000) + 0.01 * math.sin(step)
    run.log({"loss": loss, "lr": run.config["lr"]})
    time.sleep(0.01)  # stands for a training step
run.finish()
