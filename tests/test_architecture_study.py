"""Studies: the shared schema and loader, the architecture study's rows, the runner and
its table (a stand-in trainer in the default suite, real training in the slow one)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import ml_collections
import pytest

import kimnet.models
from kimnet import experiment
from kimnet.studies import report, runner, study

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "architecture_study.py")
FAMILIES = {"alexnet", "vgg", "googlenet", "resnet", "densenet", "senet", "mobilenet"}


def test_config_covers_every_family_with_one_budget(tmp_path):
    full, quick = study.load(CONFIG), study.load(f"{CONFIG}:quick")
    names = [row.overrides["model.name"] for row in full.rows]
    assert {kimnet.models.get(name).family for name in names} == FAMILIES
    assert {"mobilenet", "mobilenetv2", "mobilenetv3_small"} <= set(names)
    # The quick variant: the same models less the deeper variants, two seeds, not three.
    assert [r.name for r in quick.rows] == [r.name for r in full.rows][: len(quick.rows)]
    deeper = {"vgg16", "resnet50", "densenet169"}
    assert deeper <= set(names) and not deeper & {r.label for r in quick.rows}
    assert full.seeds == (0, 1, 2) and quick.seeds == (0, 1)
    assert full.base.data.image_size == 32 and full.base.evaluate.max_batches is None
    # The quick variant is the same experiment, shrunk.
    assert quick.base.schedule.steps_per_epoch < full.base.schedule.steps_per_epoch
    for section, field in [("optim", "name"), ("optim", "learning_rate"), ("augment", "ops")]:
        assert quick.base[section][field] == full.base[section][field]
    for row in full.rows:
        config = full.experiment(row.overrides, row.name, 0, tmp_path)
        assert experiment.run_name(config) == f"arch-{config.model.name}"
        assert config.runtime.workdir == str(tmp_path / "runs") and config.runtime.overwrite
        assert config.data.batch_size == 64
        # Only AlexNet, whose ImageNet stem needs 67 px, differs: its small-input stem.
        assert experiment.uses_small_input(config) == (config.model.name == "alexnet")


def _study(rows, **base) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        {
            "name": "s",
            "kind": "architecture",
            "base": base,
            "rows": rows,
            "seeds": [0],
            "source": None,
        }
    )


def _row(name, **overrides):
    return {
        "name": f"arch-{name}",
        "label": name,
        "overrides": {"model": {"name": name}, **overrides},
    }


@pytest.mark.parametrize(
    "rows, message",
    [
        (
            [_row("resnet18"), _row("resnet81")],
            r"row 2 \(arch-resnet81\).*Unknown model 'resnet81'",
        ),
        ([_row("resnet18", schedule={"epoch": 1})], r"row 1 .*Unknown config key 'schedule.epoch'"),
        ([_row("resnet18", runtime={"run_name": "x"})], "is set by the study for every run"),
        ([], "has no rows"),
        ([_row("resnet18"), _row("resnet18")], "must be unique"),
        ([_row("resnet18", data={"image_size": 2})], r"row 1 .*config.data.image_size=2"),
    ],
)
def test_bad_study_rows_are_named_before_anything_runs(rows, message):
    with pytest.raises(ValueError, match=message):
        study.from_config(_study(rows))


def test_select_keeps_study_order_and_rejects_strangers():
    definition = study.from_config(_study([_row("alexnet"), _row("resnet18"), _row("mobilenet")]))
    subset = definition.select(["arch-mobilenet", "arch-alexnet"])
    assert [row.name for row in subset.rows] == ["arch-alexnet", "arch-mobilenet"]
    assert definition.select([]).rows == definition.rows
    with pytest.raises(ValueError, match="Not in the study: arch-vgg19"):
        definition.select(["arch-vgg19"])


def test_table_and_json_from_a_stand_in_trainer(tmp_path, stand_in_trainer):
    definition = study.from_config(
        _study(
            [_row("alexnet", model={"name": "alexnet", "small_input": "true"}), _row("resnet18")],
            schedule={"steps_per_epoch": 7},
            data={"batch_size": 8},
            model={"small_input": "false"},
        )
    )
    seen = []
    records = runner.run(definition, tmp_path, trainer=stand_in_trainer(seen), log=lambda _: None)
    assert [c.runtime.run_name for c in seen] == ["arch-alexnet", "arch-resnet18"]
    assert [experiment.uses_small_input(c) for c in seen] == [True, False]
    # 4x4 positions x (3x3x3x2 conv + 2x10 dense) multiply-adds.
    assert records[0]["macs"] == 16 * (54 + 20) and records[0]["steps"] == 7
    table = (tmp_path / "s" / "results.md").read_text().splitlines()
    assert table[2] == (
        "| alexnet | alexnet | yes | 0.00M | 0.00M | 81.25 | 99.00 | - | - | 234 | 9 | 57 | "
        f"{records[0]['total_seconds']:.0f} |"
    )
    assert table[3].startswith("| resnet18 | resnet | no | ")
    assert "small_input false (per model: alexnet: model.small_input=true)" in table[-1]
    assert "tested on the whole test split" in table[-1]
    payload = json.loads((tmp_path / "s" / "results.json").read_text())
    assert payload["records"] == records and len(payload["rows"]) == 2


def test_seeds_are_aggregated_and_a_failing_row_does_not_stop_the_study(tmp_path, stand_in_trainer):
    config = _study(
        [_row("alexnet", model={"name": "alexnet", "small_input": "true"}), _row("mobilenet")]
    )
    config.seeds = [0, 1, 2]
    definition = study.from_config(config)
    seen = []
    good = stand_in_trainer(seen, top1=0.5)

    def trainer(config, splits=None):
        if config.model.name == "mobilenet":
            raise MemoryError("no memory for mobilenet")
        return good(config, splits)

    records = runner.run(definition, tmp_path, trainer=trainer, log=lambda _: None)
    assert len(records) == 6
    summaries = report.summarise(records)
    assert summaries[0]["test_top1"] == pytest.approx(0.51)  # 0.50, 0.51, 0.52
    assert summaries[0]["test_top1_std"] == pytest.approx(0.01)
    assert summaries[1]["error"] == "MemoryError('no memory for mobilenet')"
    table = (tmp_path / "s" / "results.md").read_text()
    assert "51.00 ± 1.00" in table
    assert "| mobilenet | mobilenet | failed: MemoryError('no memory for mobilenet')" in table

    # Rerunning one row keeps the other's records (same definition), replacing its own.
    records = runner.run(
        definition, tmp_path, only=["arch-mobilenet"], trainer=good, log=lambda _: None
    )
    assert [r["row"] for r in records] == ["arch-alexnet"] * 3 + ["arch-mobilenet"] * 3
    assert all(r["error"] is None for r in records)
    # Another definition in the same place is refused unless overwritten.
    changed = study.from_config(
        _study([_row("alexnet", model={"name": "alexnet", "small_input": "true"})])
    )
    with pytest.raises(ValueError, match="another definition"):
        runner.run(changed, tmp_path, trainer=good, log=lambda _: None)
    assert len(runner.run(changed, tmp_path, overwrite=True, trainer=good, log=lambda _: None)) == 1


@pytest.mark.slow  # 2-6 minutes on two shared CPU cores: graph building dominates
def test_quick_study_trains_two_models_and_writes_the_table(tmp_path):
    config = study.load(f"{CONFIG}:quick")
    definition = dataclasses.replace(config, seeds=(0,))
    logged = []
    records = runner.run(
        definition, tmp_path, only=["arch-resnet18", "arch-mobilenet"], log=logged.append
    )
    out = tmp_path / "architecture-study"
    assert [r["model"] for r in records] == ["resnet18", "mobilenet"]
    for record in records:
        assert record["error"] is None
        assert record["image_size"] == 32 and record["small_input"] is False
        assert 0 <= record["test_top1"] <= record["test_top5"] <= 1
        assert record["parameters"] > 100_000 and record["macs"] > 1_000_000
        assert record["steady_images_per_second"] > 0 and record["first_step_seconds"] > 0
        assert record["steps"] == definition.base.schedule.steps_per_epoch
        assert Path(record["run_dir"]).parent == out / "runs"
        assert (Path(record["export_dir"]) / "saved_model.pb").is_file()
    resnet, small = records
    assert resnet["parameters"] == 11_191_242 and 36e6 < resnet["macs"] < 38e6
    assert small["parameters"] < resnet["parameters"] and small["macs"] < resnet["macs"]
    table = (out / "results.md").read_text().splitlines()
    assert table[2].startswith("| resnet18 | resnet | no | 11.19M | 37.")
    assert table[3].startswith("| mobilenet | mobilenet | no | 3.24M | 11.60M |")
    assert any("mobilenet: test top-1" in line for line in logged)
    for record in records:  # the exported SavedModel's speed
        assert record["latency_ms"] > 0 and record["images_per_second"] > 0
        assert 0 <= record["train_top1"] <= 1
