"""The architecture study: config loading and checks, and a real quick run of two models."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import pytest

from kimnet.studies import architecture
from kimnet.training import RunResult

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "architecture_study.py"
FAMILIES = {"alexnet", "vgg", "googlenet", "resnet", "densenet", "senet", "mobilenet"}


def test_config_covers_every_family_with_one_budget():
    config = architecture.load_config(CONFIG)
    quick = architecture.load_config(CONFIG, quick=True)
    specs = [architecture.models.get(name) for name in config.models]
    assert {spec.family for spec in specs} == FAMILIES
    assert {"mobilenet", "mobilenetv2", "mobilenetv3_small"} <= set(config.models)
    assert quick.models == config.models
    assert config.budget["image_size"] == 32 and config.budget["epochs"] >= 1
    assert not config.budget.get("quick")
    # The quick variant is the same experiment, shrunk.
    assert quick.budget["quick"] is True
    assert quick.budget["steps_per_epoch"] < config.budget["steps_per_epoch"]
    for key in ("optimizer", "learning_rate", "image_size", "augment", "dataset"):
        assert quick.budget[key] == config.budget[key]
    for name in config.models:
        run = architecture.train_config(config, name, Path("/tmp/w"))
        run.validate()
        assert run.run_name == f"arch-{name}" and run.overwrite
        assert run.workdir == "/tmp/w/runs" and run.export_dir == "/tmp/w/savedmodels"
        assert (run.batch_size, run.steps_per_epoch) == (64, config.budget["steps_per_epoch"])
        # Only AlexNet, whose ImageNet stem needs 67 px, differs: its small-input stem.
        assert run.use_small_input() == (name == "alexnet")


@pytest.mark.parametrize(
    "models, budget, message",
    [
        (("resnet18", "resnet81"), {}, "Unknown model 'resnet81'"),
        (("resnet18",), {"epoch": 1}, "'epoch' is not a TrainConfig field"),
        (("resnet18",), {"run_name": "x"}, "'run_name' is set per model"),
        ((), {}, "names no models"),
        (("resnet18", "resnet18"), {}, "lists a model twice"),
    ],
)
def test_bad_study_configs_are_rejected(models, budget, message):
    with pytest.raises(ValueError, match=message):
        architecture.StudyConfig(models=models, budget=budget).validate()


def test_bad_overrides_are_rejected():
    with pytest.raises(ValueError, match="not in the study: vgg11"):
        architecture.StudyConfig(("resnet18",), {}, {"vgg11": {"dropout": 0.1}}).validate()
    with pytest.raises(ValueError, match="'workdir' is set per model"):
        architecture.StudyConfig(("resnet18",), {}, {"resnet18": {"workdir": "x"}}).validate()


def test_select_keeps_config_order_and_rejects_strangers():
    config = architecture.StudyConfig(
        models=("alexnet", "resnet18", "mobilenet"),
        budget={},
        overrides={"alexnet": {"small_input": "true"}, "resnet18": {"dropout": 0.1}},
    )
    subset = config.select(["mobilenet", "alexnet"])
    assert subset.models == ("alexnet", "mobilenet")
    assert subset.overrides == {"alexnet": {"small_input": "true"}}
    assert config.select([]).models == config.models
    with pytest.raises(ValueError, match="Not in the study: vgg19"):
        config.select(["vgg19"])


@pytest.mark.slow  # 2-6 minutes on two shared CPU cores: graph building dominates
def test_quick_study_trains_two_models_and_writes_the_table(tmp_path):
    config = architecture.load_config(CONFIG, quick=True).select(["resnet18", "mobilenet"])
    logged = []
    rows = architecture.run_study(config, tmp_path, log=logged.append)

    out = tmp_path / "architecture-study"
    assert [row["model"] for row in rows] == ["resnet18", "mobilenet"]
    payload = json.loads((out / "results.json").read_text())
    assert payload["models"] == ["resnet18", "mobilenet"]
    assert payload["budget"] == config.budget
    assert [row["family"] for row in payload["results"]] == ["resnet", "mobilenet"]
    for row in payload["results"]:
        assert row["error"] is None
        assert row["image_size"] == 32 and row["small_input"] is False
        assert 0 <= row["test_top1"] <= row["test_top5"] <= 1
        assert row["parameters"] > 100_000 and row["macs"] > 1_000_000
        assert row["train_images_per_second"] > 0
        assert row["steady_images_per_second"] > 0 and row["first_step_seconds"] > 0
        assert row["steps"] == config.budget["steps_per_epoch"]
        assert Path(row["run_dir"]).name == f"arch-{row['model']}"
        assert Path(row["run_dir"]).parent == out / "runs"
        assert (Path(row["export_dir"]) / "saved_model.pb").is_file()
        assert Path(row["export_dir"]).parent.parent == out / "savedmodels"
    # MobileNet is the smaller and cheaper of the two (ImageNet strides at 32 px).
    resnet, small = rows
    assert resnet["parameters"] == 11_191_242 and 36e6 < resnet["macs"] < 38e6
    assert small["parameters"] < resnet["parameters"] and small["macs"] < resnet["macs"]

    table = (out / "results.md").read_text()
    lines = table.splitlines()
    assert lines[0].startswith("| model | family | small input | parameters | multiply-adds |")
    assert lines[2].startswith("| resnet18 | resnet | no | 11.19M | 37.")
    assert lines[3].startswith("| mobilenet | mobilenet | no | 3.24M | 11.60M |")
    assert f"| {small['test_top1']:.2%} | {small['test_top5']:.2%} |" in lines[3]
    assert "fashion_mnist at 32 px" in table and "quick" in table and "Chance is 10%" in table
    assert any("mobilenet: test top-1" in line for line in logged)

    # Rerunning one model keeps the other's row (same budget), replacing its own.
    def trainer(run):
        raise RuntimeError("rerun failed")

    rows = architecture.run_study(
        config.select(["mobilenet"]), tmp_path, trainer=trainer, log=lambda _: None
    )
    assert rows[0] == resnet and rows[1]["error"] == "RuntimeError('rerun failed')"
    assert [r["model"] for r in json.loads((out / "results.json").read_text())["results"]] == [
        "resnet18",
        "mobilenet",
    ]


def test_a_failing_model_is_reported_and_the_study_goes_on(tmp_path):
    config = architecture.StudyConfig(models=("alexnet", "mobilenet"), budget={"epochs": 1})

    def trainer(run):
        raise MemoryError(f"no memory for {run.model}")

    rows = architecture.run_study(config, tmp_path, trainer=trainer, log=lambda _: None)
    assert [row["model"] for row in rows] == ["alexnet", "mobilenet"]
    assert all("no memory for" in row["error"] for row in rows)
    table = (tmp_path / "architecture-study" / "results.md").read_text()
    assert "| alexnet | alexnet | failed: MemoryError('no memory for alexnet')" in table


def test_table_and_json_from_a_stand_in_trainer(tmp_path):
    """The default-suite check of the table: a tiny real model stands in for training."""
    config = architecture.StudyConfig(
        models=("alexnet", "resnet18"),
        budget={"steps_per_epoch": 7, "batch_size": 8, "small_input": "false"},
        overrides={"alexnet": {"small_input": "true"}},
    )
    seen = []

    def trainer(run):
        seen.append(run)
        inputs = keras.Input((4, 4, 3))
        outputs = keras.layers.Dense(10)(keras.layers.Conv2D(2, 3, padding="same")(inputs))
        metrics = {
            "parameters": 76,
            "image_size": 32,
            "test_top1": 0.8125,
            "test_top5": 0.99,
            "train_images_per_second": 123.4,
            "steady_images_per_second": 234.5,
            "first_step_seconds": 8.9,
            "wall_time_seconds": 56.7,
            "epochs": 1,
            "steps_per_epoch": run.steps_per_epoch,
        }
        run_dir = Path(run.workdir) / run.run_name
        return RunResult(run_dir, run_dir / "1", metrics, keras.Model(inputs, outputs))

    rows = architecture.run_study(config, tmp_path, trainer=trainer, log=lambda _: None)
    assert [r.run_name for r in seen] == ["arch-alexnet", "arch-resnet18"]
    assert [r.use_small_input() for r in seen] == [True, False]
    # 4x4 positions x (3x3x3x2 conv + 2x10 dense) multiply-adds.
    assert rows[0]["macs"] == 16 * (54 + 20) and rows[0]["steps"] == 7
    table = (tmp_path / "architecture-study" / "results.md").read_text().splitlines()
    assert table[2] == (
        "| alexnet | alexnet | yes | 0.00M | 0.00M | 81.25% | 99.00% | 234 | 9 | 57 | "
        f"{rows[0]['total_seconds']:.0f} |"
    )
    assert table[3].startswith("| resnet18 | resnet | no | ")
    assert "small_input false (per model: alexnet: small_input=true)" in table[-1]
    assert "tested on the whole test split" in table[-1]
    payload = json.loads((tmp_path / "architecture-study" / "results.json").read_text())
    assert payload["overrides"] == {"alexnet": {"small_input": "true"}}
    assert payload["results"] == rows
