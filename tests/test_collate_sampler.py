from collections import Counter

import torch

from esc50.core.data.collate import collate
from esc50.core.data.sampler import ClassBalancedSampler


def test_collate_pads_to_the_longest_and_keeps_lengths():
    items = [{"wav": torch.ones(5, dtype=torch.int16), "label": 1},
             {"wav": torch.full((3,), 2, dtype=torch.int16), "label": 4}]
    batch = collate(items)
    assert batch["wav"].shape == (2, 5) and batch["wav"].dtype == torch.int16
    assert batch["wav"][1].tolist() == [2, 2, 2, 0, 0]
    assert batch["length"].tolist() == [5, 3] and batch["label"].tolist() == [1, 4]


def test_sampler_draws_classes_evenly_from_an_unbalanced_split():
    labels = [0] * 900 + [1] * 90 + [2] * 10
    sampler = ClassBalancedSampler(labels, torch.Generator().manual_seed(0))
    drawn = Counter(labels[i] for _ in range(20) for i in sampler)
    shares = [drawn[c] / sum(drawn.values()) for c in range(3)]
    assert all(abs(s - 1 / 3) < 0.02 for s in shares), shares
    assert len(sampler) == len(labels)


def test_sampler_follows_its_generator():
    labels = [0, 0, 1, 2, 2, 2]
    first = list(ClassBalancedSampler(labels, torch.Generator().manual_seed(5)))
    again = list(ClassBalancedSampler(labels, torch.Generator().manual_seed(5)))
    assert first == again


def test_shards_are_equal_slices_of_one_draw_and_keep_the_balance():
    labels = [0] * 900 + [1] * 90 + [2] * 11
    shards = [ClassBalancedSampler(labels, torch.Generator().manual_seed(3), 2, rank)
              for rank in range(2)]
    assert [len(s) for s in shards] == [501, 501]
    first = [list(s) for s in shards]
    weights = torch.tensor([1 / 900] * 900 + [1 / 90] * 90 + [1 / 11] * 11, dtype=torch.double)
    one_draw = torch.multinomial(weights, 1002, True, generator=torch.Generator().manual_seed(3))
    assert [first[i % 2][i // 2] for i in range(1002)] == one_draw.tolist()
    for shard in shards:
        drawn = Counter(labels[i] for _ in range(20) for i in shard)
        shares = [drawn[c] / sum(drawn.values()) for c in range(3)]
        assert all(abs(s - 1 / 3) < 0.03 for s in shares), shares
