"""Write a split manifest of a data folder (the split itself: model/split.py).

python -m utils.split_data data/afhq                    # the project's split: AFHQ 10%, 50 test images
python -m utils.split_data my_photos --test-size 20     # your own numbers

Without --retain, --test-size or --val-size it writes the split training uses by default
(`default_split`): AFHQ keeps 10% and 50 test images, any other folder keeps every photo and
holds out up to 12 each for val and test.
"""

from __future__ import annotations

from pathlib import Path

from constants import RETAIN, SEED, SPLITS_DIR, TEST_SIZE
from model.config_flags import make_parser
from model.files import write_json_atomic
from model.split import default_split, is_afhq_layout, make_split


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("root", type=Path, help="data folder (AFHQ or folder-per-class)")
    parser.add_argument(
        "--retain", type=float, help=f"share of the images kept, per class (default: {RETAIN} of AFHQ, else all)"
    )
    parser.add_argument("--test-size", type=int, help=f"test images, spread over the classes (default {TEST_SIZE})")
    parser.add_argument(
        "--val-size", type=int, default=None, help="val images, folder-per-class layout (default: --test-size)"
    )
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the draw")
    parser.add_argument("-o", "--output", type=Path, help="manifest path (default: data/splits/<folder>.json)")
    args = parser.parse_args()
    try:
        if args.retain is None and args.test_size is None and args.val_size is None:
            manifest = default_split(args.root, args.seed)
        else:
            retain = args.retain if args.retain is not None else RETAIN if is_afhq_layout(args.root) else 1.0
            test_size = TEST_SIZE if args.test_size is None else args.test_size
            manifest = make_split(args.root, retain, test_size, args.val_size, args.seed)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    output = args.output or SPLITS_DIR / f"{args.root.resolve().name}.json"
    write_json_atomic(output, manifest)
    print(f"{output}: {manifest['counts']}")


if __name__ == "__main__":
    main()
