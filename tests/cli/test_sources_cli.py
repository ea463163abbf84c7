"""Several data sources in one run from the command line: per-source columns, and bad input."""

import shutil

import pandas as pd
import pytest
from cli_helpers import TINY_FLAGS, make_images, run_cli

import run_benchmark
from benchmark.config.run_config import resolve_config


@pytest.fixture(scope="module")
def merged_run(tmp_path_factory):
    """A tiny grid over two trained sources and a test_only one, run to the end once."""
    root = tmp_path_factory.mktemp("sources")
    a = make_images(root / "shop", per_class=6)
    make_images(root / "street", per_class=6, size=48)  # other pixels: no copies of `shop`
    c = make_images(root / "field", per_class=4, size=36)
    shutil.copy(a / "glass" / "glass_0.png", c / "glass" / "copy_of_shop.png")
    sources = root / "sources.yaml"
    sources.write_text(
        "- path: shop\n- path: street\n- path: field\n  name: field\n  test_only: true\n"
    )
    run_dir = root / "run"
    done = run_cli(
        *TINY_FLAGS,
        "--alphas",
        "1",
        "--no-profile",
        "--data",
        str(sources),
        "--output",
        str(run_dir),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return root, run_dir


def test_the_leaderboard_has_one_test_accuracy_column_per_source(merged_run):
    _, run_dir = merged_run
    board = pd.read_csv(run_dir / "leaderboard.csv")
    per_source = [c for c in board.columns if c.startswith("test_accuracy_on_")]
    assert per_source == [
        "test_accuracy_on_shop",
        "test_accuracy_on_street",
        "test_accuracy_on_field",
    ]
    assert board[per_source].notna().all().all()
    assert board[per_source].apply(lambda s: s.between(0, 1)).all().all()
    split = pd.read_csv(run_dir / "splits.csv")
    tested = split[split["split"] == "test"]["source"].value_counts()
    pooled = sum(board[f"test_accuracy_on_{name}"] * n for name, n in tested.items()) / tested.sum()
    assert (pooled - board["test_accuracy"]).abs().max() < 1e-9  # the sources partition the test
    field = split[split["source"] == "field"]
    assert len(field) == 13 and set(field["split"]) == {"test"}
    copy = split["path"].str.endswith("shop/glass/glass_0.png")
    assert split.loc[copy, "split"].item() == "test"  # follows its copy in the test_only source


def test_one_data_flag_stays_a_single_dataset():
    assert resolve_config(overrides={"data": ["some/folder"]}).data == "some/folder"
    assert resolve_config(overrides={"data": ["a", "b"]}).data == ["a", "b"]


@pytest.mark.parametrize(
    "case, expected",
    [
        ("disjoint", "shares no class with the other sources"),
        ("one_image", "'tiny' "),
        ("empty_class", "which no trained source has"),
        ("missing_path", "'nowhere'"),
        ("unknown_key", "unknown key(s) 'weight'"),
        ("same_name", "two sources are named 'shop'"),
    ],
)
def test_bad_sources_exit_2_in_one_line_before_the_run_folder_exists(
    tmp_path, capsys, case, expected
):
    a = make_images(tmp_path / "shop", per_class=4)
    other = tmp_path / "other"
    data = ["--data", str(tmp_path / "sources.yaml")]
    if case == "disjoint":
        (other / "fox").mkdir(parents=True)
        (other / "owl").mkdir()
        for name in ("fox", "owl"):
            for i in range(3):
                shutil.copy(a / "glass" / f"glass_{i}.png", other / name / f"{name}{i}.png")
        data = ["--data", str(a), "--data", str(other)]
    elif case == "one_image":
        (other / "glass").mkdir(parents=True)
        shutil.copy(a / "glass" / "glass_0.png", other / "glass" / "only.png")
        (tmp_path / "sources.yaml").write_text("- path: shop\n- path: other\n  name: tiny\n")
    elif case == "empty_class":
        for name in ("glass", "metal"):  # metal: a class no trained source has
            (other / name).mkdir(parents=True)
            shutil.copy(a / "paper" / "paper_0.png", other / name / "m.png")
            shutil.copy(a / "paper" / "paper_1.png", other / name / "n.png")
        (tmp_path / "sources.yaml").write_text("- path: shop\n- path: other\n  test_only: true\n")
    elif case == "missing_path":
        (tmp_path / "sources.yaml").write_text("- path: shop\n- path: nowhere\n")
    elif case == "unknown_key":
        (tmp_path / "sources.yaml").write_text("- path: shop\n  weight: 2\n")
    else:
        (tmp_path / "sources.yaml").write_text("- path: shop\n- path: shop/../shop\n")
    run_dir = tmp_path / "run"
    code = run_benchmark.main([*TINY_FLAGS, *data, "--output", str(run_dir)])
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("run_benchmark:")]
    assert code == 2 and len(lines) == 1 and expected in lines[0], lines
    assert not run_dir.exists()


def test_the_dry_run_counts_each_source_images_per_split(tmp_path, capsys):
    a = make_images(tmp_path / "shop", per_class=4)
    b = make_images(tmp_path / "street", per_class=4, size=48)
    run_dir = tmp_path / "run"
    code = run_benchmark.main(
        [*TINY_FLAGS, "--data", str(a), "--data", str(b), "--output", str(run_dir), "--dry-run"]
    )
    out = capsys.readouterr().out
    cells = {
        row[0]: row[1:]
        for row in ([c.strip() for c in line.strip("|").split("|")] for line in out.splitlines())
    }
    assert code == 0 and cells["shop"] == cells["street"] == ["6", "3", "3"], out
    assert not run_dir.exists()
