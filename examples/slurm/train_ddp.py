"""The training script of train_multinode.sbatch: every rank of a torch.distributed job logs into ONE
wandblite run.

Nothing here is shared-mode specific: the job script sets WANDBLITE_SHARED=1, so wandblite.init joins
the job's shared run (id from SLURM_JOB_ID and SLURM_STEP_ID, label rank<N> from SLURM_PROCID, rank 0
the primary that decides how the run ended). Written for wandb's shared mode instead, the same init is

    wandblite.init(id=run_id, settings=wandblite.Settings(mode="shared", x_label=f"rank{rank}",
                   x_primary=rank == 0, x_update_finish_state=rank == 0))

Every rank logs with the global step, so the ranks' rows line up: replay merges them by _step (keys
of one step combined; a key several ranks logged keeps rank 0's value). Works under torchrun too
(`torchrun --nproc_per_node 4 train_ddp.py`, with WANDBLITE_SHARED=1).
"""

import os

import torch
import torch.distributed as dist

import wandblite

backend = "nccl" if torch.cuda.is_available() else "gloo"
dist.init_process_group(backend)  # MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE from the launcher
rank, world = dist.get_rank(), dist.get_world_size()
device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}") if backend == "nccl" else torch.device("cpu")

run = wandblite.init(project=os.environ.get("WANDB_PROJECT", "ddp-example"), resume="allow",
                     config={"lr": 0.05, "steps": int(os.environ.get("STEPS", "200")), "world_size": world})
torch.manual_seed(rank)
model = torch.nn.Linear(16, 1).to(device)
opt = torch.optim.SGD(model.parameters(), lr=run.config["lr"])
for step in range(run.config["steps"]):
    x = torch.randn(32, 16, device=device)
    loss = ((model(x) - x.sum(dim=1, keepdim=True)) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    for p in model.parameters():  # plain data-parallel averaging of the gradients
        dist.all_reduce(p.grad)
        p.grad /= world
    opt.step()
    mean_loss = loss.detach().clone()
    dist.all_reduce(mean_loss)
    # every rank: its own loss under its own key; the mean is the same on every rank
    run.log({f"loss/rank{rank}": loss.item(), "loss/mean": mean_loss.item() / world}, step=step)
    if step % 50 == 0:
        print(f"rank {rank} step {step} loss {loss.item():.4f}", flush=True)
run.finish()
dist.destroy_process_group()
