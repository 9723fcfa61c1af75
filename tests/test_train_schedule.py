import pytest

from instantrestore.train import TrainConfig
from instantrestore.train.schedule import lr_factor


def test_constant_is_one_and_warmup_ramps_linearly():
    assert [lr_factor("constant", s, 10) for s in range(10)] == [1.0] * 10
    assert [lr_factor("constant", s, 10, warmup_steps=4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_decay_runs_from_the_base_rate_to_the_final_ratio(schedule):
    factors = [lr_factor(schedule, s, 12, warmup_steps=1, final_ratio=0.1) for s in range(12)]
    assert factors[0] == 1.0 and factors[1] == 1.0  # warm-up step, then the decay starts at the top
    assert factors[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(factors[1:], factors[2:]))
    assert factors[6] == pytest.approx(0.55)  # both shapes pass the midpoint at the mean of the ends


def test_bad_schedule_values_are_refused():
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        lr_factor("step", 0, 10)
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        TrainConfig(lr_schedule="exp")
    with pytest.raises(ValueError, match="lr_final_ratio must be in"):
        TrainConfig(lr_final_ratio=2.0)
    with pytest.raises(ValueError, match="lr_warmup_steps must be in"):
        TrainConfig(steps=5, lr_warmup_steps=5)
