"""The one exception tree: every public exception class of wandblite derives from ``wandblite.Error``,
and the drawing in ``wandblite/errors.py``'s docstring names every one of them.

Every module of ``wandblite`` and ``wandblite_cli`` is imported in a fresh interpreter (some pull in
the server's and the integrations' dependencies, which must not leak into this test process).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import wandblite
from wandblite import errors

_SCAN = textwrap.dedent(
    """
    import importlib, inspect, json, pkgutil
    import wandblite, wandblite_cli

    found, failed = [], []
    for pkg in (wandblite, wandblite_cli):
        names = [pkg.__name__] + [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
        for name in names:
            try:
                mod = importlib.import_module(name)
            except ImportError as exc:
                failed.append([name, repr(exc)])
                continue
            for attr, obj in vars(mod).items():
                if (inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == name
                        and not attr.startswith("_")):
                    found.append({"module": name, "name": attr,
                                  "is_error": issubclass(obj, wandblite.Error),
                                  "exception": issubclass(obj, Exception)})
    print(json.dumps({"found": found, "failed": failed}))
    """
)


@pytest.fixture(scope="module")
def exception_classes() -> list[dict[str, object]]:
    proc = subprocess.run([sys.executable, "-c", _SCAN], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["failed"]:
        pytest.skip(f"modules that need a package not installed here: {result['failed']}")
    return list(result["found"])


def test_every_public_exception_class_derives_from_wandblite_error(
    exception_classes: list[dict[str, object]],
) -> None:
    assert len(exception_classes) >= 15  # the scan found the tree, not an empty package
    outside = [f"{c['module']}.{c['name']}" for c in exception_classes if c["exception"] and not c["is_error"]]
    assert outside == [], f"exception classes outside the wandblite.Error tree: {outside}"


def test_the_drawn_tree_names_every_exception_class_and_where_it_lives(
    exception_classes: list[dict[str, object]],
) -> None:
    drawing = errors.__doc__ or ""
    missing = [f"{c['module']}.{c['name']}" for c in exception_classes
               if f"── {c['name']} " not in drawing
               or (c["module"] != "wandblite.errors" and str(c["module"]) not in drawing)]
    assert missing == [], f"classes missing from the tree drawn in wandblite/errors.py: {missing}"


def test_each_branch_is_caught_by_except_wandblite_error() -> None:
    from wandblite.api import ApiRequestError
    from wandblite.interop.common import InteropError
    from wandblite.server.errors import ApiError
    from wandblite.sync.transport import GapError, RejectedError, SyncError, UnavailableError

    raised = [GapError("moved", {"rows": 3}), RejectedError("no", 400, "bad_request"), UnavailableError("down"),
              SyncError("sync"), InteropError("refused"), ApiError(404, "not_found", "no such run"),
              ApiRequestError(404, "not_found", "no such run")]
    for exc in raised:
        with pytest.raises(wandblite.Error):
            raise exc
    assert isinstance(GapError("moved", {}), SyncError)


def test_data_error_is_still_a_value_error_and_a_type_error() -> None:
    assert issubclass(wandblite.DataError, ValueError) and issubclass(wandblite.DataError, TypeError)
    assert issubclass(wandblite.DataError, wandblite.Error)
