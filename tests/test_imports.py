"""Inference stays light: loading the denoiser (or torch.hub, or the ONNX export, or the GPU
trainer on a bare GPU machine) never pulls in the training loop, DDP or matplotlib."""

import subprocess
import sys

import pytest

from tests.conftest import ROOT

HEAVY = ("model.train", "model.distributed", "matplotlib")


@pytest.mark.parametrize("module", ["model.denoise", "hubconf", "model.export", "model.train_gpu"])
def test_entry_point_imports_without_the_training_stack(module):
    code = f"import sys, {module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []
