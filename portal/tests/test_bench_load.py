"""The figures of ``manage.py bench``: percentiles of the measured latencies."""

from portal.bench.load import percentile


def test_percentiles_are_nearest_rank_and_ordered():
    # given a hundred latencies, 1 to 100
    values = [float(v) for v in range(1, 101)]
    # when their percentiles are taken / then each is the value at its rank
    assert [percentile(values, p) for p in (50, 95, 99, 100)] == [50.0, 95.0, 99.0, 100.0]
    # and one value or none need no interpolation
    assert percentile([7.0], 99) == 7.0 and percentile([], 50) == 0.0
