"""Inference speed and memory of the pretrained denoiser, with CBM3D in the same run.

    python -m benchmarks.inference_speed              # about 2 minutes on a 2-core CPU

Each measurement runs in a fresh process, so its peak RSS (resident memory, from the OS) is
its own. Inputs are 8-bit photos (scikit-image's astronaut, resized) with Gaussian noise
sigma = 25/255, denoised through `model.denoise.denoise_array` in tiles; the PSNR against the
clean resized photo shows what bf16 costs in quality. First the settings
(fp32 or bf16 autocast, channels_last, threads) are compared at 1 MP; then 1, 4 and 12 MP
are timed with the default settings (and on the GPU when there is one). CBM3D runs on the
1 MP image only: at its speed, 12 MP would take most of an hour.

Each row of ours also says how fast it computes: the network's FLOPs per megapixel (counted
by PyTorch's FLOP counter on a 512x512 tile) times the megapixels, over the seconds, and that
as a share of this machine's measured ceiling in the same precision and number of threads:
the faster of a large matmul (2048^3) and a large 3x3 convolution (64 -> 64 channels, 512x512).
One row repeats the old default (fp32, NCHW, glibc returning freed memory to the system after
every tile) to show what today's defaults gain.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np
import torch
from PIL import Image

from model.config_flags import make_parser
from model.precision import native_bf16

SIZES = {1: (1152, 864), 4: (2304, 1728), 12: (4000, 3000)}
SIGMA = 25 / 255


def photo_pair(megapixels: int) -> tuple[np.ndarray, np.ndarray]:
    """(clean, noisy) 8-bit photos of about `megapixels`."""
    import skimage.data

    clean = np.asarray(Image.fromarray(skimage.data.astronaut()).resize(SIZES[megapixels], Image.Resampling.BICUBIC))
    noise = np.random.default_rng(0).normal(0, SIGMA * 255, clean.shape)
    return clean, (clean + noise).clip(0, 255).astype(np.uint8)


def child(
    method: str, megapixels: int, device: str, bf16: bool, channels_last: bool, threads: int, keep_memory: bool
) -> dict:
    """One measurement, in this (fresh) process."""
    torch.set_num_threads(threads)
    if not keep_memory:  # glibc's own behaviour: every freed large tensor goes back to the system
        import model.device

        model.device.keep_freed_memory = lambda: False
    clean, image = photo_pair(megapixels)
    started = time.perf_counter()
    if method == "CBM3D":
        import bm3d

        output = bm3d.bm3d_rgb(image / 255, SIGMA).clip(0, 1)
    else:
        from model.denoise import denoise_array, load_pretrained

        layout = torch.channels_last if channels_last else torch.contiguous_format
        model = load_pretrained(device).to(memory_format=layout)  # load_pretrained picks channels_last
        precision = "bf16" if bf16 else "fp32"
        denoise_array(image[:64, :64], model, SIGMA, precision=precision)  # warm-up
        started = time.perf_counter()
        output = denoise_array(image, model, SIGMA, precision=precision) / 255
        if device == "cuda":
            torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    psnr = 10 * np.log10(1 / np.mean((output - clean / 255) ** 2))
    megapixels = image.shape[0] * image.shape[1] / 1e6
    return {"seconds": seconds, "s_per_mp": seconds / megapixels, "rss_gb": peak_kib / 2**20, "psnr": psnr}


def run(
    method: str,
    megapixels: int,
    device: str = "cpu",
    bf16: bool = False,
    channels_last: bool = False,
    threads: int = 0,
    keep_memory: bool = True,
) -> dict:
    threads = threads or os.cpu_count()
    spec = json.dumps([method, megapixels, device, bf16, channels_last, threads, keep_memory])
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.inference_speed", "--child", spec],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def flops_per_megapixel() -> float:
    """Forward FLOPs of the shipped network per megapixel of image."""
    from torch.utils.flop_counter import FlopCounterMode

    from model.denoise import load_pretrained

    model = load_pretrained("cpu")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.rand(1, 3, 512, 512), SIGMA)
    return counter.get_total_flops() / (512 * 512 / 1e6)


def ceiling(dtype: torch.dtype, threads: int = 0) -> float:
    """GFLOP/s of the faster of a large matmul and a large 3x3 convolution in `dtype` on the CPU,
    on `threads` threads (0: all cores)."""
    torch.set_num_threads(threads or os.cpu_count() or 1)
    a, b = torch.rand(2048, 2048, dtype=dtype), torch.rand(2048, 2048, dtype=dtype)
    x, w = torch.rand(1, 64, 512, 512, dtype=dtype), torch.rand(64, 64, 3, 3, dtype=dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    jobs = {
        2 * 2048**3: lambda: a @ b,
        2 * 64 * 64 * 9 * 512 * 512: lambda: torch.nn.functional.conv2d(x, w, padding=1),
    }
    best = 0.0
    for flops, job in jobs.items():
        job()  # warm-up
        started = time.perf_counter()
        for _ in range(3):
            job()
        best = max(best, 3 * flops / (time.perf_counter() - started) / 1e9)
    return best


def row(label: str, megapixels: int, result: dict, flops: float = 0.0, peak: float = 0.0) -> str:
    rate = flops * megapixels / result["seconds"] / 1e9 if flops else 0.0
    speed = f"{rate:.0f} | {100 * rate / peak:.0f}%" if flops else "- | -"
    cells = (
        f"{result['seconds']:.1f} | {result['s_per_mp']:.2f} | {speed} | {result['rss_gb']:.2f} | {result['psnr']:.3f}"
    )
    return f"| {label} | {megapixels} | {cells} |"


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*json.loads(args.child))))
        return
    print(
        f"{datetime.date.today()}, {platform.machine()} ({torch.backends.cpu.get_cpu_capability()}), "
        f"{os.cpu_count()} cores, torch {torch.__version__}\n"
    )
    precisions = (False, True) if native_bf16(torch.device("cpu")) else (False,)
    if len(precisions) == 1:
        print("bf16 not measured: this CPU has no native bf16 (emulated, it is far slower than fp32)\n")
    flops = flops_per_megapixel()
    peaks = {bf16: ceiling(torch.bfloat16 if bf16 else torch.float32) for bf16 in precisions}
    print(
        f"network: {flops / 1e9:.0f} GFLOP per MP; ceilings: "
        + ", ".join(f"{'bf16' if bf16 else 'fp32'} {peak:.0f} GFLOP/s" for bf16, peak in peaks.items())
        + "\n"
    )
    print("| method and settings | MP | seconds | s per MP | GFLOP/s | of ceiling | peak RSS (GB) | PSNR (dB) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    settings = {}
    for bf16 in precisions:
        for channels_last in (False, True):
            label = f"ours, CPU, {'bf16' if bf16 else 'fp32'}, channels_last={channels_last}"
            settings[(bf16, channels_last)] = result = run("ours", 1, bf16=bf16, channels_last=channels_last)
            print(row(label, 1, result, flops, peaks[bf16]), flush=True)
    before = run("ours", 1, keep_memory=False)
    print(
        row("ours, CPU, fp32, channels_last=False, memory returned (the old default)", 1, before, flops, peaks[False])
    )
    one_thread = run("ours", 1, threads=1)
    print(row("ours, CPU, fp32, 1 thread", 1, one_thread, flops, ceiling(torch.float32, threads=1)), flush=True)
    bf16, channels_last = min(settings, key=lambda key: settings[key]["s_per_mp"])
    best = f"{'bf16' if bf16 else 'fp32'}, channels_last={channels_last}"
    for megapixels in (4, 12):
        result = run("ours", megapixels, bf16=bf16, channels_last=channels_last)
        print(row(f"ours, CPU, {best}", megapixels, result, flops, peaks[bf16]), flush=True)
    if torch.cuda.is_available():
        for megapixels in SIZES:
            print(row("ours, GPU, fp32", megapixels, run("ours", megapixels, "cuda")), flush=True)  # no CPU ceiling
    cbm3d = run("CBM3D", 1)
    print(row("CBM3D (bm3d package), CPU", 1, cbm3d))
    speedup = cbm3d["s_per_mp"] / settings[(bf16, channels_last)]["s_per_mp"]
    print(f"\nours ({best}) is {speedup:.0f}x faster per megapixel than CBM3D at 1 MP", end="")
    gain = before["s_per_mp"] / settings[(bf16, channels_last)]["s_per_mp"]
    print(f" and {gain:.1f}x faster than the old default (fp32, NCHW, freed memory returned to the system)")


if __name__ == "__main__":
    main()
