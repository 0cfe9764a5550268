"""``wandblite.watch``: 64-bin gradient/parameter histograms at every ``log_freq``-th backward/forward
(the first at the ``log_freq``-th, as wandb counts), on the next row."""

from __future__ import annotations

from pathlib import Path

import pytest

import wandblite
from tests.conftest import run_script

torch = pytest.importorskip("torch")


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))


def _train(model: torch.nn.Module, steps: int, log: bool = True) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        loss = model(torch.randn(8, 4)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if log:
            wandblite.log({"loss": loss.item()})


def test_gradient_histograms_every_log_freq_steps_on_the_next_row(runs_dir: Path) -> None:
    run = wandblite.init(dir=str(runs_dir), id="w1")
    model = _model()
    wandblite.watch(model, log_freq=2)  # log="gradients" is the default
    _train(model, 5)
    run.finish()
    rows = list(wandblite.replay(runs_dir / "w1").scan_history())
    grads = ["gradients/0.bias", "gradients/0.weight", "gradients/2.bias", "gradients/2.weight"]
    with_hist = [r["_step"] for r in rows if "gradients/0.weight" in r]
    assert with_hist == [1, 3]  # the 2nd and 4th backward (wandb's count), not the 1st
    row = rows[1]
    assert sorted(k for k in row if k.startswith("gradients/")) == grads
    assert not any(k.startswith("parameters/") for r in rows for k in r)
    h = row["gradients/0.weight"]
    assert h["_type"] == "histogram" and len(h["values"]) == 64 and len(h["bins"]) == 65
    assert sum(h["values"]) == 12  # every element of the 3x4 gradient is counted once
    assert "loss" in row


def _fired(log_freq: int, calls: int, runs_dir: Path) -> list[int]:
    """The 1-based backward counts at which a watched model's gradient histogram is recorded."""
    run = wandblite.init(mode="offline", dir=str(runs_dir), reinit=True)
    model = torch.nn.Linear(2, 1, bias=False)
    run.watch(model, log_freq=log_freq)
    fired = []
    for i in range(1, calls + 1):
        model(torch.ones(1, 2)).sum().backward()
        if run._pending_hist:
            fired.append(i)
            run.clear_next_row()
    run.finish()
    return fired


@pytest.mark.parametrize("log_freq", [-1, 0, 1, 2, 3, 7])
def test_histograms_fire_when_the_backward_count_reaches_log_freq_as_wandb_counts(log_freq: int,
                                                                                 runs_dir: Path) -> None:
    # wandb's own counter (wandb/integration/torch/wandb_torch.py): count up, fire and reset at log_freq
    track = [0, log_freq]
    expected = []
    for i in range(1, 16):
        track[0] += 1
        if track[0] >= track[1]:
            track[0] = 0
            expected.append(i)
    assert _fired(log_freq, 15, runs_dir) == expected
    if log_freq == 3:
        assert expected == [3, 6, 9, 12, 15]  # not the first backward


def test_the_counting_rule_is_the_installed_wandbs(runs_dir: Path) -> None:
    wandb_torch = pytest.importorskip("wandb.integration.torch.wandb_torch")
    for log_freq in (1, 4, 5):
        track = wandb_torch.log_track_init(log_freq)
        expected = [i for i in range(1, 13) if wandb_torch.log_track_update(track)]
        assert _fired(log_freq, 12, runs_dir) == expected


def test_a_short_run_below_log_freq_logs_no_histograms(runs_dir: Path) -> None:
    run = wandblite.init(dir=str(runs_dir), id="w5")
    model = _model()
    run.watch(model, log="all", log_freq=1000)  # wandb's default; HF Trainer passes max(100, logging_steps)
    _train(model, 5)
    run.finish()
    r = wandblite.replay(runs_dir / "w5")
    assert all(set(row) <= {"loss", "_step", "_runtime", "_timestamp"} for row in r.scan_history())
    assert not [k for k in r.summary if k.startswith(("gradients/", "parameters/"))]


def test_parameter_histograms_count_every_forward_call_eval_included(runs_dir: Path) -> None:
    run = wandblite.init(dir=str(runs_dir), id="w6")
    model = _model()
    run.watch(model, log="parameters", log_freq=3)
    model.eval()
    with torch.no_grad():
        model(torch.randn(2, 4))
        model(torch.randn(2, 4))
    model.train()
    run.log({"a": 1})  # two forwards: nothing yet
    model(torch.randn(2, 4))  # the third
    run.log({"a": 2})
    run.finish()
    rows = list(wandblite.replay(runs_dir / "w6").scan_history())
    assert "parameters/0.weight" not in rows[0]
    assert sum(rows[1]["parameters/0.weight"]["values"]) == 12 and "gradients/0.weight" not in rows[1]


def test_log_none_records_no_histograms(runs_dir: Path) -> None:
    run = wandblite.init(dir=str(runs_dir), id="w7")
    model = _model()
    run.watch(model, log=None, log_freq=1)
    _train(model, 2)
    run.finish()
    rows = list(wandblite.replay(runs_dir / "w7").scan_history())
    assert [sorted(r) for r in rows] == [["_runtime", "_step", "_timestamp", "loss"]] * 2


def test_constant_and_sparse_tensors_are_binned_as_wandb_bins_them() -> None:
    from wandblite.watch import _histogram

    const = _histogram(torch.full((3, 4), 0.25))
    assert (const.histogram, const.bins) == ([12], [0.25, 0.25])  # one bin, as wandb
    assert _histogram(torch.tensor([float("nan"), float("inf")])) is None  # nothing finite: nothing logged
    dense = torch.zeros(10)
    dense[2], dense[7] = 1.0, 3.0
    sparse = _histogram(dense.to_sparse())
    assert sum(sparse.histogram) == 10 and sparse.bins[0] == 0.0 and sparse.bins[-1] == 3.0
    assert sparse.histogram[0] == 8 and sparse.histogram[21] == 1 and sparse.histogram[-1] == 1  # zeros in 0's bin
    far = torch.zeros(10)
    far[2], far[7] = 2.0, 5.0
    positive = _histogram(far.to_sparse())  # 2.0 and 5.0 stored: the range widens to take 0
    assert positive.bins[0] == 0.0 and positive.bins[-1] == 5.0
    assert positive.histogram[0] == 8 and sum(positive.histogram) == 10


def test_log_all_adds_parameter_histograms_and_prefixes_a_second_model(runs_dir: Path) -> None:
    run = wandblite.init(dir=str(runs_dir), id="w2")
    first, second = _model(), _model()
    run.watch([first, second], log="all", log_freq=1)
    _train(first, 1, log=False)
    _train(second, 1)
    run.finish()
    (row,) = wandblite.replay(runs_dir / "w2").scan_history()
    keys = set(row)
    assert {"parameters/0.weight", "gradients/0.weight", "parameters/graph_10.weight",
            "gradients/graph_12.bias"} <= keys
    assert sum(row["parameters/2.bias"]["values"]) == 1


def test_unwatch_stops_the_histograms_and_user_keys_win(runs_dir: Path) -> None:
    run = wandblite.init(dir=str(runs_dir), id="w3")
    model = _model()
    run.watch(model, log="parameters", log_freq=1)
    model(torch.randn(2, 4))
    run.log({"parameters/0.bias": 7})  # a user key of the same name wins over the histogram
    wandblite.unwatch(model)
    _train(model, 2)
    run.finish()
    rows = list(wandblite.replay(runs_dir / "w3").scan_history())
    assert rows[0]["parameters/0.bias"] == 7 and "parameters/0.weight" in rows[0]
    assert all(not k.startswith(("parameters/", "gradients/")) for r in rows[1:] for k in r)


def test_finish_removes_the_hooks(runs_dir: Path) -> None:
    run = wandblite.init(dir=str(runs_dir), id="w4")
    model = _model()
    run.watch(model, log="all", log_freq=1)
    run.finish()
    _train(model, 1, log=False)  # hooks would touch a finished run
    assert run._pending_hist is None


def test_bad_arguments_and_watch_before_init(runs_dir: Path) -> None:
    with pytest.raises(wandblite.Error, match=r"before wandb\.watch\(\)"):
        wandblite.watch(_model())
    run = wandblite.init(mode="offline", dir=str(runs_dir))
    with pytest.raises(ValueError, match="log must be one of"):
        run.watch(_model(), log="weights")
    with pytest.raises(ValueError, match=r"torch\.nn\.Module"):
        run.watch(object())
    run.finish()


def test_import_wandblite_does_not_import_torch() -> None:
    res = run_script("""
        import sys, wandblite
        assert wandblite.watch and "torch" not in sys.modules
        print("ok")
    """)
    assert res.stdout.strip() == "ok", res.stderr


# ---------------------------------------------------------------------------- log_graph=True


class _Net(torch.nn.Module):
    """Nested modules, an unused one, and a forward that returns a dict with a None in it."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
        self.head = torch.nn.Linear(3, 2)
        self.unused = torch.nn.Linear(2, 2, bias=False)

    def forward(self, x: torch.Tensor) -> dict[str, object]:
        h = self.enc(x)
        return {"y": self.head(h), "aux": None, "pair": (h, 3)}


def _graph(run_dir: Path, key: str = "graph_0") -> dict[str, object]:
    from wandblite.media import wrap_media

    r = wandblite.replay(run_dir)
    value = wrap_media(r.summary[key], r.path)
    assert value["_type"] == "graph-file" and value["path"].startswith(f"media/graph/{key}_")
    doc: dict[str, object] = value.open()
    return doc


def test_log_graph_records_the_module_tree_on_the_first_forward_pass(runs_dir: Path) -> None:
    run = wandblite.init(dir=str(runs_dir), id="g1")
    model = _Net()
    run.watch(model, log=None, log_graph=True)
    assert len(model.enc[0]._forward_hooks) == 1  # hooked until the first pass ends
    model(torch.randn(8, 4))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())  # removed after capture
    assert "graph_0" in run.summary
    model(torch.randn(8, 4))
    run.finish()
    doc = _graph(runs_dir / "g1")
    assert doc["format"] == "torch"
    nodes = {n["name"]: n for n in doc["nodes"]}  # type: ignore[attr-defined]
    assert list(nodes) == ["", "enc", "enc.0", "enc.1", "head", "unused"]  # tree order, parent first
    assert [nodes[k]["class_name"] for k in nodes] == ["_Net", "Sequential", "Linear", "ReLU", "Linear", "Linear"]
    assert nodes["enc.0"]["parameters"] == [["weight", [3, 4]], ["bias", [3]]]
    assert nodes["enc.0"]["num_parameters"] == 15 and nodes["head"]["num_parameters"] == 8
    assert nodes[""]["num_parameters"] == 0 and nodes[""]["total_parameters"] == 15 + 8 + 4
    assert nodes["enc"]["input_shape"] == [[8, 4]] and nodes["enc.1"]["output_shape"] == [[8, 3]]
    assert nodes[""]["output_shape"] == [[8, 2], None, [8, 3], "int"]  # dict/tuple walked, None and int kept
    assert "output_shape" not in nodes["unused"]  # never called on that pass
    assert [nodes[k]["call_order"] for k in ("enc.0", "enc.1", "enc", "head", "")] == [0, 1, 2, 3, 4]
    ids = {n["id"]: n["name"] for n in doc["nodes"]}  # type: ignore[attr-defined]
    edges = [(ids[a], ids[b]) for a, b in doc["edges"]]  # type: ignore[attr-defined]
    assert edges == [("", "enc"), ("enc", "enc.0"), ("enc", "enc.1"), ("", "head"), ("", "unused")]
    assert not list(wandblite.replay(runs_dir / "g1").scan_history())  # summary only, as in wandb


def test_unwatch_before_a_forward_pass_records_no_graph(runs_dir: Path) -> None:
    run = wandblite.init(dir=str(runs_dir), id="g2")
    model = _model()
    run.watch(model, log=None, log_graph=True)
    run.unwatch(model)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    model(torch.randn(2, 4))
    run.finish()
    assert "graph_0" not in wandblite.replay(runs_dir / "g2").summary


def test_graph_of_submodules_called_directly_and_of_a_second_model(runs_dir: Path) -> None:
    # A LightningModule's training_step often calls self.net(x), never the module itself: the
    # pass ends when a top-level module is called again. The second model is graph_1.
    run = wandblite.init(dir=str(runs_dir), id="g3")
    outer = torch.nn.Module()
    outer.net = _model()
    other = _model()
    run.watch([outer, other], log="gradients", log_freq=1, log_graph=True)
    outer.net(torch.randn(2, 4))
    assert "graph_0" not in run.summary and outer.net[0]._forward_hooks
    _train(outer.net, 1)  # the next top-level call closes the first pass
    other(torch.randn(5, 4))
    run.finish()
    doc = _graph(runs_dir / "g3")
    nodes = {n["name"]: n for n in doc["nodes"]}  # type: ignore[attr-defined]
    assert "input_shape" not in nodes[""] and nodes["net"]["input_shape"] == [[2, 4]]
    assert nodes["net.2"]["output_shape"] == [[2, 1]]
    assert {n["name"]: n["output_shape"] for n in _graph(runs_dir / "g3", "graph_1")["nodes"]}[""] == [[5, 1]]  # type: ignore[attr-defined]
    assert "gradients/net.0.weight" in wandblite.replay(runs_dir / "g3").history()[0]  # histograms too


def test_a_pass_cut_short_is_recorded_at_finish_and_odd_outputs_never_fail(runs_dir: Path) -> None:
    class Odd(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> object:
            self.lin(x)
            return object()  # neither a tensor nor a container

    run = wandblite.init(dir=str(runs_dir), id="g4")
    holder = torch.nn.Module()
    holder.odd = Odd()
    run.watch(holder, log=None, log_graph=True)
    holder.odd(torch.randn(1, 2))  # a top-level submodule call; nothing closes the pass before finish
    run.finish()
    nodes = {n["name"]: n for n in _graph(runs_dir / "g4")["nodes"]}  # type: ignore[attr-defined]
    assert nodes["odd"]["output_shape"] == ["object"] and nodes["odd.lin"]["output_shape"] == [[1, 2]]
    assert not holder.odd._forward_hooks


def test_show_lists_the_graph(runs_dir: Path) -> None:
    run = wandblite.init(dir=str(runs_dir), id="g5")
    model = _model()
    run.watch(model, log=None, log_graph=True)
    model(torch.randn(2, 4))
    run.finish()
    from click.testing import CliRunner
    from wandblite_cli.main import cli

    shown = CliRunner().invoke(cli, ["show", str(runs_dir / "g5")])
    assert shown.exit_code == 0, shown.output
    assert "graph_0: <graph torch 4 modules>" in shown.output
