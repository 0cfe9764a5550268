"""``wandb.Api`` under the opt-in: wandb's answer shapes (``wandblite.api_compat``); outside it, wandblite's own.

Every check runs in a fresh interpreter, so no opt-in leaks into the test process.
"""

from __future__ import annotations

from tests.conftest import run_script


def test_wandb_api_is_the_compat_client_by_every_path_wandb_code_names_it() -> None:
    res = run_script("""
        import sys
        import wandblite
        from wandblite.api import Api as Ours
        assert wandblite.Api is Ours
        import wandblite.integrations
        wandblite.integrations.as_wandb()
        import wandb
        from wandblite.api_compat import Api as WandbApi, Run as WandbRun
        assert wandb.Api is WandbApi and wandblite.Api is WandbApi and issubclass(WandbApi, Ours)
        from wandb.apis.public import Api, Run
        import wandb.apis
        import wandb.apis.public
        assert Api is WandbApi and Run is WandbRun and wandb.apis.PublicApi is WandbApi
        assert wandb.apis.public.Api is WandbApi
        wandblite.integrations.restore()
        assert wandblite.Api is Ours and "wandb.apis" not in sys.modules and not hasattr(wandblite, "apis")
        print("OK")
    """)
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr


def test_the_alias_does_not_load_the_query_client_until_the_code_names_it() -> None:
    res = run_script("""
        import sys
        import wandblite.integrations
        wandblite.integrations.as_wandb()
        import wandb
        run = wandb.init(mode="disabled")
        run.finish()
        assert "wandblite.api_compat" not in sys.modules and "wandblite.api" not in sys.modules
        assert "requests" not in sys.modules
        wandb.apis.PublicApi
        assert "wandblite.api_compat" in sys.modules
        print("OK")
    """)
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr
