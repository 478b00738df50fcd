import numpy as np
from PIL import Image

from utils.plots import save_image_grid, save_tailness_histogram

PNG = b"\x89PNG\r\n\x1a\n"


def opens(path):
    assert path.read_bytes()[:8] == PNG
    with Image.open(path) as image:
        return image.size


def test_image_grid_with_an_empty_row(tmp_path):
    rng = np.random.default_rng(0)
    rows = [rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8), np.empty((0, 32, 32, 3), np.uint8),
            rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)]
    save_image_grid(rows, ["cluster 0", "cluster 1", "cluster 2"], tmp_path / "grid.png", title="round 1")
    width, height = opens(tmp_path / "grid.png")
    assert width > 400 and height > 200


def test_tailness_histograms(tmp_path):
    rng = np.random.default_rng(1)
    for classes in (10, 100):
        labels = rng.integers(0, classes, 2000)
        scores = rng.normal(labels / classes, 0.1)
        scores[:30] = np.nan
        counts = np.bincount(labels, minlength=classes)
        save_tailness_histogram(scores, labels, tmp_path / f"t{classes}.png", class_counts=counts)
        assert opens(tmp_path / f"t{classes}.png")[0] > 300
    save_tailness_histogram(rng.random(50), None, tmp_path / "plain.png")
    opens(tmp_path / "plain.png")
