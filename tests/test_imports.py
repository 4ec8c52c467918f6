"""Inference stays light: loading the denoiser (or torch.hub, or the ONNX export) never pulls in
the training loop, DDP or matplotlib; the trainer runs on a bare GPU machine."""

import ast
import subprocess
import sys

import pytest

from tests.conftest import ROOT

HEAVY = ("model.train", "model.distributed", "matplotlib")


@pytest.mark.parametrize("module", ["model.denoise", "hubconf", "model.export"])
def test_entry_point_imports_without_the_training_stack(module):
    code = f"import sys, {module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []


def imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return names | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}


def test_the_library_never_imports_the_scripts():
    """utils/ (data preparation) and benchmarks/ use model/; model/ imports neither (DESIGN.md)."""
    for path in [*sorted((ROOT / "model").glob("*.py")), ROOT / "hubconf.py"]:
        scripts = {m for m in imported_modules(path) if m.split(".")[0] in ("utils", "benchmarks")}
        assert not scripts, f"{path.name} imports {sorted(scripts)}"


def test_torch_hub_names_every_package_its_entry_point_imports():
    """torch.hub checks `dependencies` before loading: a package missing from it fails later, unclearly."""
    import hubconf

    seen, todo, packages = set(), [ROOT / "hubconf.py"], set()
    while todo:
        path = todo.pop()
        for name in imported_modules(path):
            top = name.split(".")[0]
            if top == "model" and "." in name and name not in seen:
                seen.add(name)
                todo.append(ROOT / (name.replace(".", "/") + ".py"))
            elif top not in sys.stdlib_module_names and top not in ("model", "constants", "__future__"):
                packages.add(top)
    assert packages <= set(hubconf.dependencies), sorted(packages - set(hubconf.dependencies))


def test_the_trainer_imports_only_what_the_bare_gpu_machine_has():
    """The lent GPU machine has torch, numpy, pillow, scikit-image, matplotlib, tqdm and
    torchvision, nothing else, and no network to install more: an import of pypng, pillow-heif,
    bm3d or kagglehub there would cost the session's device time."""
    absent = ("png", "pillow_heif", "bm3d", "kagglehub", "onnx")
    code = f"import sys, model.train; print(' '.join(m for m in {absent!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []
