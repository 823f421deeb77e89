"""K-wise ranking bookkeeping (fast, no Ray): shuffles, the ranking parser and its rejects, the
mapping back, mean ranks and ties, the derived pairs, config validation."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from synth_ray.methods.kwise_ranking import ranking as R
from synth_ray.methods.kwise_ranking.config import KwiseRankingConfig


def test_shuffle_is_seeded_and_differs_per_judgement():
    a = R.shuffle(7, 0, "p1", 0)
    assert sorted(a) == list(range(7)) and a == R.shuffle(7, 0, "p1", 0)
    assert len({tuple(R.shuffle(7, 0, "p1", j)) for j in range(6)}) > 1


def test_map_back_through_the_shown_order():
    perm = [2, 0, 1]  # shown A = original 2, B = 0, C = 1
    parsed = R.parse_ranking("fine\nRanking: B > C > A", 3)
    assert parsed.order == [1, 2, 0]
    assert R.ranks_from_order(parsed.order, perm) == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("text", "output", "reason"),
    [
        ("", "regex", "empty"),
        ("no ranking here", "regex", "no_ranking"),
        ("x\nRanking: A > B", "regex", "wrong_length"),
        ("x\nRanking: A > A > B", "regex", "duplicate_label"),
        ("x\nRanking: A > Z > B", "regex", "unknown_label"),
        ("x\nRanking: A > best > B", "free", "unknown_label"),
        ('{"ranking": ["A", "B"]}', "json", "wrong_length"),
        ("{not json", "json", "no_ranking"),
    ],
)
def test_parser_rejects_with_reasons(text, output, reason):
    p = R.parse_ranking(text, 3, output)
    assert p.order is None and p.reason == reason


def test_parser_reads_last_line_brackets_and_json():
    assert R.parse_ranking("Ranking: A > B > C\nRanking: [c] > [a] > [b]", 3).order == [2, 0, 1]
    assert R.parse_ranking('{"reasoning": "r", "ranking": ["B", "A"]}', 2, "json").order == [1, 0]


def test_regex_allows_only_permutations_up_to_exact_k():
    rx = re.compile(R.ranking_regex(3, 10))
    assert rx.fullmatch("short\nRanking: C > A > B")
    assert not rx.fullmatch("short\nRanking: C > C > B")
    loose = re.compile(R.ranking_regex(7, None))
    assert loose.fullmatch("Ranking: A > B > C > D > E > F > G")
    assert loose.fullmatch("Ranking: A > A > C > D > E > F > G")  # the parser rejects it
    assert R.parse_ranking("Ranking: A > A > C > D > E > F > G", 7).reason == "duplicate_label"


def test_mean_rank_ties_and_pairs():
    judged = [[1.0, 2.0, 3.0], [2.0, 1.0, 3.0]]
    means = R.mean_ranks(judged)
    assert means == [1.5, 1.5, 3.0]
    order, ties = R.final_order(means)
    assert order == [0, 1, 2] and ties == [[0, 1]]
    pairs, skipped = R.derived_pairs(order, means, ["a", "b", "c"])
    assert pairs == [(0, 2), (1, 2)] and skipped == {"tie": 1, "identical_responses": 0}
    pairs, skipped = R.derived_pairs([0, 1, 2], [1.0, 2.0, 3.0], ["a", "a", "c"], "all")
    assert (0, 1) not in pairs and skipped["identical_responses"] == 1
    assert R.derived_pairs([0, 1, 2], [1.0, 2.0, 3.0], ["a", "b", "c"], "best_worst")[0] == [(0, 2)]
    assert (
        len(R.derived_pairs(list(range(7)), [float(i) for i in range(7)], list("abcdefg"))[0]) == 21
    )


def test_ranks_from_scores_share_ties():
    assert R.ranks_from_scores([0.1, 0.9, 0.9, 0.5]) == [4.0, 1.5, 1.5, 3.0]


def test_config_validation():
    base = {"method": "kwise_ranking", "output_dir": "/tmp/x"}
    c = KwiseRankingConfig.model_validate(base)
    assert c.k == 7 and c.responders[0].samples == 7 and c.pairs == "all"
    with pytest.raises(ValidationError, match="add up to 3"):
        KwiseRankingConfig.model_validate({**base, "k": 4, "responders": [{"samples": 3}]})
    with pytest.raises(ValidationError, match="names must differ"):
        KwiseRankingConfig.model_validate(
            {**base, "k": 2, "responders": [{"samples": 1}, {"samples": 1}]}
        )
    with pytest.raises(ValidationError, match="judge.url"):
        KwiseRankingConfig.model_validate({**base, "judge": {"type": "reward_service"}})
    with pytest.raises(ValidationError):
        KwiseRankingConfig.model_validate({**base, "bogus": 1})
