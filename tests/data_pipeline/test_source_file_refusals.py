"""The sources refusals docs/bad-input.md lists that test_merge.py's cases leave out: a sources
YAML that is missing, not YAML or not a list, a label map that keeps no class, `--folds` with
several sources. Each is one line naming the file or flag."""

import pytest
from dp_helpers import write_classes

from benchmark.config.run_config import resolve_config
from benchmark.errors import UsageError
from data_pipeline import DataError, split_sources
from data_pipeline.source_specs import read_sources_file


@pytest.mark.parametrize(
    "text, expected",
    [
        (None, "does not exist; give a YAML list of sources"),
        ("- [path: a\n", "is not valid YAML ("),
        ("path: a\n", "must hold a non-empty list of sources"),
        ("[]\n", "must hold a non-empty list of sources"),
    ],
    ids=["missing", "not-yaml", "a-mapping", "empty-list"],
)
def test_a_sources_file_that_is_missing_not_yaml_or_no_list_is_named(tmp_path, text, expected):
    path = tmp_path / "sources.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(DataError) as err:
        read_sources_file(path)
    message = str(err.value)
    assert message.startswith(f"sources file {path} ") and expected in message, message
    assert "\n" not in message


def test_a_label_map_that_leaves_out_every_class_is_named(tmp_path):
    a = write_classes(tmp_path / "a", {"cat": 6, "dog": 6})
    b = write_classes(tmp_path / "b", {"cat": 6, "dog": 6}, start_seed=100)
    (tmp_path / "map.yaml").write_text("cat: null\ndog: null\n")
    sources = f"- {{path: {a}}}\n- {{path: {b}, label_map: map.yaml}}\n"
    (tmp_path / "sources.yaml").write_text(sources)
    with pytest.raises(DataError, match=r"label_map .*map.yaml of source 'b' leaves out every"):
        split_sources(str(tmp_path / "sources.yaml"))


def test_folds_with_several_sources_is_refused_naming_the_flag():
    with pytest.raises(UsageError, match="^--folds works on one dataset; merged sources"):
        resolve_config(overrides={"data": ["a", "b"], "folds": 3})
