"""Every recipe parses, builds its model and input pipeline; one trains a few steps."""

import csv
import subprocess
from pathlib import Path

import pytest

from kimnet import data, experiment
from kimnet.training import build_model, train

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "configs" / "recipes").glob("fmnist_*.py"))


def test_there_is_a_recipe_per_family_of_the_article():
    families = {experiment.load(str(path)).model.name for path in RECIPES}
    for needed in ("alexnet", "googlenet", "resnet18", "mobilenet", "mobilenetv2"):
        assert needed in families
    assert any(name.startswith("vgg") for name in families)
    assert any(name.startswith("densenet") for name in families)
    assert any(name.startswith("se_") for name in families)


@pytest.mark.parametrize("path", RECIPES, ids=lambda path: path.stem)
def test_a_recipe_parses_and_builds_its_model_and_pipeline(path, fmnist):
    config = experiment.load(str(path))
    assert experiment.run_name(config) == path.stem  # runs/<recipe>, not <dataset>-<model>
    assert config.schedule.epochs > 3  # a full schedule, longer than the schema default
    model, _ = build_model(config, fmnist.info)
    assert model.output_shape[-1] == fmnist.info.num_classes
    augmenter = data.augment.build(config.augment.ops, config.data.image_size, seed=0)
    batches = data.make(
        fmnist,
        image_size=config.data.image_size,
        batch_size=4,
        normalization="tf",
        augmenter=augmenter,
    )
    images, _ = next(iter(batches["train"]))
    assert tuple(images.shape[1:3]) == (config.data.image_size,) * 2
    model.predict_on_batch(images)


def test_quick_variant_of_a_recipe_trains(tmp_path, fmnist):
    config = experiment.load(str(ROOT / "configs" / "recipes" / "fmnist_mobilenetv2.py:quick"))
    experiment.override(
        config,
        {
            "schedule.epochs": 1,
            "schedule.steps_per_epoch": 3,
            "evaluate.max_batches": 2,
            "evaluate.bn_recalibration_batches": 2,
            "data.batch_size": 16,
            "runtime.workdir": str(tmp_path / "runs"),
            "export.enabled": False,
        },
    )
    experiment.override(config, {"schedule.epochs": 2})
    assert config.evaluate.test_every_epoch  # every recipe records its test curve
    result = train(config, splits=fmnist)
    assert result.metrics.steps_per_epoch == 3
    assert 0.0 <= result.metrics.test_top1 <= 1.0
    run_dir = tmp_path / "runs" / "fmnist_mobilenetv2"
    assert (run_dir / "metrics.json").is_file() and (run_dir / "curves.png").is_file()
    with (run_dir / "history.csv").open(newline="") as handle:
        epochs = list(csv.DictReader(handle))
    assert len(epochs) == 2
    elapsed = [float(row["elapsed_seconds"]) for row in epochs]
    assert 0 < elapsed[0] < elapsed[1]
    # The last epoch's test pass and the final one see the same weights and statistics.
    assert float(epochs[-1]["test_top1"]) == pytest.approx(result.metrics.test_top1, abs=1e-4)


def test_make_train_recipe_runs_the_recipe_file():
    command = ["make", "-n", "train", "RECIPE=fmnist_resnet18", "QUICK=1"]
    dry_run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    assert "--config=configs/recipes/fmnist_resnet18.py:quick" in dry_run.stdout
