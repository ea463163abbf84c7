"""The leaderboard's columns have one source: the report's and console's views name only those."""

import pandas as pd
import pytest

from benchmark.commands import print_leaderboard
from benchmark.results import columns
from benchmark.results.columns import leaderboard_columns, unknown_columns, view


@pytest.mark.parametrize(
    "shown", [columns.REPORT_COLUMNS, columns.CONSOLE_COLUMNS], ids=["report", "console"]
)
def test_every_view_names_only_leaderboard_columns(shown):
    assert unknown_columns(shown) == []


def test_a_renamed_column_would_be_caught():
    assert unknown_columns(("rank", "val_acc")) == ["val_acc"]


def test_a_view_keeps_the_columns_a_board_has_in_its_own_order():
    plain = leaderboard_columns(False) + list(columns.COST_COLUMNS)
    shown = view(plain, columns.REPORT_COLUMNS)
    assert "folds" not in shown and "val_accuracy_fold_ci" not in shown
    assert shown.index("tied_with_best") < shown.index("p_vs_best")  # the view's order wins
    with_folds = view(leaderboard_columns(True), columns.REPORT_COLUMNS)
    assert with_folds[3:6] == ["seeds", "folds", "val_accuracy"]


def test_the_console_prints_its_view(capsys):
    board = pd.DataFrame([{c: 1 for c in leaderboard_columns(False) + list(columns.COST_COLUMNS)}])
    print_leaderboard(board)
    header = capsys.readouterr().out.splitlines()[2]
    assert [cell.strip() for cell in header.strip("|").split("|")] == list(columns.CONSOLE_COLUMNS)
