"""Moved: the GPU trainer is `python -m model.train --preset gpu` now (one trainer for every device).

This alias stays for one release: it translates the old flags, prints the new command and runs it.

    python -m model.train_gpu --pack data/pretrain --out runs/gpu --minutes 60
    # is now
    python -m model.train --preset gpu --data-dir data/pretrain --out-dir runs/gpu --minutes 60
"""

from __future__ import annotations

import sys

RENAMED = {"--pack": "--data-dir", "--out": "--out-dir", "--val-crop": "--eval-crop-size"}
REPLACED = {"--bf16": ["--amp", "auto"], "--no-bf16": ["--amp", "none"]}


def translate(argv: list[str]) -> list[str]:
    """The old flags as the new trainer's, after `--preset gpu`."""
    flags = ["--preset", "gpu"]
    for arg in argv:
        name, equals, value = arg.partition("=")
        if name in REPLACED:
            flags += REPLACED[name]
        elif name in ("--scratch", "--min-lr"):
            instead = "the network flags and --init ''" if name == "--scratch" else "--final-lr-fraction"
            raise SystemExit(f"error: {name} is gone; python -m model.train has {instead}")
        else:
            flags.append(RENAMED.get(name, name) + equals + value)
    return flags


def main(argv: list[str] | None = None) -> None:
    flags = translate(sys.argv[1:] if argv is None else argv)
    print(f"model.train_gpu has moved; running: python -m model.train {' '.join(flags)}", file=sys.stderr)
    from model import train

    train.main(flags)


if __name__ == "__main__":
    main()
