"""The opt-in: after it ``import wandb`` is wandblite with the paths frameworks use; never before it.

Every test runs in a fresh interpreter, so no opt-in leaks into the test process.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from tests.conftest import run_script

CHECKS = """
    import importlib.metadata, importlib.util
    import wandb
    import wandblite
    assert wandb is wandblite
    assert importlib.util.find_spec("wandb") is not None
    v = importlib.metadata.version("wandb")
    assert tuple(int(x) for x in v.split(".")) >= (0, 12, 10), v
    from wandb.sdk.lib import RunDisabled
    from wandb.sdk.lib.config_util import ConfigError
    from wandb.wandb_run import Run
    import wandb.sdk.lib.config_util
    assert wandb.sdk.lib.config_util.ConfigError is wandblite.ConfigError is ConfigError
    from wandb.sdk.wandb_run import Run as Run2
    import wandb.errors, wandb.env, wandb.plot, wandb.data_types
    assert wandb.errors.UsageError is wandblite.UsageError
    assert wandb.run is None
    run = wandb.init(mode="disabled")
    assert isinstance(run, RunDisabled)
    run.finish()
    run = wandb.init(dir=RUNS, project="alias", config={"a": 1})
    assert type(run) is Run is Run2 and wandb.run is run
    wandb.log({"loss": 0.5})
    wandb.define_metric("loss", summary="min")
    wandb.run._label(code="x")
    try:
        import wandb.no_such_module
    except ModuleNotFoundError as e:
        assert "wandblite" in str(e)
    else:
        raise AssertionError("wandb.no_such_module imported")
    print("OK", run.id)
"""


def _check(prefix: str, runs: Path, env: dict[str, str] | None = None) -> str:
    code = f"RUNS = {str(runs)!r}\n" + textwrap.dedent(prefix) + textwrap.dedent(CHECKS)
    res = run_script(code, env={"WANDBLITE_CONSOLE": "off", **(env or {})})
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr
    return res.stdout.split()[-1]


def test_without_opt_in_wandb_is_not_wandblite(tmp_path: Path) -> None:
    res = run_script("""
        import importlib.metadata, importlib.util, sys
        import wandblite
        spec = importlib.util.find_spec("wandb")
        try:
            version = importlib.metadata.version("wandb")
        except importlib.metadata.PackageNotFoundError:
            version = None
        real = spec is not None and "wandblite" not in (spec.origin or "")
        assert sys.modules.get("wandb") is not wandblite
        # either no wandb at all, or a real one that wandblite left alone
        assert (spec is None and version is None) or real, (spec, version)
        print("OK")
    """)
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr


def test_as_wandb_gives_every_path_frameworks_import(tmp_path: Path) -> None:
    run_id = _check("import wandblite.integrations\nwandblite.integrations.as_wandb()\n", tmp_path)
    import wandblite

    r = wandblite.replay(tmp_path / run_id)
    assert r.project == "alias" and r.config == {"a": 1} and r.summary["loss"] == 0.5


def test_env_var_opt_in_takes_effect_when_wandblite_is_imported(tmp_path: Path) -> None:
    _check("import wandblite\n", tmp_path, env={"WANDBLITE_AS_WANDB": "1"})


def test_runner_opts_in_for_a_script_that_imports_only_wandb(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(f"RUNS = {str(tmp_path)!r}\n" + textwrap.dedent(CHECKS)
                      + "import os, sys\nprint(sys.argv[1:], os.environ['WANDBLITE_AS_WANDB'])\n")
    import subprocess

    res = subprocess.run([sys.executable, "-m", "wandblite.integrations.run", str(script), "--lr", "1"],
                         capture_output=True, text=True, timeout=60,
                         env={**_clean_env(), "WANDBLITE_CONSOLE": "off"})
    assert res.returncode == 0, res.stderr
    assert "OK" in res.stdout and "['--lr', '1'] 1" in res.stdout


def test_restore_undoes_the_opt_in(tmp_path: Path) -> None:
    res = run_script("""
        import importlib.metadata, sys
        import wandblite.integrations as integ
        integ.as_wandb()
        assert integ.is_wandb_alias()
        integ.restore()
        assert "wandb" not in sys.modules and not integ.is_wandb_alias()
        assert not hasattr(wandblite_mod := sys.modules["wandblite"], "sdk")
        try:
            importlib.metadata.version("wandb")
        except importlib.metadata.PackageNotFoundError:
            pass
        print("OK")
    """)
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "WANDBLITE_"))}
