"""Misuse and bad state that once gave silently wrong tables or tracebacks (the reliability issue).

Each test reproduces one probe: mixed splits, unreadable records, divergence, repeated alphas,
stale cells after --force, two processes on one folder, out of memory, bad values, file modes.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from benchmark.config.run_config import RunConfig, resolve_config
from benchmark.errors import UsageError, error_summary
from benchmark.io import replace_atomically, write_json_atomic
from benchmark.results.tables import build_tables, leaderboard
from benchmark.run.claims import claim_cell
from benchmark.run.folder import prepare_run
from benchmark.run.loop import finished_here, run_grid
from benchmark.run.records import UNREADABLE, CellRecord, load_records, record_path, write_record
from benchmark.run.split_files import split_fingerprint

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "cli"))
from cli_helpers import make_images  # noqa: E402

TINY = dict(
    models=["simple_cnn"],
    alphas=[0.0],
    weights="none",
    image_size=32,
    batch_size=8,
    initial_epochs=1,
    fine_tune_epochs=0,
    profile=False,
    save_models="none",
)


@pytest.fixture
def tiny_run(tmp_path):
    data = make_images(tmp_path / "data", per_class=8, size=32)
    return prepare_run(RunConfig(data=str(data), **TINY), tmp_path / "run")


def ok_record(ctx, cell, **changes) -> CellRecord:
    record = CellRecord(
        cell_id=cell.cell_id,
        index=cell.index,
        model=cell.model,
        alpha=cell.alpha,
        seed=cell.seed,
        metrics={"val": {"accuracy": 0.5, "macro_f1": 0.5}},
        config=ctx.config.to_dict(),
        split_fingerprint=ctx.split_fingerprint,
        class_names=ctx.split.class_names,
    )
    for key, value in changes.items():
        setattr(record, key, value)
    return record


def test_cells_from_another_split_are_refused_by_resume_and_report(tiny_run):
    write_record(
        tiny_run.run_dir, ok_record(tiny_run, tiny_run.cells[0], split_fingerprint="0" * 16)
    )
    with pytest.raises(UsageError, match="simple_cnn__alpha0__seed0.*another split"):
        run_grid(tiny_run)
    with pytest.raises(UsageError, match="another split"):
        build_tables(tiny_run.run_dir)
    assert tiny_run.split_fingerprint == split_fingerprint(tiny_run.run_dir) != ""


@pytest.mark.parametrize("content", ["{", '{"status": "ok"}'])
def test_an_unreadable_record_is_named_left_out_and_its_cell_retrains(tiny_run, content, capsys):
    cell = tiny_run.cells[0]
    record_path(tiny_run.run_dir, cell.cell_id).parent.mkdir(parents=True)
    record_path(tiny_run.run_dir, cell.cell_id).write_text(content)
    (record,) = load_records(tiny_run.run_dir)
    assert record.status == UNREADABLE and f"{cell.cell_id}.json is unreadable" in record.error
    assert leaderboard(tiny_run.run_dir).empty  # issue 30: a warning (build_tables), never a row
    assert finished_here({record.cell_id: record}, tiny_run.cells, tiny_run) == set()
    assert "training simple_cnn__alpha0__seed0 again" in capsys.readouterr().out


def test_cells_trained_under_other_settings_retrain_after_force(tiny_run, capsys):
    cell = tiny_run.cells[0]
    stale = ok_record(
        tiny_run, cell, config={**tiny_run.config.to_dict(), "dropout": 0.1, "alphas": [0.0, 1.0]}
    )
    assert finished_here({cell.cell_id: stale}, tiny_run.cells, tiny_run) == set()
    assert (
        "retraining 1 finished cell(s) trained under other settings (dropout)"
        in capsys.readouterr().out
    )
    same = ok_record(
        tiny_run,
        cell,
        config={**tiny_run.config.to_dict(), "alphas": [0.0, 1.0], "save_models": "all"},
    )
    assert finished_here({cell.cell_id: same}, tiny_run.cells, tiny_run) == {
        cell.cell_id
    }  # grid axes, output keys


def test_a_diverged_cell_is_a_failed_row_not_a_ranked_one(tiny_run):
    import keras

    from benchmark.training.recipe import RecipeSettings, run_phase

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices(
        (np.full((4, 2), np.nan, "float32"), np.eye(2)[[0, 1, 0, 1]])
    ).batch(2)
    with pytest.raises(
        FloatingPointError,
        match="training diverged in phase 'head' \\(loss nan at epoch 1, batch 1\\)",
    ):
        run_phase(
            "head", model, data, data, 3, keras.optimizers.AdamW(1e-3), RecipeSettings(), [], 0
        )


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"initial_lr": float("nan")}, "--initial-lr must be finite"),
        ({"alphas": [-0.0, 0.0]}, "--alphas repeats 0"),
        ({"seeds": [1, 1]}, "--seeds repeats 1"),
        ({"seeds": [-1]}, "--seeds and --split-seed must be >= 0"),
        ({"split_seed": -1}, "--seeds and --split-seed must be >= 0"),
        ({"image_size": 5000}, "--image-size must be between 32 and 4096"),
        ({"batch_size": "big"}, "batch_size \\(--batch-size\\) must be int, got 'big'"),
        ({"simple_cnn": {"widht": 3}}, "simple_cnn has unknown knobs widht"),
        ({"simple_cnn": {"dropout": 7}}, "simple_cnn: dropout must be in \\[0, 1\\), got 7"),
        ({"simple_cnn": {"dense_units": -5}}, "simple_cnn: dense_units must be >= 0"),
        ({"simple_cnn": {"blocks": "five"}}, "^simple_cnn: blocks must be int, got 'five'$"),
        ({"simple_cnn": {"blocks": 0}}, "simple_cnn: blocks must be at least 1, got 0"),
        ({"simple_cnn": {"batch_norm": "yes"}}, "simple_cnn: batch_norm must be bool, got 'yes'"),
        ({"simple_cnn": {"dropout": True}}, "simple_cnn: dropout must be a number, got True"),
        ({"alphas": 0.5}, "alphas \\(--alphas\\) must be list\\[float\\]"),
    ],
)
def test_bad_values_are_one_line_naming_the_key(overrides, message):
    with pytest.raises(UsageError, match=message):
        resolve_config(None, None, overrides)


def test_minus_zero_alpha_is_alpha_zero():
    assert (
        RunConfig(alphas=[-0.0]).alphas == [0.0]
        and str(RunConfig(alphas=[-0.0]).alphas[0]) == "0.0"
    )


def test_an_output_that_is_a_file_is_refused_before_anything_is_written(tmp_path):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    with pytest.raises(UsageError, match="--output .* is an existing file"):
        prepare_run(RunConfig(**TINY), target, write=False)


HOLD_LOCK = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from benchmark.run.claims import claim_cell
    with claim_cell({run_dir!r}, "cell") as claimed:
        print("claimed" if claimed else "busy", flush=True)
        time.sleep(60)
""")


def test_a_cell_claimed_by_another_process_is_skipped_and_a_killed_claim_is_released(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK.format(root=str(ROOT), run_dir=str(tmp_path))],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "claimed"
        with claim_cell(tmp_path, "cell") as claimed:
            assert not claimed
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    with claim_cell(tmp_path, "cell") as claimed:
        assert claimed  # the kernel released the dead process's lock


def test_run_grid_skips_a_cell_another_process_is_training(tiny_run, capsys):
    script = HOLD_LOCK.replace('"cell"', repr(tiny_run.cells[0].cell_id))
    holder = subprocess.Popen(
        [sys.executable, "-c", script.format(root=str(ROOT), run_dir=str(tiny_run.run_dir))],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "claimed"
        assert run_grid(tiny_run, quiet=True) == 0
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert "another process is training" in capsys.readouterr().out
    assert load_records(tiny_run.run_dir) == []  # nothing trained twice, nothing half-written


OOM = (
    "Graph execution error:\n\nDetected at node model/conv/Conv2D defined at "
    "(most recent call last):\n"
    "OOM when allocating tensor with shape[8,32,32,64] and type float on /job:localhost"
)


def test_out_of_memory_halves_the_batch_and_records_it(tiny_run, monkeypatch):
    import tensorflow as tf

    import benchmark.run.cell as cell_module

    real, calls = cell_module.train_two_phase, []

    def flaky(built, train, val, settings, **kwargs):
        calls.append(kwargs["steps_per_epoch"])
        if len(calls) < 3:
            raise tf.errors.ResourceExhaustedError(None, None, OOM)
        return real(built, train, val, settings, **kwargs)

    monkeypatch.setattr(cell_module, "train_two_phase", flaky)
    assert run_grid(tiny_run, quiet=True) == 0
    (record,) = load_records(tiny_run.run_dir)
    assert record.ok and record.batch_size == 2 and calls[0] < calls[1] < calls[2]  # 8 -> 4 -> 2


def test_out_of_memory_at_the_floor_stores_the_real_cause(tiny_run, monkeypatch):
    import tensorflow as tf

    import benchmark.run.cell as cell_module

    def always(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, OOM)

    monkeypatch.setattr(cell_module, "train_two_phase", always)
    assert run_grid(tiny_run, quiet=True) == 1
    (record,) = load_records(tiny_run.run_dir)
    assert record.error.startswith(
        "MemoryError: out of memory even at batch size 1: "
        "OOM when allocating tensor with shape[8,32"
    )
    assert error_summary(ValueError("Graph execution error:\n\nsomething real")) == "something real"


def test_files_written_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    assert (
        tmp_path / "r.json"
    ).stat().st_mode & 0o777 == 0o644  # colleagues on a shared folder can read it


def test_a_write_removes_temporaries_that_killed_writers_left_an_hour_ago(tmp_path):
    """SIGKILL skips the writer's cleanup; the next write of that target sweeps old leftovers
    and leaves a young one (another process may still be writing it) and other targets' alone."""
    target = tmp_path / "epoch003.npz"
    abandoned = tmp_path / ".epoch003.npz.4242-1.tmp.npz"
    young = tmp_path / ".epoch003.npz.4343-1.tmp.npz"
    other = tmp_path / ".epoch004.npz.4242-1.tmp.npz"
    for path in (abandoned, young, other):
        path.write_bytes(b"half")
    two_hours_ago = time.time() - 7200
    for path in (abandoned, other):
        os.utime(path, (two_hours_ago, two_hours_ago))
    replace_atomically(target, lambda tmp: Path(tmp).write_bytes(b"whole"))
    assert target.read_bytes() == b"whole"
    assert not abandoned.exists() and young.exists() and other.exists()


def test_the_parser_and_list_models_import_no_tensorflow():
    probe = (
        "import sys; import run_benchmark; "
        "from benchmark.cli.grid_parsers import build_run_parser; "
        "build_run_parser().parse_args(['--models', 'x']); "
        "from benchmark.listing import registry_rows; rows = registry_rows(); "
        "print(len(rows), 'tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    count, tf_loaded, keras_loaded = out.stdout.split()
    assert int(count) > 50 and tf_loaded == "False" and keras_loaded == "False", out.stderr


def test_a_flag_error_answers_before_tensorflow_loads():
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, str(ROOT / "run_benchmark.py"), "--alphas", "x"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 2 and out.stderr.strip().startswith("run_benchmark: argument --alphas")
    assert out.stderr.count("\n") == 1 and "absl" not in out.stderr
    assert (
        time.perf_counter() - started < 60
    )  # a guard against a hang, not a speed goal (see benchmarks/)


def test_parameter_counts_match_real_builds_for_a_sample():
    from models import BuildSpec, build_model, get_entry, list_models
    from models.parameter_counts import PARAMETER_COUNTS

    image_models = [
        n
        for n in list_models()
        if get_entry(n).modality == "image"
        and get_entry(n).params_m is None
        and not get_entry(n).preset
    ]  # presets need their config; the ConvNeXt giants declare params_m
    assert set(image_models) <= set(PARAMETER_COUNTS), set(image_models) - set(PARAMETER_COUNTS)
    for name in ("simple_cnn", "mobilenet_v3_small", "efficientnet_b0", "resnet50v2"):
        assert (
            build_model(name, BuildSpec(num_classes=6, weights="none")).model.count_params()
            == PARAMETER_COUNTS[name]
        )


def test_startup_noise_is_hidden_and_real_messages_are_kept():
    from benchmark.quiet import NOISE

    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796235296.628780   18662 cudart_stub.cc:31] "
        "Could not find cuda drivers on your machine",
        "E0000 00:00:1796235296.6 18662 cuda_executor.cc:1] "
        "failed call to cuInit: UNKNOWN ERROR (303)",
    ]
    assert all(NOISE.search(line) for line in noise)
    assert not NOISE.search("ImportError: libcudnn.so.9: cannot open shared object file")


@pytest.mark.parametrize("subcommand", ["tune", "slurm"])
def test_every_training_subcommand_takes_the_run_flags(subcommand):
    from benchmark.cli.grid_parsers import build_slurm_parser, build_tune_parser

    parser = {"tune": build_tune_parser, "slurm": build_slurm_parser}[subcommand]()
    args = parser.parse_args(
        [
            "--output",
            "x",
            "--quiet",
            "--verbose",
            "--force",
            *(["--model", "m"] if subcommand == "tune" else []),
        ]
    )
    assert args.quiet and args.verbose and args.force and args.output == "x"


def _die_hard():
    os._exit(9)


def test_an_isolated_cell_trains_in_a_child_and_a_dead_child_is_named(tiny_run, capsys):
    from benchmark.run.isolation import run_in_child, should_isolate

    assert should_isolate("auto", 10) and not should_isolate("auto", 9) and should_isolate("on", 1)
    tiny_run.config.isolate_cells = "on"
    assert run_grid(tiny_run, quiet=True) == 0
    (record,) = load_records(tiny_run.run_dir)
    assert record.ok and record.split_metrics("val")["accuracy"] >= 0
    assert "each cell trains in its own process" in capsys.readouterr().out
    with pytest.raises(ChildProcessError, match="exited with code 9"):
        run_in_child(_die_hard)


def test_an_output_where_nothing_can_be_created_is_refused_before_anything_is_written():
    refusal = "--output '/proc/x' cannot be created: '/proc' is not a writable folder"
    with pytest.raises(UsageError, match=refusal):
        prepare_run(RunConfig(**TINY), Path("/proc/x"), write=False)  # root passes os.access there


def test_a_file_where_the_run_writes_a_folder_is_refused_before_training(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "tensorboard").write_text("not a folder")
    prepare_run(RunConfig(**TINY), tmp_path / "run", write=False)  # harmless with TensorBoard off
    with pytest.raises(UsageError, match="run/tensorboard' is a file, but the run writes a folder"):
        prepare_run(RunConfig(**TINY, tensorboard=True), tmp_path / "run", write=False)


@pytest.mark.parametrize(
    "folds, advice",
    [(3, "resume it with --folds 2, or use another"), (None, "add --folds 2 to resume it")],
)
def test_changed_folds_suggest_what_resumes_the_folder_not_force(tmp_path, folds, advice):
    data = make_images(tmp_path / "data", per_class=6, size=32)
    prepare_run(RunConfig(data=str(data), folds=2, **TINY), tmp_path / "run")
    for force in (False, True):
        with pytest.raises(UsageError, match=advice) as refused:
            prepare_run(
                RunConfig(data=str(data), folds=folds, **TINY), tmp_path / "run", force=force
            )
        assert "--force" not in str(refused.value)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--initial-lr", "nan"], "--initial-lr must be finite"),
        (["--image-size", "100000"], "--image-size must be between 32 and 4096"),
        (["--config", "{bad_key}"], "has unknown keys: batchsize"),
        (["--config", "{bad_knob}", "--dry-run"], "simple_cnn: dropout must be in [0, 1), got 7"),
        (["--ema-momentum", "0.9"], "--ema-momentum 0.9 sets the weight average of --ema"),
        (
            ["--models", "zeroshot_*", "--image-size", "96"],
            "--image-size 96 cannot apply to zero-shot",
        ),
        (["--weights", "no/such.weights.h5", "--dry-run"], "--weights file 'no/such.weights.h5'"),
        (["--output", "/proc/x"], "--output '/proc/x' cannot be created"),
    ],
)
def test_bad_values_are_refused_before_tensorflow_is_imported(tmp_path, argv, message):
    (tmp_path / "key.yaml").write_text("batchsize: 8\n")
    (tmp_path / "knob.yaml").write_text("simple_cnn: {dropout: 7}\n")
    files = {"bad_key": tmp_path / "key.yaml", "bad_knob": tmp_path / "knob.yaml"}
    argv = [arg.format(**files) for arg in argv]
    probe = (
        f"import sys, run_benchmark; code = run_benchmark.main({argv!r}); "
        "print(code, 'tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert out.stdout.split() == ["2", "False", "False"], out.stdout + out.stderr
    assert out.stderr.startswith("run_benchmark: ") and out.stderr.count("\n") == 1, out.stderr
    assert message in out.stderr


def test_a_good_configuration_is_checked_without_tensorflow(tmp_path):
    argv = ["--models", "all", "--output", str(tmp_path / "run")]
    probe = (
        "import sys, run_benchmark; from benchmark.cli import dispatch; "
        "parser = dispatch.build_run_parser(); "
        f"dispatch.checked_config(parser.parse_args({argv!r}), parser); "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    # TensorFlow comes later, in start(), which hides its start-up chatter
    assert out.stdout.split() == ["False", "False"], out.stdout + out.stderr
    assert not (tmp_path / "run").exists()
