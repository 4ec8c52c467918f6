"""Asking for a device that is not there is one clear error before any work."""

import pytest
import torch

from model.device import pick_device


@pytest.mark.parametrize(
    ("name", "gpus", "message"),
    [
        ("tpu", 0, "unknown device 'tpu'; use cpu, cuda, cuda:N or mps"),
        ("cuda", 0, "device 'cuda': CUDA is not available here"),
        ("cuda:3", 2, "device 'cuda:3': this machine has 2 CUDA GPU(s), cuda:0 to cuda:1"),
    ],
)
def test_a_device_that_is_not_there_is_refused_by_name(monkeypatch, name, gpus, message):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        pick_device(name)


def test_mps_without_an_apple_gpu_is_refused(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match="MPS .* not available"):
        pick_device("mps")


def test_devices_that_are_there_are_given(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("cuda:1") == torch.device("cuda", 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device() == torch.device("cpu")
