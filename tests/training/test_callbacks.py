"""The training callback, driven as ``model.fit`` drives it but with a stand-in model: the rate by
budget fraction, the steps and deadline stops, the NaN stop, the curve it persists and resuming."""

import json
import math

import pytest

from bench.errors import UsageError
from bench.training import budget
from bench.training.callbacks import State, Trainer, hms

SCHEDULE = {"base": 0.2, "knots": [[0, 0.1], [0.15, 1.0], [1.0, 0.0]], "interpolation": "linear"}


class Model:
    """What the callback touches: the optimizer's rate and ``stop_training``."""

    def __init__(self):
        self.optimizer = type("Optimizer", (), {"learning_rate": 0.0})()
        self.stop_training = False


def fit(trainer, plan, losses, *, first_epoch=0, on_step=lambda: None):
    """``model.fit``'s calls: returns the rate each step ran at."""
    model = Model()
    model._initial_epoch = first_epoch  # as Backup leaves it when it restores a checkpoint
    trainer.set_model(model)
    trainer.on_train_begin()
    rates, losses = [], iter(losses)
    for epoch in range(first_epoch, plan.epochs):
        trainer.on_epoch_begin(epoch)
        for batch in range(plan.steps_per_epoch):
            trainer.on_train_batch_begin(batch)
            rates.append(model.optimizer.learning_rate)
            on_step()
            trainer.on_train_batch_end(batch, {"loss": next(losses)})
            if model.stop_training:
                break
        trainer.on_epoch_end(epoch, {"loss": 1.5, "accuracy": 0.25, "learning_rate": 0.1})
        if model.stop_training:
            break
    return rates


def make(tmp_path, text, *, steps_per_epoch=4, clock=lambda: 0.0, max_epochs=3):
    plan = budget.plan(budget.Budget.parse(text), steps_per_epoch, max_epochs=max_epochs)
    state = State(tmp_path / "state.json")
    lines = []
    return Trainer(plan, SCHEDULE, state, clock=clock, label="r", log=lines.append), plan, state, lines


def test_steps_budget_sets_the_rate_stops_and_persists_the_curve(tmp_path):
    trainer, plan, state, _ = make(tmp_path, "steps=6")
    rates = fit(trainer, plan, [2.0] * 8)
    assert rates == pytest.approx([budget.lr_at(SCHEDULE, k / 6) for k in range(6)])
    assert trainer.stopped_by == "steps" and trainer.steps_run == 6 and trainer.failure is None
    assert [r["epoch"] for r in state.curve] == [1, 2]
    row = state.curve[-1]
    assert (row["loss"], row["accuracy"], "learning_rate" in row) == (1.5, 0.25, False)
    assert json.loads((tmp_path / "state.json").read_text())["curve"] == state.curve


def test_minutes_budget_follows_a_fake_clock(tmp_path):
    now = [0.0]
    trainer, plan, state, lines = make(tmp_path, "minutes=1", clock=lambda: now[0])

    def tick():  # each step takes 10 fake seconds
        now[0] += 10.0

    rates = fit(trainer, plan, [2.0] * 12, on_step=tick)
    # 4 steps an epoch, 3 epochs at most; 60 s / 10 s = 6 steps
    assert trainer.stopped_by == "deadline" and trainer.steps_run == 6 and [r["epoch"] for r in state.curve] == [1, 2]
    assert rates == pytest.approx([budget.lr_at(SCHEDULE, k / 6) for k in range(6)])  # the rate follows the clock
    assert state.elapsed_s == 60.0 and "ETA 0:00:00" in lines[-2]


def test_an_epochs_budget_records_that_its_budget_stopped_it_not_a_steps_budget(tmp_path):
    trainer, plan, state, _ = make(tmp_path, "epochs=2")
    fit(trainer, plan, [2.0] * 8)
    assert trainer.stopped_by == state.stopped_by == "budget" and trainer.steps_run == 8


def test_an_execution_of_several_steps_counts_them_all(tmp_path):
    """--steps-per-execution 2: Keras calls the batch callbacks once per execution, with its first and
    last batch; the steps run and the steady steps count every step of it."""
    trainer, plan, state, _ = make(tmp_path, "steps=8")
    trainer.set_model(Model())
    trainer.on_train_begin()
    for epoch in range(2):
        trainer.on_epoch_begin(epoch)
        for first in (0, 2):
            trainer.on_train_batch_begin(first)
            trainer.on_train_batch_end(first + 1, {"loss": 2.0})
        trainer.on_epoch_end(epoch, {"loss": 1.5})
    assert trainer.steps_run == 8 and state.steady_steps == 6 and trainer.stopped_by == "steps"


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_non_finite_loss_stops_and_is_not_saved(tmp_path, bad):
    trainer, plan, state, lines = make(tmp_path, "epochs=2")
    fit(trainer, plan, [2.0, 2.0, bad, 2.0])
    assert trainer.failure == f"loss became {bad} at epoch 1, step 3" and trainer.steps_run == 3
    assert trainer.stopped_by == "non-finite loss"
    assert lines[-2] == f"[r] loss became {bad} at epoch 1, step 3: stopping"
    assert not (tmp_path / "state.json").exists()  # no curve to resume after a NaN


def test_resume_drops_epochs_after_the_checkpoint_and_counts_time_spent(tmp_path):
    stale = [{"epoch": 1, "loss": 3.0}, {"epoch": 2, "loss": 2.5}]  # epoch 2's weights were never saved
    (tmp_path / "state.json").write_text(json.dumps({"curve": stale, "elapsed_s": 30.0, "processes": 1}))
    now = [100.0]
    trainer, plan, state, lines = make(tmp_path, "minutes=1", clock=lambda: now[0])
    assert (state.processes, state.elapsed_s) == (1, 30.0)

    def tick():
        now[0] += 10.0

    fit(trainer, plan, [2.0] * 8, first_epoch=1, on_step=tick)
    assert lines[0] == "[r] resumed from the checkpoint after epoch 1 (30 s already spent)"
    assert trainer.first_epoch == 1 and trainer.steps_run == 3  # 30 s before + 3 x 10 s
    assert [r["epoch"] for r in state.curve] == [1, 2] and state.curve[0] == stale[0] and state.curve[1]["loss"] == 1.5


def test_hms():
    assert [hms(s) for s in (0, 59.6, 61, 3600 + 62)] == ["0:00:00", "0:01:00", "0:01:01", "1:01:02"]


@pytest.mark.parametrize(
    "doc",
    [
        {"curve": [1, 2], "elapsed_s": 5, "processes": 1, "identity": {}},
        {"curve": [{"loss": 2.0}], "elapsed_s": 5, "processes": 1},
        {"curve": {"epoch": 1}, "elapsed_s": 5, "processes": 1},
        {"curve": [], "elapsed_s": "5", "processes": 1},
        {"curve": [], "elapsed_s": 5, "processes": 1.5},
        {"curve": [], "elapsed_s": 5, "processes": 1, "identity": ["--precision"]},
        {"curve": [], "elapsed_s": 5, "processes": 1, "steady_s": None},
        [1, 2],
    ],
)
def test_a_corrupt_state_is_one_line_that_suggests_fresh(tmp_path, doc):
    (tmp_path / "state.json").write_text(json.dumps(doc))
    with pytest.raises(UsageError, match=r"^training state .* is unreadable \(.*\); rerun with --fresh"):
        State(tmp_path / "state.json")


def test_a_state_that_is_not_json_is_one_line_that_names_it_once(tmp_path):
    (tmp_path / "state.json").write_text("{bad")
    with pytest.raises(UsageError) as e:
        State(tmp_path / "state.json")
    assert str(e.value).startswith(f"training state {str(tmp_path / 'state.json')!r} is not valid JSON (line 1")
    assert str(e.value).count("state.json") == 1 and str(e.value).endswith("rerun with --fresh to start over")


def test_a_process_with_no_epoch_left_resumed_from_the_restored_epoch(tmp_path):
    """Killed after its last epoch was saved: the next process trains nothing, and says where it resumed."""
    (tmp_path / "state.json").write_text(json.dumps({"curve": [{"epoch": 1}, {"epoch": 2}], "elapsed_s": 9.0}))
    trainer, plan, state, lines = make(tmp_path, "epochs=2")
    model = Model()
    model._initial_epoch = 2  # as Backup leaves it
    trainer.set_model(model)
    trainer.on_train_begin()  # fit runs no epoch
    assert trainer.first_epoch == 2 and [r["epoch"] for r in state.curve] == [1, 2]
    assert lines == ["[r] resumed from the checkpoint after epoch 2 (9 s already spent)"]


def test_throughput_and_the_stop_are_kept_across_processes(tmp_path):
    now = [0.0]

    def tick():
        now[0] += 2.0

    trainer, plan, state, _ = make(tmp_path, "epochs=2", clock=lambda: now[0])
    fit(trainer, plan, [2.0] * 8, on_step=tick)
    saved = json.loads((tmp_path / "state.json").read_text())
    assert (saved["stopped_by"], saved["steady_steps"], saved["steady_s"], saved["first_step_s"]) == (
        "budget",
        7,
        14.0,
        2.0,
    )
    again = State(tmp_path / "state.json")
    assert (again.stopped_by, again.steady_steps, again.steady_s, again.first_step_s) == ("budget", 7, 14.0, 2.0)
