"""The experiment config: one schema, dotted overrides, one-line errors, reruns from a run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from absl import flags
from ml_collections import config_flags

from kimnet import experiment
from kimnet.training import train

ROOT = Path(__file__).resolve().parents[1]
TRAIN_CONFIG = ROOT / "configs" / "train.py"


def _parse(*overrides: str, config: Path = TRAIN_CONFIG):
    """The experiment the real config flag yields for ``overrides`` (a fresh flag set)."""
    argv = ["prog", f"--config={config}", *overrides]
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", str(config), flag_values=values, sys_argv=argv)
    values(argv)
    return values.config


def _other_value(field: experiment.Field):
    """A value of the field's type that differs from its default."""
    if field.value_type is bool:
        return not field.default
    candidates = {
        int: [3, 64, 1],
        float: [0.25, 0.5, 2.0],
        str: ["true", "false", "sgd", "mixed_bfloat16", "mirrored", "bar", "x", "2,4"],
    }[field.value_type]
    for value in candidates:
        if value != field.default and (field.check is None or field.check(value) is None):
            return value
    raise AssertionError(f"no alternative value for {field}")


@pytest.mark.parametrize("path", [path for path, _ in experiment.fields()])
def test_every_field_can_be_overridden_by_its_dotted_path(path):
    field = dict(experiment.fields())[path]
    value = _other_value(field)
    text = str(value).lower() if isinstance(value, bool) else str(value)
    config = _parse(f"--config.{path}={text}")
    section, name = path.split(".")
    assert config[section][name] == value


def test_defaults_come_from_the_schema_and_validate():
    config = experiment.validate(_parse())
    assert config.model.name == "mobilenetv2" and config.data.name == "fashion_mnist"
    assert config.schedule.steps_per_epoch is None and config.export.enabled
    assert experiment.run_name(config) == "fmnist-mobilenetv2"
    quick = _parse(config=Path(f"{TRAIN_CONFIG}:quick"))
    assert quick.schedule.steps_per_epoch == 20 and quick.evaluate.max_batches == 5


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"model": {"name": "resnet5"}}, r"config.model.name='resnet5'.*resnet50"),
        ({"modle": {"name": "x"}}, r"Unknown config key 'modle.name'.*'model.name'"),
        ({"data": {"batch_size": 0}}, r"config.data.batch_size=0 .*>= 1"),
        ({"data": {"image_size": 4}}, r"config.data.image_size=4 .*\[8, 1024\]"),
        ({"schedule": {"epochs": "3"}}, r"config.schedule.epochs='3': expected int"),
        ({"augment": {"ops": "flip_h,spin"}}, r"config.augment.ops=.*Unknown augmentation 'spin'"),
        ({"optim": {"name": "adagrad"}}, r"config.optim.name='adagrad'.*one of adamw, sgd"),
        ({"runtime": {"run_name": "../escape"}}, r"config.runtime.run_name='../escape'"),
        ({"data": {"image_size": 24}, "model": {"small_input": "false"}}, "below mobilenetv2"),
        ({"transfer": {"freeze": "bn", "schedule": "head:1"}}, "freeze and config.transfer.sch"),
        ({"transfer": {"weights": "imagenet", "init_from": "runs/x"}}, "one source"),
        ({"model": {"args": "alpha"}}, r"config.model.args='alpha'.*key=value"),
        ({"model": {"args": "nonsense=1"}}, r"takes no argument 'nonsense'.*Its arguments: alpha"),
        ({"model": {"name": "resnet18", "args": "depth=50"}}, r"no argument 'depth'"),
        ({"model": {"args": "classes=5"}}, r"no argument 'classes'"),
        ({"runtime": {"profile_steps": "5"}}, r"profile_steps='5'.*FIRST,LAST"),
        ({"runtime": {"profile_steps": "9,3"}}, r"profile_steps='9,3'.*FIRST <= LAST"),
        ({"runtime": {"profile_steps": "0,3"}}, r"profile_steps='0,3'.*0 < FIRST"),
        ({"runtime": {"profile_steps": "1,400"}}, r"profile_steps='1,400'.*at most 50 steps"),
    ],
)
def test_bad_values_name_the_dotted_path(changes, message):
    with pytest.raises(ValueError, match=message):
        experiment.validate(changes)


def test_model_names_take_the_registry_spelling():
    config = experiment.validate({"model": {"name": "MobileNetV2"}})
    assert config.model.name == "mobilenetv2"
    assert experiment.run_name(config) == "fmnist-mobilenetv2"


def test_model_args_parse_values_and_keep_lists_whole():
    config = experiment.base()  # parsing only: validate() also checks the builder takes them
    config.model.args = "alpha=0.5,small_input=True,k=[1, 2],v=se"
    assert experiment.model_args(config) == {
        "alpha": 0.5,
        "small_input": True,
        "k": [1, 2],
        "v": "se",
    }


def _program(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "pipelines" / "train.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config.optim.lerning_rate=0.1"], "Did you mean 'optim.learning_rate'?"),
        (["--config.schedule.epochs=abc"], "config.schedule.epochs"),
        (["--config=configs/nothing.py"], "does not exist"),
        (["--config=configs/recipes/fmnist_vgg.py"], "Known in configs/recipes/: fmnist_alexnet"),
        (["--config.model.name=vgg17"], "config.model.name='vgg17'"),
        (["--config.data.batch_size=-4"], "config.data.batch_size=-4"),
        (["--config.augment.ops=blur"], "Unknown augmentation 'blur'"),
        (["--config.data.name=folder:/no/such/dir"], "does not exist"),
    ],
)
def test_program_refuses_bad_config_with_one_line_and_status_2(args, message, tmp_path):
    result = _program(
        *args, f"--config.runtime.workdir={tmp_path}/runs", f"--config.export.dir={tmp_path}/saved"
    )
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "saved").exists()
    # Nothing but kimnet's line: no TensorFlow C++ log (I0000 ..., E0000 ..., W1130 ...).
    assert result.stderr.strip().splitlines() == errors, result.stderr[-2000:]


def test_config_file_without_get_config_is_refused(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("X = 1\n")
    with pytest.raises(ValueError, match="does not define get_config"):
        experiment.load(str(bad))


def test_help_lists_the_fields_first():
    result = _program("-h")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("usage:") and len(lines) < 80
    assert any("optim.learning_rate" in line for line in lines)


def test_make_variables_map_to_overrides():
    def dry_run(*variables: str) -> str:
        make = ["make", "-n", "--no-print-directory", f"PY={sys.executable}", *variables]
        return subprocess.run(make, capture_output=True, text=True, cwd=ROOT, check=True).stdout

    train = dry_run(
        "train",
        "MODEL=resnet18",
        "DATASET=folder:/x",
        "EPOCHS=2",
        "BATCH=8",
        "AUGMENT=none",
        "RUN=r1",
        "QUICK=1",
        "ARGS=--config.optim.name=sgd",
    )
    for part in (
        "--config=configs/train.py:quick",
        "--config.model.name=resnet18",
        "--config.data.name=folder:/x",
        "--config.schedule.epochs=2",
        "--config.data.batch_size=8",
        "--config.augment.ops=none",
        "--config.runtime.run_name=r1",
        "--config.optim.name=sgd",
    ):
        assert part in train
    finetune = dry_run("finetune", "FROM=runs/a", "FREEZE=backbone", "NEW_HEAD=1")
    for part in (
        "--config.transfer.init_from=runs/a",
        "--config.transfer.freeze=backbone",
        "--config.transfer.new_head=true",
    ):
        assert part in finetune
    assert "--config.transfer.weights=imagenet" in dry_run("finetune", "FROM=imagenet")
    assert "--config=runs/a" in dry_run("train", "CONFIG=runs/a")


def _tiny(root: Path, name: str) -> dict:
    return {
        "model": {"args": "alpha=0.35"},
        "data": {"batch_size": 16},
        "schedule": {"epochs": 1, "steps_per_epoch": 3},
        "evaluate": {"bn_recalibration_batches": 2, "max_batches": 2},
        # Augmentation draws from one random stream in a parallel map, in no fixed order.
        "augment": {"ops": "none"},
        "export": {"enabled": False},
        "runtime": {"workdir": str(root), "run_name": name, "seed": 3},
    }


@pytest.mark.slow  # two training runs
def test_a_run_reruns_from_its_config_with_the_same_metrics(tmp_path, fmnist):
    first = train(experiment.validate(_tiny(tmp_path, "first")), splits=fmnist)
    saved = experiment.load(str(first.run_dir))  # the run directory's config.json
    assert saved.to_dict() == json.loads((first.run_dir / "config.json").read_text())
    again = experiment.with_overrides(saved, {"runtime.run_name": "again"})
    second = train(again, splits=fmnist)
    for key in ("test_top1", "test_top5", "validation_top1"):
        assert getattr(second.metrics, key) == getattr(first.metrics, key), key


def test_the_config_reference_is_up_to_date():
    documented = (ROOT / "docs" / "config.md").read_text()
    assert documented == experiment.markdown_reference(), (
        "docs/config.md is stale: run python -m kimnet.experiment > docs/config.md"
    )
