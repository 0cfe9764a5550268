"""Quick start: log a small training run the way a W&B script does.

    python examples/quickstart.py            # writes ./runs/<id>/
    wandblite ls runs
    wandblite show runs/<id>

Only the import line differs from a wandb script.
"""

from __future__ import annotations

import math
import random

import wandblite as wandb


def main() -> None:
    config = {"lr": 0.1, "epochs": 3, "batch_size": 32, "model": "mlp"}
    run = wandb.init(project="quickstart", config=config, tags=["example"])
    run.define_metric("val/acc", summary="max")
    rnd = random.Random(0)
    step = 0
    for epoch in range(config["epochs"]):
        for _batch in range(100):
            loss = math.exp(-step / 120) + 0.05 * rnd.random()
            run.log({"train/loss": loss, "train/lr": config["lr"] * 0.99**step, "epoch": epoch})
            step += 1
        run.log({"val/acc": 1 - math.exp(-(epoch + 1)) + 0.01 * rnd.random(), "val/loss": loss * 1.1})
    run.summary["best_epoch"] = config["epochs"] - 1
    run.finish()
    print(f"logged {run.step} history rows to {run.path}")
    print(f"next: wandblite show {run.path}")


if __name__ == "__main__":
    main()
