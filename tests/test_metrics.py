import json

import numpy as np
import pytest

from utils.metrics import class_groups, evaluation_results, per_class_accuracy, summarize


def test_per_class_accuracy_by_hand():
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 0, 2, 2, 0, 0, 0])
    assert per_class_accuracy(y_true, y_pred, 4).tolist()[:3] == [75.0, 50.0, 40.0]
    assert np.isnan(per_class_accuracy(y_true, y_pred, 4)[3])


def test_cifar10_thirds_in_a_shuffled_class_order():
    counts = np.array([348, 969, 125, 208, 1617, 75, 4500, 581, 2697, 45])  # published split1 order
    groups = class_groups(counts, "thirds")
    assert groups["few"].tolist() == [2, 5, 9]          # 125, 75, 45
    assert groups["medium"].tolist() == [0, 3, 7]       # 348, 208, 581
    assert groups["many"].tolist() == [1, 4, 6, 8]      # 969, 1617, 4500, 2697


def test_cifar100_thirds_and_ties():
    counts = np.array([int(450 * 0.01 ** (r / 99)) for r in range(100)])
    sizes = {k: len(v) for k, v in class_groups(counts, "thirds").items()}
    assert sizes == {"many": 34, "medium": 33, "few": 33}
    tied = class_groups(np.array([5, 5, 5, 9, 9, 9]), "thirds")
    assert tied["few"].tolist() == [0, 1] and tied["medium"].tolist() == [2, 3] and tied["many"].tolist() == [4, 5]


def test_thresholds_rule():
    groups = class_groups(np.array([500, 101, 100, 20, 19, 3]), "thresholds")
    assert groups["many"].tolist() == [0, 1] and groups["medium"].tolist() == [2, 3]
    assert groups["few"].tolist() == [4, 5]
    with pytest.raises(ValueError, match="unknown grouping rule"):
        class_groups([1, 2, 3], "halves")


def test_summary_and_std_by_hand():
    per_class = np.array([90.0, 80.0, 70.0, 60.0, 50.0, 40.0])
    groups = class_groups(np.array([500, 300, 100, 50, 20, 5]), "thirds")
    out = summarize(per_class, groups)
    assert out["all"] == 65.0 and out["many"] == 85.0 and out["medium"] == 65.0 and out["few"] == 45.0
    assert out["std"] == pytest.approx(np.std([85.0, 65.0, 45.0]))  # population std: 16.33
    empty = summarize(per_class, {"many": np.array([0, 1]), "medium": np.array([2, 3]), "few": np.array([], int)})
    assert empty["few"] is None and empty["std"] == pytest.approx(10.0)


def test_results_are_json_ready():
    y_true = np.repeat(np.arange(6), 4)
    y_pred = y_true.copy()
    y_pred[::4] = 0
    results = evaluation_results(y_true, y_pred, [500, 300, 100, 50, 20, 5], "thirds")
    again = json.loads(json.dumps(results))
    assert again["per_class"] == [100.0, 75.0, 75.0, 75.0, 75.0, 75.0]
    assert {"all", "many", "medium", "few", "std", "per_class", "class_counts"} <= again.keys()
    assert again["class_counts"] == [500, 300, 100, 50, 20, 5]


def test_summary_line_rounds_and_says_when_a_group_is_empty():
    from utils.metrics import format_summary
    line = format_summary({"all": 13.333333333333334, "many": None, "medium": 20.0, "few": 6.666666666666667,
                           "std": 6.666666666666666})
    assert line == "all 13.33 many n/a medium 20.00 few 6.67 std 6.67"
