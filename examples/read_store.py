"""Read runs back from the store that `wandblite sync` filled, with the query API.

    wandblite sync runs                  # no server configured: into the embedded local store
    python examples/read_store.py        # what the store holds (or a server: $WANDBLITE_SERVER)

Notebook code written against `wandblite.replay(path)` works on these Run objects too.
"""

from __future__ import annotations

import wandblite


def main() -> None:
    api = wandblite.Api()
    for project in api.projects():
        runs = api.runs(project.name, order="-created_at")
        print(f"project {project.name}: {len(runs)} run(s) in the store")
        for run in runs[:5]:
            rows = run.history(keys=["train/loss"], samples=5, pandas=False)
            losses = ", ".join(f"{r['train/loss']:.3f}@{r['_step']}" for r in rows if "train/loss" in r)
            print(f"  {run.id} {run.name} {run.state}  summary keys: {len(run.summary)}"
                  + (f"  train/loss (5 samples): {losses}" if losses else ""))


if __name__ == "__main__":
    main()
