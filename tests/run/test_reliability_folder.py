"""The run folder and refusals (issue 39): claiming a folder is atomic, and user files are data.

Each test failed before its fix: two runs started at once on a new --output both claimed it, a
binary or alias-bomb --config crashed (UnicodeDecodeError; MemoryError after 42 s and 3.5 GB), an
empty --alphas item was dropped, and a missing --data waited for TensorFlow to load.
"""

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from benchmark.config.run_config import RunConfig, read_config_file, resolve_config
from benchmark.cross_dataset.label_map import read_label_map_file
from benchmark.errors import UsageError
from benchmark.run import folder
from benchmark.run.folder import prepare_run

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "cli"))
from cli_helpers import make_images  # noqa: E402

TINY = dict(models=["simple_cnn"], alphas=[0.0, 1.0], weights="none", image_size=32, profile=False)
# Nine levels of nine aliases: 9**9 (387 million) strings once anything walks it.
ALIAS_BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{b}: &{b} [{', '.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi")
)


def race_two_runs(monkeypatch, data: Path, run_dir: Path, lrs: tuple[float, float]) -> list:
    """Starts `prepare_run` in two threads on one new folder, both held after their checks until
    the other has checked too (the moment the race was lost before): returns each one's outcome,
    a context or the `UsageError`."""
    barrier = threading.Barrier(2, timeout=60)
    check_captions = folder.check_captions

    def held(*args, **kwargs):
        barrier.wait()  # both have checked the (absent) config.yaml; neither has written
        return check_captions(*args, **kwargs)

    monkeypatch.setattr(folder, "check_captions", held)
    outcomes: list = [None, None]

    def start(k: int) -> None:
        config = RunConfig(data=str(data), initial_lr=lrs[k], **TINY)
        try:
            outcomes[k] = prepare_run(config, run_dir)
        except UsageError as err:
            outcomes[k] = err

    threads = [threading.Thread(target=start, args=(k,)) for k in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


def test_two_runs_with_other_settings_started_at_once_on_a_new_folder_one_is_refused(
    tmp_path, monkeypatch
):
    data = make_images(tmp_path / "data", per_class=4, size=32)
    outcomes = race_two_runs(monkeypatch, data, tmp_path / "run", (0.001, 0.5))
    refused = [o for o in outcomes if isinstance(o, UsageError)]
    won = [o for o in outcomes if isinstance(o, folder.RunContext)]
    assert len(refused) == 1 and len(won) == 1, outcomes
    assert "was started with a different configuration (initial_lr)" in str(refused[0])
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["initial_lr"] == won[0].config.initial_lr


def test_two_runs_with_the_same_settings_started_at_once_share_one_split(tmp_path, monkeypatch):
    data = make_images(tmp_path / "data", per_class=4, size=32)
    outcomes = race_two_runs(monkeypatch, data, tmp_path / "run", (0.001, 0.001))
    assert all(isinstance(o, folder.RunContext) for o in outcomes), outcomes
    assert outcomes[0].split_fingerprint == outcomes[1].split_fingerprint != ""


def _claim_after(barrier, context, results, k) -> None:
    barrier.wait()
    try:
        folder.claim_run(context)
        results[k] = 1
    except UsageError:
        results[k] = 2


def test_two_processes_claiming_one_new_folder_with_other_settings_one_is_refused(tmp_path):
    """The same race between real processes (a lock held by threads could hide a per-process
    one): both resolved the folder as new, then claim it at once."""
    import multiprocessing

    data = make_images(tmp_path / "data", per_class=4, size=32)
    run_dir = tmp_path / "run"
    contexts = [
        folder.resolve_run(RunConfig(data=str(data), initial_lr=lr, **TINY), run_dir)
        for lr in (0.001, 0.5)
    ]
    fork = multiprocessing.get_context("fork")
    barrier, results = fork.Barrier(2, timeout=60), fork.Array("i", 2)
    children = [
        fork.Process(target=_claim_after, args=(barrier, contexts[k], results, k)) for k in (0, 1)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)
    assert sorted(results) == [1, 2], list(results)
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["initial_lr"] == (0.001, 0.5)[list(results).index(1)]


def test_resolving_a_run_writes_nothing(tmp_path):
    data = make_images(tmp_path / "data", per_class=4, size=32)
    context = folder.resolve_run(RunConfig(data=str(data), **TINY), tmp_path / "out" / "run")
    assert len(context.cells) == 2 and context.split is not None
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is not YAML text: byte 0x89 at offset 0"),
        (ALIAS_BOMB.encode(), "uses a YAML alias (*name, at line 2, column"),
        (b"models: [" * 20000, "is not valid YAML"),
    ],
    ids=["binary", "alias-bomb", "deep-nesting"],
)
def test_a_config_file_that_is_not_plain_yaml_is_one_line_naming_it_at_once(
    tmp_path, content, message
):
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    started = time.perf_counter()
    with pytest.raises(UsageError) as caught:
        resolve_config(None, str(path))
    assert message in str(caught.value) and str(path) in str(caught.value)
    assert "\n" not in str(caught.value) and time.perf_counter() - started < 5


def test_a_config_file_over_a_mebibyte_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("# padding\n" * 200_000)
    with pytest.raises(UsageError, match="is 1.9 MiB; a YAML file of settings is at most 1 MiB"):
        read_config_file(path)


def test_an_anchor_without_an_alias_still_reads(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("seeds: &s [0, 1]\n")
    assert read_config_file(path) == {"seeds": [0, 1]}


def test_a_label_map_with_aliases_is_refused_naming_it(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text("paper: &p [paper, cardboard]\ncarton: *p\n")
    with pytest.raises(UsageError, match=r"--label-map '.*map.yaml' uses a YAML alias"):
        read_label_map_file(path)


def probe(argv: list[str]) -> subprocess.CompletedProcess:
    """`run_benchmark.main(argv)` in a fresh interpreter; prints its status and whether
    TensorFlow was imported."""
    code = (
        "import sys, run_benchmark\n"
        f"try:\n    code = run_benchmark.main({argv!r})\n"
        "except SystemExit as exit:\n    code = exit.code\n"
        "print(code, 'tensorflow' in sys.modules)"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data", "/nonexistent/photos"], "--data '/nonexistent/photos' does not exist"),
        (["--split-file", "/nonexistent/s.csv"], "--split-file '/nonexistent/s.csv' does not"),
        (["--alphas", "0,,1"], "argument --alphas: '0,,1' has an empty item (item 2)"),
        (["--models", "simple_cnn,"], "argument --models: 'simple_cnn,' has an empty item"),
        (["--seeds", ",0"], "argument --seeds: ',0' has an empty item (item 1)"),
    ],
)
def test_missing_paths_and_empty_list_items_are_refused_before_tensorflow(tmp_path, argv, message):
    out = probe([*argv, "--output", str(tmp_path / "run")])
    assert out.stdout.split() == ["2", "False"], out.stdout + out.stderr
    assert out.stderr.startswith("run_benchmark: ") and out.stderr.count("\n") == 1, out.stderr
    assert message in out.stderr
    assert not (tmp_path / "run").exists()
