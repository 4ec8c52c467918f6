"""Write a split manifest of a data folder (the split itself: model/split.py).

python -m utils.split_data data/afhq --retain 0.1 --test-size 50
"""

from __future__ import annotations

from pathlib import Path

from constants import RETAIN, SEED, SPLITS_DIR, TEST_SIZE
from model.config_flags import make_parser
from model.files import write_json_atomic
from model.split import make_split


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("root", type=Path, help="data folder (AFHQ or folder-per-class)")
    parser.add_argument("--retain", type=float, default=RETAIN, help="share of the images kept, per class")
    parser.add_argument("--test-size", type=int, default=TEST_SIZE, help="test images, spread over the classes")
    parser.add_argument(
        "--val-size", type=int, default=None, help="val images, folder-per-class layout (default: --test-size)"
    )
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the draw")
    parser.add_argument("-o", "--output", type=Path, help="manifest path (default: data/splits/<folder>.json)")
    args = parser.parse_args()
    try:
        manifest = make_split(args.root, args.retain, args.test_size, args.val_size, args.seed)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    output = args.output or SPLITS_DIR / f"{args.root.resolve().name}.json"
    write_json_atomic(output, manifest)
    print(f"{output}: {manifest['counts']}")


if __name__ == "__main__":
    main()
