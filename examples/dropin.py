"""An old wandb training script, unchanged but for its import: login, watch, save, artifacts, alert.

Run it: ``python examples/dropin.py`` (torch optional: without it the watch part is skipped).
Then look at what it kept: ``wandblite show runs/<id>`` prints the alerts, files and artifacts.

Frameworks that ``import wandb`` themselves (Transformers' ``report_to="wandb"``, Lightning's
``WandbLogger``) need the explicit opt-in instead of the import line below::

    python -m wandblite.integrations.run train.py        # or, in the script:
    import wandblite.integrations; wandblite.integrations.as_wandb()
"""

from __future__ import annotations

import argparse
import os
import tempfile

import wandblite as wandb


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    wandb.login()  # True offline; login(key=..., host=...) remembers them for `wandblite sync`
    os.environ.setdefault("WANDB_PROJECT", "dropin-demo")  # job scripts' WANDB_* variables are honoured
    run = wandb.init(config=args, config_exclude_keys=["epochs"])

    model = None
    try:
        import torch

        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
        wandb.watch(model, log="all", log_freq=1)  # gradients/<name>, parameters/<name> histograms
        opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    except ImportError:
        print("torch is not installed: skipping watch()")

    for epoch in range(args.epochs):
        if model is not None:
            loss_t = model(torch.randn(16, 4)).pow(2).mean()
            opt.zero_grad()
            loss_t.backward()
            opt.step()
            loss = loss_t.item()
        else:
            loss = 1.0 / (epoch + 1)
        wandb.log({"epoch": epoch, "loss": loss})

    ckpt = os.path.join(run.dir, "model.txt")
    with open(ckpt, "w") as f:
        f.write(f"final loss {loss}\n")
    wandb.save(ckpt, policy="now")  # kept with the run, listed by replay(...).files

    art = wandb.Artifact("demo-model", type="model", metadata={"loss": loss})
    art.add_file(ckpt)
    with art.new_file("notes.txt", mode="w") as f:
        f.write("trained by examples/dropin.py\n")
    run.log_artifact(art, aliases=["best"])  # v0, v1, ... by content digest

    if loss > 0.01:
        wandb.alert(title="loss still high", text=f"loss={loss:.4f}", level=wandb.AlertLevel.WARN)
    run.finish()

    # A later run (or another script under the same runs/ root) uses the artifact.
    with wandb.init(job_type="eval") as eval_run:
        used = eval_run.use_artifact("demo-model:best")
        where = used.download(root=tempfile.mkdtemp())
        print(f"{used.name} downloaded to {where}: {sorted(os.listdir(where))}")

    r = wandb.replay(run.path)
    print("files:", sorted(r.files), "artifacts:", [f"{a['name']}:v{a['version']}" for a in r.artifacts])
    print("alerts:", [a["title"] for a in r.alerts])
    print("history keys:", sorted({k for row in r.scan_history() for k in row})[:8], "...")


if __name__ == "__main__":
    main()
