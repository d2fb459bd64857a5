"""Studies' shared reporting: seeds aggregated, Welch's test, the mark, plots, HParams;
the augmentation and regularisation study configs and their report (stand-in trainer)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import ml_collections
import pytest
from PIL import Image

from kimnet.data import augment
from kimnet.errors import TrainingStopped
from kimnet.studies import report, runner, stats, study

ROOT = Path(__file__).resolve().parents[1]
AUGMENTATION = str(ROOT / "configs" / "augmentation_study.py")
REGULARIZATION = str(ROOT / "configs" / "regularization_study.py")
MODERN_OPS = ("randaugment", "mixup", "cutmix", "erasing")


def _t4_two_sided(t: float) -> float:
    """Student's t with 4 degrees of freedom in closed form: P(|T| > t)."""
    u = t / math.sqrt(4 + t * t)
    return 1 - (3 * u - u**3) / 2


@pytest.mark.parametrize("t", [0.3, 1.0, 2.5, 8.0])
def test_student_t_matches_closed_forms(t):
    assert stats.student_t_two_sided(t, 1) == pytest.approx(1 - 2 * math.atan(t) / math.pi)
    assert stats.student_t_two_sided(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t))
    assert stats.student_t_two_sided(t, 4) == pytest.approx(_t4_two_sided(t))


@pytest.mark.parametrize("t, df", [(12.7062047, 1), (2.7764451, 4), (2.2281389, 10)])
def test_critical_values_of_t_tables_give_p_of_five_percent(t, df):
    assert stats.student_t_two_sided(t, df) == pytest.approx(0.05, abs=1e-7)


def test_welch_on_known_numbers():
    # Means 0.81 and 0.85, both std 0.01 over 3 seeds: t = -0.04 / sqrt(2e-4 / 3), df = 4.
    result = stats.welch([0.80, 0.82, 0.81], [0.85, 0.86, 0.84])
    assert result.t == pytest.approx(-0.04 / math.sqrt(2e-4 / 3))
    assert result.df == pytest.approx(4)
    assert result.p == pytest.approx(_t4_two_sided(abs(result.t)))
    assert result.p == pytest.approx(0.00805, abs=1e-5) and result.differs
    # Unequal spreads and sizes: Welch-Satterthwaite degrees of freedom by hand.
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 6.0]
    va, vb = (5 / 3) / 4, 8 / 2
    result = stats.welch(a, b)
    assert result.t == pytest.approx((2.5 - 4) / math.sqrt(va + vb))
    assert result.df == pytest.approx((va + vb) ** 2 / (va**2 / 3 + vb**2 / 1))
    assert not result.differs
    assert stats.welch([0.5], [0.4, 0.6]) is None
    assert stats.welch([0.5, 0.5], [0.5, 0.5]).p == 1.0
    assert stats.welch([0.5, 0.5], [0.6, 0.6]).differs


def _records(row, values, group=None, key="test_top1", **extra):
    return [
        {"row": row, "label": row, "group": group, "seed": seed, "error": None, key: value, **extra}
        for seed, value in enumerate(values)
    ]


def test_summaries_mean_std_and_the_mark_against_the_baseline():
    records = [
        *_records("close", [0.81, 0.80, 0.83]),
        *_records("base", [0.80, 0.82, 0.81]),
        *_records("better", [0.85, 0.86, 0.84]),
        *_records("failed", [None, None]),
    ]
    records[-1]["error"] = records[-2]["error"] = "MemoryError()"
    summaries = report.summarise(records, order=["base", "close", "better", "failed"])
    base, close, better, failed = summaries
    assert [s["row"] for s in summaries] == ["base", "close", "better", "failed"]
    assert base["test_top1"] == pytest.approx(0.81) and base["test_top1_std"] == pytest.approx(0.01)
    assert better["test_top1"] == pytest.approx(0.85)
    assert better["test_top1_p"] == pytest.approx(0.00805, abs=1e-5)
    assert better["test_top1_differs"] is True and close["test_top1_differs"] is False
    assert "test_top1_differs" not in base and base["baseline"] == "base"
    assert failed["seeds"] == [] and failed.get("test_top1") is None
    assert report.cell(base, "test_top1") == "81.0 ± 1.0"
    assert report.cell(better, "test_top1") == "85.0 ± 1.0 *"
    assert report.cell(better, "test_top1", digits=2) == "85.00 ± 1.00 *"
    assert report.cell(failed, "test_top1") == "-"


def test_a_row_with_some_failed_seeds_says_which_and_why():
    records = _records("base", [0.80, 0.82, 0.81]) + _records("plain", [None, None, 0.54])
    records[3]["error"] = records[4]["error"] = "TrainingDiverged('Training diverged: nan')"
    base, plain = report.summarise(records)
    assert plain["seeds"] == [2] and plain["failed_seeds"] == [0, 1]
    assert plain["test_top1"] == pytest.approx(0.54)
    assert report.label_with_failures(plain) == (
        "plain (seed 0, 1 failed: TrainingDiverged; mean of the other seeds)"
    )
    assert report.label_with_failures(base) == "base"


def test_each_group_is_compared_with_its_own_first_row():
    records = [
        *_records("a0", [0.5, 0.52], group=1),
        *_records("a1", [0.9, 0.91], group=1),
        *_records("b0", [0.9, 0.92], group=2),
        *_records("b1", [0.9, 0.91], group=2),
    ]
    summaries = report.summarise(records)
    assert [s["baseline"] for s in summaries] == ["a0", "a0", "b0", "b0"]
    assert summaries[1]["test_top1_differs"] and not summaries[3]["test_top1_differs"]
    single = report.summarise(_records("x", [0.5]) + _records("y", [0.9]))
    assert single[1]["test_top1_differs"] is None
    assert report.cell(single[1], "test_top1") == "90.0"


def _study_config(kind="regularization", rows=None, seeds=(0, 1, 2)) -> ml_collections.ConfigDict:
    rows = rows or [
        {"name": "base", "label": "baseline", "overrides": {}},
        {"name": "drop", "label": "dropout 0.5", "overrides": {"model": {"dropout": 0.5}}},
    ]
    return ml_collections.ConfigDict(
        {
            "name": "s",
            "kind": kind,
            "base": {"model": {"name": "vgg11_bn", "small_input": "false"}},
            "rows": rows,
            "seeds": list(seeds),
            "source": None,
        }
    )


def _hparams_events(directory: Path):
    from tensorboard.backend.event_processing import event_accumulator

    accumulator = event_accumulator.EventAccumulator(str(directory))
    accumulator.Reload()
    return accumulator


def test_ablation_report_plot_and_hparams_from_a_stand_in_trainer(tmp_path, stand_in_trainer):
    definition = study.from_config(_study_config())
    seen = []
    good = stand_in_trainer(seen, top1=0.5, train_top1=0.99)

    def trainer(config, splits=None):  # dropout: test top-1 0.60, 0.61, 0.62
        if config.model.dropout:
            return stand_in_trainer(seen, top1=0.6, train_top1=0.9)(config, splits)
        return good(config, splits)

    records = runner.run(definition, tmp_path, trainer=trainer, log=lambda _: None)
    assert [r["row"] for r in records] == ["base"] * 3 + ["drop"] * 3
    out = tmp_path / "s"
    table = (out / "results.md").read_text()
    assert "| baseline | (baseline) | 99.0 ± 0.0 | 51.0 ± 1.0 | 48.0 ± 1.0 | 99.0 ± 0.0 |" in table
    dropout = "| dropout 0.5 | model.dropout=0.5 | 90.0 ± 0.0 * | 61.0 ± 1.0 * | 29.0 ± 1.0 * |"
    assert dropout in table
    assert "Welch's t-test over seeds, two-sided, p < 0.05" in table
    assert "on the first" not in table and "Seeds 0, 1, 2" in table
    with Image.open(out / "train_vs_test.png") as image:
        assert image.format == "PNG" and image.size[0] > 400
    payload = json.loads((out / "results.json").read_text())
    assert payload["rows"][1]["test_top1_differs"] is True
    assert payload["rows"][1]["gap"] == pytest.approx(0.29)

    # The HParams dashboard: its config, then one run per record with its settings.
    from tensorboard.plugins.hparams import metadata
    from tensorboard.util import tensor_util

    top = _hparams_events(out / "hparams")
    assert metadata.EXPERIMENT_TAG in top.PluginTagToContent(metadata.PLUGIN_NAME)
    experiment = metadata.parse_experiment_plugin_data(
        top.SummaryMetadata(metadata.EXPERIMENT_TAG).plugin_data.content
    )
    assert {h.name for h in experiment.hparam_infos} == {"row", "seed", "model.dropout"}
    assert {m.name.tag for m in experiment.metric_infos} >= {"test_top1", "train_top1", "gap"}
    trials = sorted(p.name for p in (out / "hparams").iterdir() if p.is_dir())
    assert trials == [f"{row}-seed{seed}" for row in ("base", "drop") for seed in (0, 1, 2)]
    run = _hparams_events(out / "hparams" / "drop-seed1")
    start = metadata.parse_session_start_info_plugin_data(
        run.SummaryMetadata(metadata.SESSION_START_INFO_TAG).plugin_data.content
    )
    assert start.hparams["model.dropout"].number_value == 0.5
    assert start.hparams["row"].string_value == "drop"
    value = tensor_util.make_ndarray(run.Tensors("test_top1")[0].tensor_proto)
    assert float(value) == pytest.approx(0.61)

    # A finished study is not retrained by accident; a rerun of one row with --overwrite
    # retrains it and keeps the other; another definition is refused unless overwritten.
    for only in (None, ["drop"]):
        with pytest.raises(ValueError, match="is finished for these rows"):
            runner.run(definition, tmp_path, only=only, trainer=good, log=lambda _: None)
    again = runner.run(
        definition, tmp_path, only=["drop"], overwrite=True, trainer=good, log=lambda _: None
    )
    assert [r["row"] for r in again] == ["base"] * 3 + ["drop"] * 3
    assert [r["test_top1"] for r in again[3:]] == pytest.approx([0.5, 0.51, 0.52])
    changed = study.from_config(_study_config(seeds=(0, 1)))
    with pytest.raises(ValueError, match="another definition"):
        runner.run(changed, tmp_path, trainer=good, log=lambda _: None)


def test_architecture_and_transfer_reports_plot_too(tmp_path, stand_in_trainer):
    rows = [
        {"name": f"arch-{m}", "label": m, "overrides": {"model": {"name": m}}}
        for m in ("resnet18", "mobilenet")
    ]
    definition = study.from_config(_study_config("architecture", rows, seeds=(0, 1)))
    runner.run(definition, tmp_path, trainer=stand_in_trainer([]), log=lambda _: None)
    with Image.open(tmp_path / "s" / "top1.png") as image:
        assert image.format == "PNG"
    assert (tmp_path / "s" / "hparams").is_dir()


def _ops(row) -> str:
    return row["overrides"]["augment"]["ops"]


def _names(ops: str) -> list[str]:
    return [op.split("=")[0] for op in ops.split(",")]


def _settings(spec: str) -> study.Study:
    """The study of ``spec`` without the rows whose ops kimnet does not have yet."""
    path, _, arg = spec.partition(":")
    config = study.load_module(path).get_config(arg or None)
    config.rows = [
        row
        for row in config.rows
        if _ops(row) == "none" or set(_names(_ops(row))) <= set(augment.OPS)
    ]
    return study.from_config(config)


def test_augmentation_study_rows_and_budget():
    path = AUGMENTATION
    config = study.load_module(path).get_config()
    ops = [_ops(row) for row in config.rows]
    article = ["flip_h", "crop", "rotate", "zoom", "translate", "noise"]
    assert ops[:8] == ["none", *article, ",".join(article)]
    assert ops[8:] == [
        "flip_h,crop",
        "flip_h,crop,randaugment=2:9",
        "flip_h,crop,mixup=0.2",
        "flip_h,crop,cutmix=1.0",
        "flip_h,crop,erasing=0.25",
    ]
    assert config.seeds == [0, 1, 2] and config.kind == "augmentation"
    checked = _settings(path)  # every row whose ops exist validates
    assert checked.base.data.train_examples == 1000 and checked.base.augment.ops == "none"
    quick = _settings(f"{path}:quick")
    assert quick.seeds == (0, 1) and len(quick.rows) == len(checked.rows)
    assert [r.group for r in quick.rows][:2] == ["article", "article"]


def test_the_long_augmentation_variant_triples_the_epochs_of_two_rows():
    long, full = study.load(f"{AUGMENTATION}:long"), study.load(AUGMENTATION)
    assert [r.name for r in long.rows] == ["aug-none", "aug-flip-crop"]
    assert {r.group for r in long.rows} == {"long"}  # flip_h,crop is compared with none
    assert long.base.schedule.epochs == 3 * full.base.schedule.epochs
    assert long.seeds == full.seeds and long.name == "augmentation-study-long"


@pytest.mark.skipif(
    not set(MODERN_OPS) <= set(augment.OPS), reason="randaugment/mixup/cutmix/erasing not merged"
)
def test_augmentation_study_loads_with_every_row():
    assert len(study.load(AUGMENTATION).rows) == 13


def test_an_unknown_op_in_a_study_row_is_named_with_its_row_and_field():
    rows = [
        {"name": "none", "label": "none", "overrides": {"augment": {"ops": "none"}}},
        {"name": "bad", "label": "bad", "overrides": {"augment": {"ops": "flip_h,fold"}}},
    ]
    with pytest.raises(ValueError, match=r"Study row 2 \(bad\): config.augment.ops='flip_h,fold'"):
        study.from_config(_study_config("augmentation", rows))


def test_regularization_study_varies_one_setting_per_row_from_an_unregularised_baseline(tmp_path):
    full, quick = study.load(REGULARIZATION), study.load(f"{REGULARIZATION}:quick")
    assert full.seeds == (0, 1, 2) and quick.seeds == (0, 1)
    assert [r.name for r in quick.rows] == [r.name for r in full.rows]
    b = full.base
    assert (b.model.name, b.model.dropout, b.optim.weight_decay, b.optim.label_smoothing) == (
        "vgg11_bn",
        0.0,
        0.0,
        0.0,
    )
    assert b.augment.ops == "none" and b.data.train_examples == 1000
    assert full.rows[0].overrides == {}
    # One setting per row, except plain VGG at the rate it trains at (batch norm and the
    # rate it allows go together).
    assert all(len(r.overrides) == 1 for r in full.rows[1:] if r.name != "reg-no-batchnorm-lr0.01")
    plain = next(r for r in full.rows if r.name == "reg-no-batchnorm-lr0.01")
    assert plain.overrides == {"model.name": "vgg11", "optim.learning_rate": 0.01}
    assert b.model.args == "width=0.25"
    settings = {key: value for row in full.rows for key, value in row.overrides.items()}
    assert {
        (k, v) for row in full.rows for k, v in row.overrides.items() if k == "model.dropout"
    } == {("model.dropout", 0.2), ("model.dropout", 0.5)}
    assert settings["model.name"] == "vgg11" and settings["optim.label_smoothing"] == 0.1
    decays = [r.overrides["optim.weight_decay"] for r in full.rows if "-wd-" in r.name]
    assert decays == [5e-4, 5e-3]
    # Both studies share the one budget.
    assert _settings(AUGMENTATION).base.to_dict() == b.to_dict()
    assert dataclasses.replace(quick, rows=()).base.schedule.steps_per_epoch == 2


@pytest.mark.slow  # four real VGG runs of two steps: 2-4 min idle, much longer under load
def test_quick_regularization_study_trains_and_writes_every_output(tmp_path):
    definition = study.load(f"{REGULARIZATION}:quick")
    only = ["reg-baseline", "reg-no-batchnorm"]
    records = runner.run(definition, tmp_path, only=only, log=lambda _: None)
    assert [(r["row"], r["seed"]) for r in records] == [(n, s) for n in only for s in (0, 1)]
    for record in records:
        assert record["error"] is None and 0 <= record["train_top1"] <= 1
        assert record["gap"] == pytest.approx(record["train_top1"] - record["test_top1"])
    out = tmp_path / "regularization-study-quick"
    table = (out / "results.md").read_text()
    assert "| baseline (no regularisation) | (baseline) |" in table
    assert "| without batch norm (vgg11) | model.name=vgg11 |" in table
    with Image.open(out / "train_vs_test.png") as image:
        assert image.format == "PNG"
    trials = sorted(p.name for p in (out / "hparams").iterdir() if p.is_dir())
    assert trials == [f"{n}-seed{s}" for n in only for s in (0, 1)]


def test_a_stopped_study_stops_and_its_rerun_continues(tmp_path, stand_in_trainer):
    definition = study.from_config(_study_config(seeds=(0, 1)))
    good = stand_in_trainer([])
    calls = []

    def stopped_at_the_third_run(config, splits=None):
        calls.append((config.runtime.run_name, config.runtime.seed))
        if len(calls) == 3:
            raise TrainingStopped("Stopped by SIGTERM; run the same command again.", 15)
        return good(config, splits)

    with pytest.raises(TrainingStopped):
        runner.run(definition, tmp_path, trainer=stopped_at_the_third_run, log=lambda _: None)
    assert len(calls) == 3  # not one run more after the stop
    kept = json.loads((tmp_path / "s" / "results.json").read_text())["records"]
    assert [(r["row"], r["seed"]) for r in kept] == [("base", 0), ("base", 1)]

    trained = []

    def trainer(config, splits=None):
        trained.append(config.runtime.run_name)
        return good(config, splits)

    records = runner.run(definition, tmp_path, trainer=trainer, log=lambda _: None)
    assert trained == ["drop-seed0", "drop-seed1"]  # the finished runs are not redone
    assert [(r["row"], r["seed"]) for r in records] == [
        ("base", 0),
        ("base", 1),
        ("drop", 0),
        ("drop", 1),
    ]


def test_a_cut_results_file_is_another_study_not_a_traceback(tmp_path, stand_in_trainer):
    definition = study.from_config(_study_config(seeds=(0,)))
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "results.json").write_text('{"study": "s", "defin')  # killed mid-write
    with pytest.raises(ValueError, match="another definition"):
        runner.run(definition, tmp_path, trainer=stand_in_trainer([]), log=lambda _: None)
    records = runner.run(
        definition, tmp_path, overwrite=True, trainer=stand_in_trainer([]), log=lambda _: None
    )
    assert len(records) == 2
    assert json.loads((tmp_path / "s" / "results.json").read_text())["records"] == records


def test_a_study_with_failed_runs_says_so_in_one_line_and_exits_1(tmp_path, monkeypatch, capsys):
    from kimnet.commands import study as study_command
    from kimnet.studies import runner

    def fake_run(definition, workdir, only=None, overwrite=False):
        out = runner.study_dir(definition, workdir)
        out.mkdir(parents=True)
        (out / "results.md").write_text("# table\n")
        good = {"row": "reg-baseline", "seed": 0, "error": None}
        return [good, {**good, "seed": 1, "error": "TrainingDiverged('nan')"}]

    monkeypatch.setattr(runner, "run", fake_run)
    argv = ["study", f"--study={REGULARIZATION}:quick", f"--workdir={tmp_path}"]
    with pytest.raises(SystemExit) as stopped:
        study_command.main(argv)
    assert stopped.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "1 of 2 runs failed (results.md says which and why); the same command retrains only those."
    )
