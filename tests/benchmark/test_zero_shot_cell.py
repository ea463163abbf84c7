"""A zero-shot cell through the runner: one cell whatever the alphas and seeds, metrics and
predictions like any cell."""

import dataclasses

import keras_hub
import numpy as np
import pandas as pd
import pytest
from PIL import Image

import models.zero_shot as zero_shot
from benchmark.config.run_config import RunConfig
from benchmark.errors import UsageError
from benchmark.run.folder import prepare_run
from benchmark.run.loop import train_or_combine
from models.registry import _REGISTRY
from tests.models.test_hub import SIZE, tiny_converter
from tests.models.test_zero_shot import StubTokenizer, tiny_clip

NAME = "zeroshot_clip_vit_base_patch16"


@pytest.fixture
def colours(tmp_path):
    rng = np.random.default_rng(0)
    for k, name in enumerate(("blue", "green", "red")):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(8):
            pixels = rng.integers(0, 80, (SIZE, SIZE, 3)) + np.array(
                [170 if c == 2 - k else 20 for c in range(3)]
            )
            Image.fromarray(pixels.clip(0, 255).astype("uint8")).save(
                tmp_path / "data" / name / f"{i}.png"
            )
    return tmp_path / "data"


@pytest.fixture
def tiny_preset(monkeypatch):
    """The zero-shot row at the tiny CLIP's size, its preset answered offline by a tiny random
    CLIP."""
    monkeypatch.setitem(
        _REGISTRY, NAME, dataclasses.replace(_REGISTRY[NAME], input_size=SIZE, min_input_size=SIZE)
    )
    monkeypatch.setattr(
        zero_shot, "load_preset", lambda *a, **k: (tiny_clip(), tiny_converter("clip"))
    )
    monkeypatch.setattr(
        keras_hub.models.CLIPTokenizer, "from_preset", lambda *a, **k: StubTokenizer()
    )


def test_zero_shot_cell_is_evaluated_like_a_trained_one(colours, tmp_path, tiny_preset):
    config = RunConfig(
        models=[NAME, "simple_cnn"],
        alphas=[0.0, 1.0],
        seeds=[0, 1],
        data=str(colours),
        zero_shot_prompts=["a photo of {class} waste", "{class} rubbish"],
        save_models="none",
        profile=False,
        batch_size=8,
    )
    ctx = prepare_run(config, tmp_path / "run")
    zero_cells = [c for c in ctx.cells if c.model == NAME]
    assert len(zero_cells) == 1 and (zero_cells[0].alpha, zero_cells[0].seed) == (0.0, 0)
    assert len([c for c in ctx.cells if c.model == "simple_cnn"]) == 4
    record, model = train_or_combine(ctx, zero_cells[0], verbose=0)
    assert record.ok and set(record.metrics) == {"val", "test"} and record.phases == []
    assert "zero-shot" in record.phase2_note and record.timings["train_seconds"] == 0.0
    frame = pd.read_csv(tmp_path / "run" / record.predictions_file)
    probs = frame[[f"prob_{c}" for c in ctx.split.class_names]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert len(frame) == len(ctx.split.subset("val")) + len(ctx.split.subset("test"))
    assert model.output_shape == (None, 3)


def test_prompt_templates_must_name_the_class():
    with pytest.raises(UsageError, match="zero_shot_prompts"):
        RunConfig(zero_shot_prompts=["a photo of waste"])
