"""Training speed: images/s, data waiting and achieved GFLOP/s against the matmul ceiling.

    python -m benchmarks.train_speed                 # CPU (and the GPU too when there is one)
    python -m benchmarks.train_speed --steps 3       # quicker, noisier

For the original U-Net and the pretrained config, in fp32 and bf16 autocast, with and without
channels_last, it times training steps of 16 random 128x128 crops of the demo photos, drawn
as the trainer draws them (photos held as uint8 on the device, crops and noise drawn there,
`model/photo_crops.py`), and reports:

- images/s and seconds per step;
- data wait: the share of the step spent drawing the next batch;
- GFLOP/s: the step's floating point operations (counted by torch's FlopCounterMode, forward
  and backward) over its time, and that as a share of this machine's measured 2048x2048
  matmul rate in the same precision (the practical ceiling).
"""

from __future__ import annotations

import datetime
import os
import platform
import time
from collections.abc import Iterator

import torch
from torch.utils.flop_counter import FlopCounterMode

import constants as C
from model.config_flags import make_parser
from model.dataset import list_images
from model.photo_crops import CropSampler, read_photos
from model.precision import native_bf16
from model.tasks import Denoise
from model.unet import UNet

BATCH, CROP = 16, 128
MODELS = {
    "original U-Net": {},
    "pretrained config": {"base_channels": 32, "noise_level_input": True, "residual": True, "batch_norm": False},
}


def matmul_gflops(device: torch.device, dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    a @ b  # warm-up
    synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def step_flops(model: torch.nn.Module, batch: tuple) -> float:
    noisy, clean, sigma = batch
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.l1_loss(model(noisy, sigma), clean).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def measure(config: dict, device: torch.device, bf16: bool, channels_last: bool, loader: Iterator, steps: int) -> dict:
    """Time `steps` training steps after two warm-up steps."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = UNet(**config).to(device, memory_format=memory_format).train()
    optimizer = torch.optim.Adam(model.parameters(), 1e-4)
    batches = iter(loader)
    flops = step_flops(model, [t.to(device) for t in next(batches)])
    waited = total = 0.0
    for index in range(steps + 2):
        synchronize(device)
        started = time.perf_counter()
        noisy, clean, sigma = next(batches)
        ready = time.perf_counter()
        noisy = noisy.to(device, memory_format=memory_format, non_blocking=True)
        clean = clean.to(device, memory_format=memory_format, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.l1_loss(model(noisy, sigma.to(device)).float(), clean)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        synchronize(device)
        if index >= 2:
            waited += ready - started
            total += time.perf_counter() - started
    seconds = total / steps
    return {"step_s": seconds, "images_s": BATCH / seconds, "wait": waited / total, "gflops": flops / seconds / 1e9}


def loader(device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Endless (noisy, clean, sigma) batches of the demo photos, drawn on `device`."""
    generator = torch.Generator(device).manual_seed(0)
    sampler = CropSampler(read_photos(list_images(C.DEMO_DIR))[0], CROP, device, generator)
    task = Denoise((0.0, 0.5), 2.0)
    while True:
        clean = sampler.sample(BATCH)
        noisy, sigma = task.degrade_batch(clean, generator)
        yield noisy, clean, sigma


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        # emulated bf16 (CPUs without AVX512-BF16 or AMX) is measured on a smaller matmul, and too
        # slow to be worth training rows
        native = native_bf16(device)
        ceilings = {
            False: matmul_gflops(device, torch.float32),
            True: matmul_gflops(device, torch.bfloat16, 2048 if native else 512),
        }
        print(
            f"\n{device.type}: matmul ceiling fp32 {ceilings[False]:.0f} GFLOP/s, "
            f"bf16 {ceilings[True]:.{0 if native else 2}f} GFLOP/s{'' if native else ' (emulated, no bf16 rows)'}; "
            f"{datetime.date.today()}, {platform.machine()} ({torch.backends.cpu.get_cpu_capability()}), "
            f"{os.cpu_count()} cores, "
            f"{torch.get_num_threads()} threads, batch {BATCH}x{CROP}x{CROP}\n"
        )
        print("| model | precision | channels_last | images/s | s/step | data wait | GFLOP/s | of matmul ceiling |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        data = loader(device)
        for name, config in MODELS.items():
            for bf16 in (False, True) if native else (False,):
                for channels_last in (False, True):
                    r = measure(config, device, bf16, channels_last, data, args.steps)
                    share = r["gflops"] / ceilings[bf16]
                    print(
                        f"| {name} | {'bf16' if bf16 else 'fp32'} | {channels_last} | {r['images_s']:.1f} | "
                        f"{r['step_s']:.3f} | {r['wait']:.1%} | {r['gflops']:.0f} | {share:.0%} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
