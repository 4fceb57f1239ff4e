"""A regular (non-editable) install carries `assets/` (presets, sweep specs) and finds it.

The wheel is built offline (`pip wheel --no-deps --no-build-isolation`) from a copy of the
project, so the checkout gets no build/ or egg-info; about 10-15 s on the shared cores.
"""
import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dynamics import assets

ROOT = Path(__file__).resolve().parent.parent


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith("."))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    missing = [m for m in ("pip", "setuptools") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"cannot build a wheel offline: {', '.join(missing)} not installed in this environment "
                    "(--no-build-isolation needs them; an isolated build would need the network)")
    tmp = tmp_path_factory.mktemp("pkg")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("dynamics", "app", "assets"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "--no-index", "-w", str(tmp / "whl"), str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    (whl,) = (tmp / "whl").glob("effgan-*.whl")
    return whl


def test_checkout_assets_are_found():
    assert assets.root() == ROOT / "assets"
    assert (assets.root() / "presets" / "ring8.json").is_file()


def test_wheel_carries_every_asset_and_module(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "dynamics/_assets/presets/ring8.json" in names
    assert "dynamics/_assets/sweeps/collapse-phase.toml" in names
    missing = [f for f in _files(ROOT / "assets") if f"dynamics/_assets/{f}" not in names]
    assert not missing, f"assets/ files missing from the wheel: {missing}"
    # pyproject lists the packages by hand (find cannot map assets/): a new subpackage must be listed
    missing = [f"{pkg}/{f}" for pkg in ("dynamics", "app") for f in _files(ROOT / pkg)
               if f.endswith(".py") and f"{pkg}/{f}" not in names]
    assert not missing, f"modules missing from the wheel (add their package to pyproject): {missing}"


def test_installed_copy_resolves_to_packaged_assets(wheel, tmp_path):
    site = tmp_path.resolve() / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # dynamics/assets.py imports nothing from the package: load the extracted copy on its own
    spec = importlib.util.spec_from_file_location("installed_assets", site / "dynamics" / "assets.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.root() == site / "dynamics" / "_assets"
    assert (mod.root() / "presets" / "ring8.json").is_file()
    assert sorted(p.stem for p in (mod.root() / "sweeps").glob("*.toml")) == \
        sorted(p.stem for p in (ROOT / "assets" / "sweeps").glob("*.toml"))
