"""ShuffledLengthGroupedSampler: little padding per batch, no ordering pattern, deterministic, complete."""
import numpy as np

from lmtune.sampling import ShuffledLengthGroupedSampler


def batches(sampler, size):
    order = list(sampler)
    return [order[i:i + size] for i in range(0, len(order), size)]


def test_every_index_is_yielded_exactly_once():
    lengths = np.random.default_rng(0).integers(3, 60, size=1003).tolist()
    assert sorted(ShuffledLengthGroupedSampler(lengths, 16, seed=1)) == list(range(1003))


def test_batches_hold_similar_lengths_so_padding_is_far_below_random_batches():
    lengths = np.random.default_rng(0).integers(3, 60, size=3200).tolist()
    def padding(bs):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in bs)
    grouped = padding(batches(ShuffledLengthGroupedSampler(lengths, 16, seed=1), 16))
    rng = np.random.default_rng(1).permutation(3200).tolist()
    random = padding([rng[i:i + 16] for i in range(0, 3200, 16)])
    assert grouped < random / 5


def test_batch_lengths_follow_no_long_to_short_pattern():
    lengths = np.random.default_rng(0).integers(3, 60, size=3200).tolist()
    longest = [max(lengths[i] for i in b) for b in batches(ShuffledLengthGroupedSampler(lengths, 16, seed=1), 16)]
    first_half, second_half = np.mean(longest[:25]), np.mean(longest[25:50])  # one megabatch of 50 batches
    assert abs(first_half - second_half) < 10, (first_half, second_half)
    assert longest[:50] != sorted(longest[:50], reverse=True)


def test_same_seed_and_epoch_give_the_same_order_and_a_new_epoch_reshuffles():
    lengths = list(range(100))
    a, b = ShuffledLengthGroupedSampler(lengths, 8, seed=3), ShuffledLengthGroupedSampler(lengths, 8, seed=3)
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)
