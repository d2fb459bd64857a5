"""runtime.precision=auto: the policy follows the device, and an explicit policy wins."""

import pytest

from kimnet.training import precision

AMD_FLAGS = "flags\t\t: fpu vme de pse tsc msr avx2 fma\n"
SAPPHIRE_RAPIDS_FLAGS = "flags\t\t: fpu avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"


@pytest.fixture
def devices(monkeypatch):
    """Pretends TensorFlow sees the given GPUs (compute capabilities) and TPUs."""

    def pretend(gpus=(), tpu=False, cpuinfo=AMD_FLAGS):
        fake_gpus = [f"GPU:{i}" for i in range(len(gpus))]
        capability = dict(zip(fake_gpus, gpus, strict=True))
        monkeypatch.setattr(
            precision.tf.config,
            "list_physical_devices",
            lambda kind: fake_gpus if kind == "GPU" else [],
        )
        monkeypatch.setattr(precision, "_compute_capability", capability.get)
        monkeypatch.setattr(
            precision.tf.config, "list_logical_devices", lambda kind: ["TPU:0"] if tpu else []
        )
        monkeypatch.setattr(precision, "cpu_has_amx", lambda: "amx_bf16" in cpuinfo)

    return pretend


def test_an_explicit_policy_is_kept():
    choice = precision.choose("mixed_bfloat16")
    assert choice.policy == "mixed_bfloat16"
    assert "runtime.precision" in str(choice)


@pytest.mark.parametrize(
    ("gpus", "tpu", "cpuinfo", "policy"),
    [
        ([(8, 0)], False, AMD_FLAGS, "mixed_float16"),
        ([(7, 0), (9, 0)], False, AMD_FLAGS, "mixed_float16"),
        ([(6, 1)], False, AMD_FLAGS, "float32"),  # Pascal: no tensor cores
        ([(8, 0), (6, 1)], False, AMD_FLAGS, "float32"),  # the slowest GPU decides
        ([], True, AMD_FLAGS, "mixed_bfloat16"),
        ([], False, SAPPHIRE_RAPIDS_FLAGS, "mixed_bfloat16"),
        ([], False, AMD_FLAGS, "float32"),
    ],
)
def test_auto_follows_the_device(devices, gpus, tpu, cpuinfo, policy):
    devices(gpus=gpus, tpu=tpu, cpuinfo=cpuinfo)
    choice = precision.choose("auto")
    assert choice.policy == policy
    assert str(choice).startswith(f"Precision: {policy} (auto: ")


def test_amx_is_read_from_the_cpu_flags(tmp_path):
    amx, plain = tmp_path / "amx", tmp_path / "plain"
    amx.write_text("processor\t: 0\n" + SAPPHIRE_RAPIDS_FLAGS)
    plain.write_text("processor\t: 0\n" + AMD_FLAGS + "bugs\t\t: amx_bf16\n")
    assert precision.cpu_has_amx(amx)
    assert not precision.cpu_has_amx(plain)  # only the flags line counts
    assert not precision.cpu_has_amx(tmp_path / "missing")


def test_auto_on_this_machine_matches_its_devices():
    choice = precision.choose("auto")
    gpus = precision.tf.config.list_physical_devices("GPU")
    if not gpus and not precision.cpu_has_amx():
        assert choice.policy == "float32"
    assert choice.policy in ("float32", "mixed_float16", "mixed_bfloat16")


@pytest.mark.parametrize(("setting", "expected"), [("true", True), ("false", False)])
def test_runtime_jit_compile_reaches_keras_compile(setting, expected):
    from kimnet import experiment, models
    from kimnet.training.loop import compile_for_phase
    from kimnet.transfer import finetune

    config = experiment.with_overrides(
        experiment.base(), {"model.name": "mobilenetv3_small", "runtime.jit_compile": setting}
    )
    model = models.get("mobilenetv3_small")(input_shape=(32, 32, 3), classes=10)
    (phase,) = finetune.phases(config, model)
    compile_for_phase(model, config, phase, steps_per_epoch=10)
    assert model.jit_compile is expected


def test_runtime_jit_compile_auto_is_keras_choice_and_typos_are_refused():
    from kimnet import experiment

    assert experiment.base().runtime.jit_compile == "auto"
    with pytest.raises(ValueError, match="runtime.jit_compile"):
        experiment.validate(
            experiment.with_overrides(experiment.base(), {"runtime.jit_compile": "yes"})
        )
