"""The shipping rule as benchmarks/eval_quality.py checks it (worst margin to CBM3D up, no row down 0.02 dB),
and the cache of CBM3D's scores that lets a quick run give that verdict."""

import json

import numpy as np
import pytest

import constants as C
from benchmarks import eval_quality
from benchmarks.eval_quality import changes, evaluate, per_image, read_cbm3d_cache


def rows(ours_5: float, ours_50: float) -> list[dict]:
    return [
        {"set": "standard", "sigma": "5/255", "CBM3D": (40.0, 0.9), "previous": (39.5, 0.9), "ours": (ours_5, 0.9)},
        {"set": "standard", "sigma": "50/255", "CBM3D": (28.0, 0.8), "previous": (28.5, 0.8), "ours": (ours_50, 0.8)},
    ]


def test_each_row_s_change_is_shown_finer_than_the_rules_bound():
    text = changes(rows(39.5604, 28.4796))
    assert "standard 5/255: ours - previous +0.060 dB" in text
    assert "standard 50/255: ours - previous -0.020 dB" in text


def test_the_rule_holds_when_the_worst_row_rises_and_no_row_falls_more_than_the_bound():
    assert changes(rows(39.56, 28.485)).endswith(
        "worst margin to CBM3D -0.500 -> -0.440 dB, largest fall -0.015 dB: holds"
    )
    assert changes(rows(39.56, 28.4797)).endswith("largest fall -0.020 dB: fails")  # 0.0203 down: the bound is 0.02
    assert changes(rows(39.5, 28.6)).endswith("fails")  # the worst row did not rise


def test_without_cbm3d_only_the_changes_are_shown():
    plain = [{k: v for k, v in row.items() if k != "CBM3D"} for row in rows(39.6, 28.4)]
    assert "shipping rule" not in changes(plain)


def photos(seed: int) -> dict[str, dict[str, np.ndarray]]:
    return {"tiny": {"photo": np.random.default_rng(seed).random((32, 32, 3), dtype=np.float32)}}


def test_cbm3d_scores_are_cached_so_a_run_without_the_column_still_gets_the_verdict(tmp_path):
    cache, sigmas = tmp_path / "cbm3d.json", {"25/255": 25 / 255}
    computed, _ = evaluate(photos(0), sigmas, cache=cache, only=["CBM3D"])
    rows, per_megapixel = evaluate(
        photos(0), sigmas, cache=cache, previous=C.CHECKPOINT_PATH, only=["previous", "ours"]
    )
    assert "CBM3D" not in per_megapixel  # not run, so not in the table
    assert rows[0]["CBM3D"] == computed[0]["CBM3D"]
    assert "shipping rule" in changes(rows)


def test_per_image_gives_every_photo_s_margin_to_cached_cbm3d(tmp_path):
    cache, sigmas = tmp_path / "cbm3d.json", {"25/255": 25 / 255, "50/255": 50 / 255}
    two = {"tiny": {"a": photos(0)["tiny"]["photo"], "b": photos(1)["tiny"]["photo"]}}
    computed, _ = evaluate(two, sigmas, cache=cache, only=["CBM3D"])
    rows, _ = evaluate(two, sigmas, cache=cache, only=["noisy", "ours"])
    lines = per_image(rows).splitlines()
    assert lines[0] == "| images | sigma | photo | noisy | ours | CBM3D | ours - CBM3D |"
    assert len(lines) == 2 + 4  # a line per photo and sigma
    for row, cbm3d in zip(rows, computed, strict=True):
        assert row["per image"]["CBM3D"] == cbm3d["per image"]["CBM3D"]
        assert np.mean(row["per image"]["ours"]) == pytest.approx(row["ours"][0])
    noisy, ours, cbm3d = (rows[1]["per image"][name][1] for name in ("noisy", "ours", "CBM3D"))
    assert lines[-1] == f"| tiny | 50/255 | b | {noisy:.2f} | {ours:.2f} | {cbm3d:.2f} | {ours - cbm3d:+.2f} |"


def test_per_image_without_cbm3d_has_no_margin_column(tmp_path):
    rows, _ = evaluate(photos(0), {"25/255": 25 / 255}, cache=tmp_path / "none.json", only=["noisy"])
    assert per_image(rows).splitlines()[0] == "| images | sigma | photo | noisy |"


def test_a_changed_photo_or_another_bm3d_version_is_not_taken_from_the_cache(tmp_path):
    cache, sigmas = tmp_path / "cbm3d.json", {"25/255": 25 / 255}
    evaluate(photos(0), sigmas, cache=cache, only=["CBM3D"])
    rows, _ = evaluate(photos(1), sigmas, cache=cache, only=["noisy"])
    assert "CBM3D" not in rows[0]
    assert read_cbm3d_cache(cache)
    cache.write_text(json.dumps({**json.loads(cache.read_text()), "bm3d": "0.0"}))
    assert read_cbm3d_cache(cache) == {}


def test_a_stopped_run_keeps_the_cbm3d_scores_it_computed(tmp_path, monkeypatch):
    cache, real_cbm3d = tmp_path / "cbm3d.json", eval_quality.cbm3d

    def stop_at_heavy_noise(noisy: np.ndarray, sigma: float) -> np.ndarray:
        if sigma > 0.1:
            raise KeyboardInterrupt
        return real_cbm3d(noisy, sigma)

    monkeypatch.setattr(eval_quality, "cbm3d", stop_at_heavy_noise)
    with pytest.raises(KeyboardInterrupt):
        evaluate(photos(0), {"5/255": 5 / 255, "50/255": 50 / 255}, cache=cache, only=["CBM3D"])
    assert [key.split("#")[0] for key in read_cbm3d_cache(cache)] == ["tiny/photo@5/255"]


def test_validation_photos_are_centre_crops_as_they_are_or_jpegd(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, size in (("big.png", (300, 280)), ("small.png", (120, 90))):
        pixels = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).resize(size, Image.BICUBIC).save(tmp_path / name)
    (tmp_path / "split.json").write_text(json.dumps({"val_large": ["big.png", "small.png"]}))
    lossless = eval_quality.validation_photos(root=tmp_path)
    assert {k: v.shape for k, v in lossless.items()} == {"big.png": (256, 256, 3), "small.png": (90, 120, 3)}
    whole = np.asarray(Image.open(tmp_path / "small.png"), np.float32) / 255
    assert np.array_equal(lossless["small.png"], whole)
    jpegd = eval_quality.validation_photos(75, root=tmp_path)
    for name, clean in lossless.items():
        mse = float(np.mean((jpegd[name] - clean) ** 2))
        assert 0 < mse < 10 ** (-25 / 10)  # changed, but above 25 dB
    with pytest.raises(SystemExit, match="split.json is missing: build the set"):
        eval_quality.validation_photos(root=tmp_path / "nowhere")
