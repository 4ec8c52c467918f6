"""Training in several processes (torchrun, gloo on CPU) and resuming after a hard kill."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # `make test-fast` leaves these out

TINY = ["--base-channels=4", "--depth=2", "--no-batch-norm", "--crop-size=16", "--eval-crop-size=16", "--threads=1"]


def train_command(out_dir, data_dir, *extra, launcher=(sys.executable, "-m")):
    return [
        *launcher,
        "model.train",
        f"--data-dir={data_dir}",
        f"--out-dir={out_dir}",
        f"--image-dir={out_dir}",
        *TINY,
        *extra,
    ]


def history(run_dir):
    return json.loads((run_dir / "history.json").read_text())["history"]


def weights(run_dir):
    return torch.load(run_dir / "last.pth", weights_only=True)["model"]


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path, image_folder):
    extra = ("--batch-size=8", "--epochs=2", "--sigma=0", "--sigma-max=0.5")  # blind: validated per noise level
    single = subprocess.run(
        train_command(tmp_path / "one", image_folder, *extra), cwd=ROOT, capture_output=True, text=True
    )
    assert single.returncode == 0, single.stderr
    torchrun = (
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        f"--log-dir={tmp_path / 'logs'}",
        "--redirects=3",
        "-m",
    )
    pair = subprocess.run(
        train_command(tmp_path / "two", image_folder, *extra, launcher=torchrun),
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    rank_errors = {path.parent.name: path.read_text()[-3000:] for path in (tmp_path / "logs").rglob("stderr.log")}
    assert pair.returncode == 0, f"{pair.stderr}\nranks' stderr: {rank_errors}"
    for one, two in zip(history(tmp_path / "one"), history(tmp_path / "two"), strict=True):
        assert abs(one["train_loss"] - two["train_loss"]) < 1e-4
        assert abs(one["val_psnr"] - two["val_psnr"]) < 1e-3
        # each rank holds other levels (items alternate), so the levels are summed over both
        assert (
            list(one["val_psnr_by_sigma"]) == list(two["val_psnr_by_sigma"]) == ["5/255", "15/255", "25/255", "50/255"]
        )
        assert all(
            abs(one["val_psnr_by_sigma"][k] - two["val_psnr_by_sigma"][k]) < 1e-3 for k in one["val_psnr_by_sigma"]
        )
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)
    # rank 0 alone logged (and so wrote: saving sits beside the logging, on rank 0 only)
    logs = {path.parent.name: path.read_text() for path in (tmp_path / "logs").rglob("stdout.log")}
    assert set(logs) == {"0", "1"}
    assert "epoch 2:" in logs["0"] and "epoch" not in logs["1"]
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [
        "best.pth",
        "history.json",
        "last.pth",
        "loss_plot.png",
        "split.json",
        "val_prediction_epoch_1.png",  # --prediction-epochs first,middle,last of 2 epochs
        "val_prediction_epoch_2.png",
    ]


def test_resume_after_sigkill_gives_the_same_weights_and_history(tmp_path, image_folder):
    extra = ("--batch-size=4", "--epochs=4", "--repeats=4")
    reference = subprocess.run(train_command(tmp_path / "ref", image_folder, *extra), cwd=ROOT, capture_output=True)
    assert reference.returncode == 0

    run = tmp_path / "killed"
    process = subprocess.Popen(
        train_command(run, image_folder, *extra), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while not (run / "history.json").exists() and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(history(run)) < 4, "the run finished before it could be killed"

    resumed = subprocess.run(
        train_command(run, image_folder, *extra, "--resume"), cwd=ROOT, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    a, b = weights(tmp_path / "ref"), weights(run)
    assert all(torch.equal(a[k], b[k]) for k in a)  # bitwise on the CPU
    strip = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # noqa: E731
    assert strip(history(tmp_path / "ref")) == strip(history(run))
