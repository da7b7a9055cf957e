"""Budgets and schedules in fractions of the budget: parsing, scaling, and the minutes budget on a fake clock."""

import pytest

from bench.errors import UsageError
from bench.training import budget as b
from bench.training import recipes

STEP = {"base": 0.1, "knots": [[0, 1.0], [0.5, 0.1], [0.75, 0.01]], "interpolation": "step"}
LINEAR = {"base": 0.2, "knots": [[0, 0.1], [0.15, 1.0], [1.0, 0.0]], "interpolation": "linear"}


@pytest.mark.parametrize(
    "text,kind,value", [("epochs=3", "epochs", 3), ("steps=500", "steps", 500), ("minutes=7.5", "minutes", 7.5)]
)
def test_parse(text, kind, value):
    got = b.Budget.parse(text)
    assert (got.kind, got.value, str(got)) == (kind, value, text)


@pytest.mark.parametrize(
    "text", ["epochs=0", "epochs=2.5", "hours=1", "epochs", "steps=-3", "", "full", "epochs=٣", "minutes=1.٥"]
)
def test_parse_rejects(text):
    with pytest.raises(UsageError, match="--budget"):
        b.Budget.parse(text)


def test_full_is_the_recipe_budget():
    r = recipes.get("preact_resnet164_cifar10")
    assert b.Budget.parse("full", full=r.full()) == b.Budget("epochs", 100)
    assert str(recipes.get("resnet56_cifar10").full()) == "steps=64000"


def test_plan():
    assert b.plan(b.Budget.parse("epochs=3"), 390, max_epochs=99) == b.BudgetPlan(
        b.Budget("epochs", 3), 390, 3, 1170, None
    )
    p = b.plan(b.Budget.parse("steps=1000"), 390, max_epochs=99)
    assert (p.epochs, p.total_steps, p.deadline_s) == (3, 1000, None)
    p = b.plan(b.Budget.parse("minutes=2"), 390, max_epochs=7)
    assert (p.epochs, p.total_steps, p.deadline_s) == (7, None, 120.0)
    with pytest.raises(UsageError):
        b.plan(b.Budget.parse("epochs=1"), 0, max_epochs=1)


def test_step_schedule_is_the_articles():
    assert [b.lr_at(STEP, f) for f in (0, 0.49, 0.5, 0.74, 0.75, 1.0)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    )


def test_linear_schedule_interpolates_and_ends_at_zero():
    assert b.lr_at(LINEAR, 0) == pytest.approx(0.02)
    assert b.lr_at(LINEAR, 0.075) == pytest.approx(0.2 * 0.55)
    assert b.lr_at(LINEAR, 0.15) == pytest.approx(0.2)
    assert b.lr_at(LINEAR, 1.0) == 0.0


@pytest.mark.parametrize("schedule", [STEP, LINEAR])
def test_schedule_scales_with_the_budget(schedule):
    """A short budget is the same recipe compressed: rate at step s of N == rate at step k*s of k*N."""
    short = b.lr_curve(schedule, 100)
    long = b.lr_curve(schedule, 1000, points=range(0, 1000, 10))
    assert short == pytest.approx(long)


@pytest.mark.parametrize("total", [8, 390, 1170, 64000])
def test_decays_land_at_the_same_fraction_of_any_budget(total):
    curve = b.lr_curve(STEP, total)
    first_decay = next(i for i, lr in enumerate(curve) if lr < 0.1)
    assert first_decay == -(-total // 2)  # the first step at or past half the budget


def test_preact_schedule_in_epochs():
    r = recipes.get("preact_resnet164_cifar10")
    spe = 390
    total = 100 * spe
    assert b.lr_at(r.schedule, 79 * spe / total) == pytest.approx(0.1)
    assert b.lr_at(r.schedule, 80 * spe / total) == pytest.approx(0.01)
    # stretched to 10 epochs, the decay comes after epoch 8
    assert b.lr_at(r.schedule, 8 * spe / (10 * spe)) == pytest.approx(0.01)


@pytest.mark.parametrize(
    "bad",
    [
        {"base": 0.1, "knots": [[0.1, 1.0]]},
        {"base": 0.1, "knots": [[0, 1.0], [0.5, 0.1], [0.5, 0.01]]},
        {"base": 0.0, "knots": [[0, 1.0]]},
        {"base": 0.1, "knots": [[0, 1.0]], "interpolation": "cosine"},
        {"knots": [[0, 1.0]]},
        {"base": 0.1, "knots": [[0, 1.0]], "warmup": 5},  # a field lr_at does not read
    ],
)
def test_invalid_schedules(bad):
    with pytest.raises(UsageError):
        b.validate_schedule(bad)


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_minutes_budget_on_a_fake_clock():
    clock = FakeClock()
    plan = b.plan(b.Budget.parse("minutes=2"), 10, max_epochs=50)
    prog = b.Progress(plan, clock=clock)
    prog.start()
    assert prog.fraction(0) == 0 and not prog.done(0)
    clock.t += 60
    assert prog.fraction(123) == pytest.approx(0.5) and not prog.done(123)  # time, not steps, decides
    assert b.lr_at(STEP, prog.fraction(0)) == pytest.approx(0.01)
    clock.t += 59.9
    assert not prog.done(0)
    clock.t += 0.1
    assert prog.done(0) and prog.fraction(0) == 1.0


def test_minutes_budget_counts_time_before_a_resume():
    clock = FakeClock()
    prog = b.Progress(b.plan(b.Budget.parse("minutes=1"), 10, max_epochs=5), clock=clock, elapsed_before=45.0)
    prog.start()
    clock.t += 15
    assert prog.done(0)


def test_steps_budget_is_done_at_the_step_count():
    prog = b.Progress(b.plan(b.Budget.parse("steps=25"), 10, max_epochs=1))
    assert prog.fraction(5) == pytest.approx(0.2) and not prog.done(24) and prog.done(25)


def test_budgets_keep_every_digit_and_have_a_bound():
    """A million steps and one is not a million and two: the budget's text, and so the run id, result
    and baseline key, keep every digit; absurd budgets are one-line errors."""
    from bench.training.loop import run_id

    one, two = b.Budget.parse("steps=1000001"), b.Budget.parse("steps=1000002")
    assert (str(one), str(two), str(b.Budget.parse("minutes=7.5"))) == ("steps=1000001", "steps=1000002", "minutes=7.5")
    assert run_id("r", "d", one, "cpu", 0, ()) != run_id("r", "d", two, "cpu", 0, ())
    assert "steps1000001" in run_id("r", "d", one, "cpu", 0, ())
    with pytest.raises(UsageError, match="up to"):
        b.Budget.parse("steps=10000000000000")


def test_a_minutes_budget_runs_until_its_deadline_not_the_recipes_epochs():
    """The schedule's fraction is the time spent; fit's epoch bound must not end the run first."""
    plan = b.plan(b.Budget.parse("minutes=30"), 390, max_epochs=b.UNTIL_DEADLINE)
    assert plan.epochs == b.UNTIL_DEADLINE and plan.deadline_s == 1800.0
