"""The wheel's layout: every package is listed, cli/ ships as wandblite_cli, never as `cli`."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_every_package_directory_is_listed_in_pyproject() -> None:
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(conf["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "wandblite").rglob("__init__.py")
    }
    missing = found - listed
    assert not missing, f"add these packages to [tool.setuptools] packages: {sorted(missing)}"
    assert "wandblite_cli" in listed and "cli" not in listed
    assert conf["tool"]["setuptools"]["package-dir"] == {"wandblite_cli": "cli"}
    assert conf["project"]["scripts"]["wandblite"] == "wandblite_cli.main:main"


def test_sdk_depends_on_the_five_design_card_packages_only() -> None:
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    names = sorted(d.split(">")[0].split("=")[0].split("[")[0].strip().lower() for d in conf["project"]["dependencies"])
    assert names == ["click", "msgpack", "numpy", "pillow", "requests"]


def test_the_wheel_ships_the_packages_their_data_and_no_bare_cli(tmp_path: Path) -> None:
    import subprocess
    import zipfile

    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                          "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    (wheel,) = tmp_path.glob("wandblite-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"wandblite", "wandblite_cli"}, tops  # never a bare top-level `cli`
    assert any(n.startswith("wandblite/_speedups") and n.endswith((".so", ".pyd")) for n in names), \
        "the C accelerator was not built into the wheel"
    for needed in ("wandblite/format/SPEC.md", "wandblite/server/PROTOCOL.md", "wandblite/py.typed",
                   "wandblite/server/static/index.html", "wandblite/server/static/app.js", "wandblite_cli/main.py"):
        assert needed in names, needed
