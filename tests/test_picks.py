"""utils/picks.py: relations of pool items to the ID classes, shares of a selection against the pool's, the
table and the picture; checked against counts made by hand."""
from __future__ import annotations

import numpy as np
import pytest

from utils.picks import (NEAR_RELATIONS, RELATIONS, format_picks, item_relations, mak_terms, mak_terms_markdown,
                         mean_mak_terms, mean_picks, near_markdown, near_shares, picks_markdown, picks_summary,
                         plot_picks, relation_means, relation_shares)

# 6 classes: counts 60 50 40 30 20 10 -> thirds: Many {0, 1}, Medium {2, 3}, Few {4, 5}
COUNTS = [60, 50, 40, 30, 20, 10]


def test_item_relations_follow_the_probe_groups():
    near = np.array([0, 1, 2, 3, 4, 5, -1, -1])
    assert item_relations(near, COUNTS).tolist() == [2, 2, 1, 1, 0, 0, 3, 3]
    # the order of the classes is the counts', not the ids': class 0 rare here
    assert item_relations(np.array([0, 5]), [10, 20, 30, 40, 50, 60]).tolist() == [0, 2]
    # a class the counts do not cover has 0 images: the rarest
    assert item_relations(np.array([6]), COUNTS).tolist() == [0]


def test_shares_and_summary_against_hand_counts():
    relations = np.array([0, 0, 1, 2, 2, 2, 3, 3, 3, 3])  # pool shares 0.2 0.1 0.3 0.4
    np.testing.assert_allclose(relation_shares(relations), [0.2, 0.1, 0.3, 0.4])
    chosen = np.array([0, 1, 6, 9])  # two near tail, two far
    summary = picks_summary(relations, chosen)
    assert summary["chosen"] == 4 and summary["pool_size"] == 10
    tail = summary["relations"]["near tail"]
    assert tail["count"] == 2 and tail["share"] == 0.5 and tail["pool_share"] == 0.2
    assert tail["enrichment"] == pytest.approx(2.5)
    assert summary["relations"]["near medium"]["count"] == 0
    assert summary["relations"]["far"]["enrichment"] == pytest.approx(0.5 / 0.4)
    assert sum(cell["share"] for cell in summary["relations"].values()) == pytest.approx(1)
    line = format_picks(summary)
    assert "near tail 50.0% (pool 20.0%, x2.50)" in line and line.startswith("4 picks")


def test_relation_missing_from_the_pool_has_no_ratio():
    summary = picks_summary(np.array([3, 3, 2]), np.array([0]))
    assert summary["relations"]["near tail"]["enrichment"] is None
    assert "near tail 0.0% (pool 0.0%)" in format_picks(summary)


def test_mean_over_selections():
    relations = np.array([0, 0, 1, 2, 2, 2, 3, 3, 3, 3])
    a, b = picks_summary(relations, [0, 1]), picks_summary(relations, [0, 6])
    mean = mean_picks([a, b])
    assert mean["n"] == 2
    assert mean["relations"]["near tail"]["share"] == pytest.approx(0.75)
    assert mean["relations"]["near tail"]["share_std"] == pytest.approx(0.25)
    assert mean["relations"]["near tail"]["enrichment"] == pytest.approx(0.75 / 0.2)
    with pytest.raises(ValueError):
        mean_picks([])


def test_markdown_and_picture(tmp_path):
    relations = np.array([0, 0, 1, 2, 2, 2, 3, 3, 3, 3])
    rows = [("COLT round 1", picks_summary(relations, [0, 1, 6, 9])),
            ("random", mean_picks([picks_summary(relations, [2, 3]), picks_summary(relations, [4, 5])]))]
    text = picks_markdown(rows)
    lines = text.splitlines()
    assert lines[0] == "| selection | chosen | " + " | ".join(RELATIONS) + " |"
    assert lines[2] == "| COLT round 1 | 4 | 50.0% (x2.50) | 0.0% (x0.00) | 0.0% (x0.00) | 50.0% (x1.25) |"
    assert lines[3].startswith("| random (mean of 2) | 2 | 0.0 ± 0.0% (x0.00) | 25.0 ± 25.0% (x2.50) |")
    assert lines[4] == "| pool (= random, in expectation) | 10 | 20.0% | 10.0% | 30.0% | 40.0% |"
    assert picks_markdown([]) == ""
    plot_picks(rows, tmp_path / "picks.png", title="t")
    assert (tmp_path / "picks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_relation_means_against_a_loop():
    rng = np.random.default_rng(0)
    relations = rng.integers(0, 3, size=50)  # no far item
    values = rng.standard_normal(50)
    means = relation_means(relations, values)
    for i, name in enumerate(RELATIONS[:3]):
        mine = [v for r, v in zip(relations, values) if r == i]
        assert means[name] == pytest.approx(sum(mine) / len(mine), abs=1e-12)
    assert means["far"] is None
    with pytest.raises(ValueError, match="4 values for 50"):
        relation_means(relations, values[:4])


def test_mak_terms_their_mean_and_table():
    relations = np.array([0, 0, 1, 2, 3, 3])
    z_ecle, z_dist = np.array([1.0, 3.0, 0.0, -2.0, 0.5, 1.5]), np.array([-1.0, -1.0, 0.0, 2.0, 1.0, 0.0])
    score = 0.5 * z_ecle - 0.5 * z_dist
    terms = mak_terms(relations, z_ecle, z_dist, score, candidates=[0, 1, 4])
    assert terms["zscore_ecle"] == {"near tail": 2.0, "near medium": 0.0, "near head": -2.0, "far": 1.0}
    assert terms["zscore_distance"]["far"] == 0.5 and terms["score"]["near tail"] == 1.5
    assert terms["candidates"] == picks_summary(relations, [0, 1, 4])
    assert mak_terms(relations, None, z_dist, score, None)["zscore_ecle"] is None
    other = mak_terms(relations, -z_ecle, z_dist, score, candidates=[0, 2, 3])
    mean = mean_mak_terms([terms, other])
    assert mean["n"] == 2 and mean["zscore_ecle"]["near tail"] == 0.0 and mean["zscore_distance"]["far"] == 0.5
    assert mean["candidates"] == mean_picks([terms["candidates"], other["candidates"]])
    picks = picks_summary(relations, [0, 4])
    text = mak_terms_markdown([("MAK", terms, picks)])
    assert "| MAK | near tail | +2.00 | -1.00 | +1.50 | 66.7% (x2.00) | 50.0% (x1.50) |" in text
    assert "| MAK (mean of 2) | far | +0.00 | +0.50 |" in mak_terms_markdown([("MAK", mean, picks)])
    assert "| MAK | near tail | - |" in mak_terms_markdown([("MAK", mak_terms(relations, None, z_dist, score, None),
                                                                     picks)])


def test_near_shares_against_counts_of_the_near_items():
    rng = np.random.default_rng(0)
    relations = rng.integers(0, len(RELATIONS), 200)
    chosen = rng.choice(200, 40, replace=False)
    shares = near_shares(picks_summary(relations, chosen))
    near_pool, near_chosen = relations[relations != 3], relations[chosen][relations[chosen] != 3]
    assert shares["near"]["share"] == pytest.approx(len(near_chosen) / 40)
    assert shares["near"]["pool_share"] == pytest.approx(len(near_pool) / 200)
    for r, name in enumerate(NEAR_RELATIONS):
        mine, pool = np.mean(near_chosen == r), np.mean(near_pool == r)
        assert shares[name]["share"] == pytest.approx(mine)
        assert shares[name]["pool_share"] == pytest.approx(pool)
        assert shares[name]["enrichment"] == pytest.approx(mine / pool)
    assert sum(shares[n]["share"] for n in NEAR_RELATIONS) == pytest.approx(1)


def test_near_shares_when_only_far_items_are_chosen_and_the_table():
    relations = np.array([0, 0, 1, 2, 2, 2, 3, 3, 3, 3])  # near items: 2 tail, 1 medium, 3 head
    only_far = near_shares(picks_summary(relations, [6, 7]))
    assert only_far["near"]["share"] == 0 and only_far["near tail"]["share"] is None
    assert only_far["near tail"]["enrichment"] is None
    rows = [("COLT round 1", picks_summary(relations, [0, 3, 6, 9])), ("far only", picks_summary(relations, [6]))]
    lines = near_markdown(rows).splitlines()
    assert lines[0].startswith("| selection | near items (of all chosen) | near tail (of the near ones) |")
    # 2 near of 4 (pool 6 of 10); of them 1 tail (pool 2 of 6) and 1 head (pool 3 of 6)
    assert lines[2] == "| COLT round 1 | 50.0% (x0.83) | 50.0% (x1.50) | 0.0% (x0.00) | 50.0% (x1.00) |"
    assert lines[3] == "| far only | 0.0% (x0.00) | - | - | - |"
    assert lines[4] == "| pool (= random, in expectation) | 60.0% | 33.3% | 16.7% | 50.0% |"
    assert near_markdown([]) == ""
