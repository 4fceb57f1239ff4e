"""One direction of dependency: `app` imports `dynamics`, never the reverse, and `dynamics`
never loads a UI or plotting library. Read from the source with `ast`, so an import inside a
function (run only on some code path) counts as much as one at the top of a module."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BANNED = {"app", "panel", "holoviews", "bokeh", "matplotlib"}
IMPORTERS = {"import_module", "__import__"}      # importlib.import_module("app.x") is an import too


def imported_modules(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, relative ones resolved
    against the file's package under root."""
    package = list(path.relative_to(root).parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out += [(node.lineno, mod)] if node.module else [(node.lineno, f"{mod}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            name = getattr(node.func, "attr", getattr(node.func, "id", None))
            if name in IMPORTERS:
                out.append((node.lineno, node.args[0].value))
    return out


def test_dynamics_never_imports_the_app_or_a_ui_or_plotting_library():
    files = sorted((ROOT / "dynamics").rglob("*.py"))
    assert files
    bad = [f"{p.relative_to(ROOT)}:{line} imports {mod}" for p in files for line, mod in imported_modules(p)
           if mod.split(".")[0] in BANNED]
    assert not bad, "dynamics/ must not depend on the app or the UI/plotting stack:\n" + "\n".join(bad)


def test_the_walker_sees_lazy_relative_and_importlib_imports(tmp_path):
    """The check above can fail: each kind of import it must catch is caught."""
    path = tmp_path / "dynamics" / "sub" / "probe.py"
    path.parent.mkdir(parents=True)
    path.write_text("def f():\n    from app.plots import figures\n"
                    "def g():\n    import importlib\n    importlib.import_module('panel')\n"
                    "from ...app import lab\nfrom .. import engine\n")
    seen = [m for _, m in imported_modules(path, tmp_path)]
    assert sorted(seen) == ["app", "app.plots", "dynamics.engine", "importlib", "panel"], seen
