import sys

import numpy as np
import pytest
from PIL import Image

from utils.plots import save_image_grid, save_tailness_histogram

PNG = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    assert path.read_bytes()[:8] == PNG
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        return image.size


def test_agg_backend():
    assert sys.modules["matplotlib"].get_backend().lower() == "agg"


def test_image_grid_with_short_and_empty_rows(tmp_path):
    rng = np.random.default_rng(0)
    rows = [rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8), np.empty((0, 32, 32, 3), np.uint8),
            rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8), rng.integers(0, 256, (12, 32, 32, 3), np.uint8)]
    save_image_grid(rows, ["cluster 0", "cluster 1", "cluster 2", "cluster 3"], tmp_path / "grid.png",
                    title="round 1")
    width, height = png_size(tmp_path / "grid.png")
    assert 600 < width < 1500 and 400 < height < 1000
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]  # no temporary file left behind
    save_image_grid([], [], tmp_path / "none.png", max_per_row=4)
    png_size(tmp_path / "none.png")
    with pytest.raises(ValueError, match="row titles"):
        save_image_grid(rows, ["one"], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="uint8"):
        save_image_grid([np.zeros((2, 32, 32, 3), np.float32)], ["floats"], tmp_path / "bad.png")


@pytest.mark.parametrize("classes", [10, 100])
def test_tailness_by_class(tmp_path, classes):
    rng = np.random.default_rng(classes)
    labels = rng.integers(0, classes, 3000)
    scores = rng.normal(labels / classes, 0.1)
    scores[:30] = np.nan
    counts = np.bincount(labels, minlength=classes)
    names = [f"c{c}" for c in range(classes)]
    save_tailness_histogram(scores, labels, tmp_path / "t.png", class_names=names, class_counts=counts,
                            title="round 1")
    width, height = png_size(tmp_path / "t.png")
    assert width > 500 and height > 300
    save_tailness_histogram(scores, labels, tmp_path / "plain.png")  # no names, no counts
    png_size(tmp_path / "plain.png")


def test_tailness_without_labels_and_edge_cases(tmp_path):
    rng = np.random.default_rng(1)
    scores = rng.random(50)
    scores[::7] = np.nan
    save_tailness_histogram(scores, None, tmp_path / "nolabels.png")
    assert png_size(tmp_path / "nolabels.png")[0] > 400
    save_tailness_histogram(np.full(20, np.nan), None, tmp_path / "unscored.png")  # before any epoch
    png_size(tmp_path / "unscored.png")
    labels = np.repeat([0, 1, 2], 4)
    partly = np.where(labels == 1, np.nan, 0.5)  # class 1 never scored
    save_tailness_histogram(partly, labels, tmp_path / "partly.png", class_counts=np.array([4, 4, 4]))
    png_size(tmp_path / "partly.png")
    many = np.repeat(np.arange(20), 3)
    save_tailness_histogram(np.where(many == 5, np.nan, rng.random(60)), many, tmp_path / "box.png",
                            class_counts=np.full(20, 3))
    png_size(tmp_path / "box.png")
    save_tailness_histogram(rng.random(12), np.full(12, -1), tmp_path / "unlabelled.png")
    png_size(tmp_path / "unlabelled.png")
    with pytest.raises(ValueError, match="labels"):
        save_tailness_histogram(rng.random(5), np.zeros(4, int), tmp_path / "bad.png")
    with pytest.raises(ValueError, match="class_counts"):
        save_tailness_histogram(rng.random(4), np.arange(4), tmp_path / "bad.png", class_counts=[1, 1])
