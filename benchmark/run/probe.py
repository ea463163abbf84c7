"""The linear-probe row of each pretrained model: fitted by the model's first cell, before training
changes its backbone.

A cell of a model with a frozen pretrained image backbone (the models whose phase 1 can run on
stored features) probes it once per model and fold: the un-augmented pooled features of the train,
val and test splits, exactly the `.npy` files phase 1's stored path keeps in `RUN_DIR/features`,
feed `training.linear_probe.fit_probe`. Where phase 1 already stored them (`--head-features auto`
without augmentation) the probe reads them and costs only the test split's backbone pass and the
logistic regressions; elsewhere (augmented bank, online) it computes the missing splits in one
pass each and stores them the same way. A later cell, a resumed run or another Slurm task finds
the probe's record and skips it. A probe that fails is a failed probe record and a warning line,
never a failed cell.
"""

from __future__ import annotations

from benchmark.errors import error_summary
from benchmark.output import say, warn
from benchmark.run.folder import RunContext, split_file
from benchmark.run.grid import Cell
from benchmark.run.records import FAILED, ProbeRecord, load_probes, write_probe
from benchmark.training.head_features import (
    POOL_LAYER,
    cached_features,
    features_key,
    supports_cached_features,
)
from benchmark.training.linear_probe import fit_probe

PROBE_SPLITS = ("train", "val", "test")


def has_probe(ctx: RunContext, model: str, fold: int | None) -> bool:
    """Whether a finished probe of `model` on this fold's split is already in the run folder."""
    return any(
        p.ok
        and p.model == model
        and p.fold == fold
        and p.split_fingerprint == ctx.split_fingerprint
        for p in load_probes(ctx.run_dir)
    )


def probe_cell(ctx: RunContext, cell: Cell, prepared) -> ProbeRecord | None:
    """Probes the backbone of `prepared` (a `cell.PreparedCell`, not yet trained) unless the model
    has no frozen pretrained image backbone or its probe exists; returns the record written."""
    built, inputs, split = prepared.built, prepared.inputs, ctx.split
    if (
        inputs.modality != "image"
        or not supports_cached_features(built)
        or has_probe(ctx, cell.model, cell.fold)
    ):
        return None
    record = ProbeRecord(
        model=cell.model,
        fold=cell.fold,
        weights=built.weights,
        image_size=inputs.image_size,
        split_fingerprint=ctx.split_fingerprint,
    )
    try:
        splits = split_file(ctx.run_dir, cell.fold)
        features, labels = {}, {}
        for part in PROBE_SPLITS:
            if split.subset(part).empty:
                continue
            key = features_key(cell.model, inputs.image_size, built.weights, splits, part)
            cache_file = ctx.run_dir / "features" / f"{key}.npy"
            if not cache_file.is_file():
                record.features_computed.append(part)
            features[part] = cached_features(
                built,
                inputs.dataset(split, part, prepared.batch_size),
                cache_file,
                rows=len(split.subset(part)),
            )
            labels[part] = split.label_indices(part)
        fit = fit_probe(features, labels, split.class_names)
    except Exception as err:  # the probe is a reference row: it must not cost the cell
        record.status, record.error = FAILED, f"{type(err).__name__}: {error_summary(err)}"[:500]
        warn(f"linear probe of {cell.model} failed: {record.error}")
        write_probe(ctx.run_dir, record)
        return record
    record.feature_dim = int(built.model.get_layer(POOL_LAYER).output.shape[-1])
    record.C, record.class_weight, record.metrics = fit.C, fit.class_weight, fit.metrics
    record.grid, record.seconds = fit.grid, fit.seconds
    write_probe(ctx.run_dir, record)
    test = fit.metrics.get("test", {}).get("accuracy")
    say(
        f"linear probe of {cell.model}: val {fit.metrics['val']['accuracy']:.4f}"
        + (f", test {test:.4f}" if test is not None else "")
        + f" (C {fit.C:g}, class weight {fit.class_weight}; features of "
        f"{', '.join(record.features_computed) or 'no split'} computed for it)"
    )
    return record
