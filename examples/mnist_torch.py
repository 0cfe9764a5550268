"""A wandb script in the style of PyTorch's MNIST example, on synthetic data (nothing is downloaded).

It is written for ``wandb`` and never imports wandblite: run it unchanged with the drop-in runner,

    python -m wandblite.integrations.run examples/mnist_torch.py --epochs 2 --log-freq 5

and it logs into a wandblite run directory (``WANDB_DIR``, or ``./wandb``). What it logs, as wandb would:
the training loss every batch; ``wandb.watch``'s gradient histograms when the backward count reaches
``--log-freq``, then every ``--log-freq`` (attached to the row of that batch); after each epoch the test
loss, the accuracy and a list of ``wandb.Image(tensor)``; at the end a Table of image tensors with the
predictions.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
import wandb
from torch import nn


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, 1)
        self.conv2 = nn.Conv2d(4, 8, 3, 1)
        self.fc1 = nn.Linear(8 * 12 * 12, 16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return F.log_softmax(self.fc2(x), dim=1)


def synthetic_mnist(n: int, seed: int) -> torch.utils.data.TensorDataset:
    """Images (n, 1, 28, 28) in 0..1 whose label is the row of a bright bar, so the net can learn."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    images = torch.rand(n, 1, 28, 28, generator=g) * 0.2
    for i, y in enumerate(labels.tolist()):
        images[i, 0, 2 + 2 * y: 4 + 2 * y, 4:24] = 1.0
    return torch.utils.data.TensorDataset(images, labels)


def train(model: nn.Module, loader: torch.utils.data.DataLoader, opt: torch.optim.Optimizer) -> None:
    model.train()
    for data, target in loader:
        opt.zero_grad()
        loss = F.nll_loss(model(data), target)
        loss.backward()
        opt.step()
        wandb.log({"loss": loss.item()})


def test(model: nn.Module, loader: torch.utils.data.DataLoader, examples: int) -> None:
    model.eval()
    test_loss, correct, shown = 0.0, 0, []
    with torch.no_grad():
        for data, target in loader:
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()
            pred = output.argmax(dim=1)
            correct += int(pred.eq(target).sum())
            shown += [wandb.Image(data[i], caption=f"Pred: {pred[i].item()} Truth: {target[i]}")
                      for i in range(min(examples - len(shown), len(data)))]
    n = len(loader.dataset)  # type: ignore[arg-type]
    wandb.log({"examples": shown, "test_loss": test_loss / n, "accuracy": 100.0 * correct / n})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--train-size", type=int, default=48)
    parser.add_argument("--log-freq", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.05)
    args = parser.parse_args()
    torch.manual_seed(0)
    wandb.init(project="mnist-synthetic", config=vars(args))
    model = Net()
    wandb.watch(model, log_freq=args.log_freq)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    train_loader = torch.utils.data.DataLoader(synthetic_mnist(args.train_size, 1), batch_size=args.batch_size)
    test_set = synthetic_mnist(16, 2)
    test_loader = torch.utils.data.DataLoader(test_set, batch_size=8)
    for _epoch in range(args.epochs):
        train(model, train_loader, opt)
        test(model, test_loader, examples=4)
    table = wandb.Table(columns=["image", "prediction", "truth"])
    model.eval()
    with torch.no_grad():
        images, labels = test_set.tensors
        preds = model(images[:5]).argmax(dim=1)
    for image, pred, truth in zip(images[:5], preds, labels[:5]):
        table.add_data(wandb.Image(image), pred, truth)  # tensors, as PyTorch code holds them
    wandb.log({"predictions": table})
    wandb.finish()


if __name__ == "__main__":
    main()
