"""Everything `adapt` decides before it trains or writes: the k values, the merged base split, the
nested draw and one split per k.

Reading and checking happen here, without TensorFlow, so bad input (a malformed `--shots`, a k a
target class cannot afford, a target sharing no class with the source) is one line and exit 2
before anything is written into the output folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.errors import UsageError
from data_pipeline import SplitTable, read_class_map, read_sources, scan_dataset
from data_pipeline.merge import merge_sources
from data_pipeline.shots import ShotDraw, draw_shots, shots_split
from data_pipeline.source_specs import SourceSpec, check_unique_names, name_of_path

DEFAULT_SHOTS = "0,5,10,25,50"
MAX_SHOTS = 10_000


def parse_shots(text: str) -> list[int]:
    """`--shots` as sorted distinct k values; one line naming the flag for an empty or malformed
    list (k must be whole numbers >= 0)."""
    parts = [part.strip() for part in str(text).split(",")]
    if not all(re.fullmatch(r"\d+", part) for part in parts):
        raise UsageError(
            f"--shots {text!r} must be a comma list of whole numbers >= 0 (labelled target photos "
            f"per class), e.g. {DEFAULT_SHOTS}"
        )
    shots = sorted({int(part) for part in parts})
    if shots[-1] > MAX_SHOTS:
        raise UsageError(f"--shots {shots[-1]} is more than {MAX_SHOTS} photos per class")
    return shots


def check_target_weight(weight: int) -> int:
    """`--target-weight` is a whole number of copies, 1 (no oversampling) or more."""
    if weight < 1 or weight > MAX_SHOTS:
        raise UsageError(
            f"--target-weight {weight} must be a whole number from 1 (each labelled target photo "
            f"trained on once) to {MAX_SHOTS}"
        )
    return weight


DEFAULT_WEIGHTING = "share"
DEFAULT_TARGET_SHARE = 0.5
# How the probe's features meet across domains: "none", or "standardise" (each domain's features
# standardised with its own statistics: the source's training images, the target's unlabelled
# pool; `--align-features` lists both). docs/adaptation.md says how the default was chosen.
DEFAULT_ALIGNMENT = "none"


@dataclass(frozen=True)
class TargetWeighting:
    """How much one labelled target photo weighs in the head's loss.

    `share`: each class's k target photos together weigh `share` x that class's source training
    photos (never less than one source photo each). `copies`: each weighs `copies` source photos,
    as `--target-weight` lists it that many times in `--curve finetune`.

    `align` ("none" or "standardise", `--align-features`) says how the probe's target features
    meet the source's (`probe_curve.align_domains`).
    """

    kind: str = DEFAULT_WEIGHTING
    share: float = DEFAULT_TARGET_SHARE
    copies: int = 1
    align: str = DEFAULT_ALIGNMENT

    def label(self) -> str:
        return f"share {self.share:g}" if self.kind == "share" else f"copies {self.copies}"

    def factors(self, source_counts: np.ndarray, shot_counts: np.ndarray) -> np.ndarray:
        """Per class: the weight of one of its target photos."""
        if self.kind == "copies":
            return np.full(len(source_counts), float(self.copies))
        per_photo = self.share * source_counts / np.maximum(shot_counts, 1)
        return np.maximum(per_photo, 1.0)


MAX_TARGET_SHARE = 100.0


def adapt_weighting(
    curve: str,
    kind: str | None,
    copies: int | None,
    share: float | None,
    align: str | None = None,
):
    """The probe curve's `TargetWeighting` from the flags (None for `--curve finetune`, which
    weighs by `--target-weight` copies alone); a flag the chosen curve or weighting does not read
    is refused rather than ignored."""
    if curve == "finetune":
        if kind == "share" or share is not None:
            raise UsageError(
                "--weighting share and --target-share weigh the probe curve's heads; "
                "--curve finetune weighs by --target-weight copies"
            )
        if align is not None:
            raise UsageError(
                "--align-features aligns the probe curve's frozen features; --curve finetune "
                "trains the backbone"
            )
        return None
    kind = kind or ("copies" if copies is not None else TargetWeighting().kind)
    if kind == "share" and copies is not None:
        raise UsageError(
            "--target-weight is the copies weighting; drop it or give --weighting copies"
        )
    if kind == "copies" and share is not None:
        raise UsageError("--target-share is the share weighting; drop it or --weighting copies")
    share = DEFAULT_TARGET_SHARE if share is None else share
    if not 0 < share <= MAX_TARGET_SHARE:
        raise UsageError(
            f"--target-share {share:g} must be above 0 and at most {MAX_TARGET_SHARE:g} (the "
            "share of a class's source photos its target photos weigh together)"
        )
    copies = check_target_weight(1 if copies is None else copies)
    return TargetWeighting(kind, share, copies, align or DEFAULT_ALIGNMENT)


@dataclass
class AdaptPlan:
    """The checked inputs of an adaptation run.

    Args:
        target: the target source's name (its `test_accuracy_on_<name>` column).
        sources: the trained sources' names.
        draw: the nested k-shot draw.
        splits: k -> the split of that k's run.
    """

    target: str
    sources: list[str]
    draw: ShotDraw
    base: SplitTable
    splits: dict[int, SplitTable]
    target_weight: int = 1  # --target-weight: copies of each labelled target photo


def translated_classes(spec: SourceSpec, scanned) -> set[str]:
    """A source's classes after its label map (keys match ignoring case, as in the merge)."""
    lower = {key.lower(): value for key, value in spec.label_map.items()}
    out = {lower[name.lower()] if name.lower() in lower else name for name in scanned.class_names}
    return {name for name in out if name is not None}


def check_shared_classes(specs, scans, target: SourceSpec, target_scan, label_map) -> None:
    """A target with no class of the sources would have nothing to score: refused naming the
    target and --label-map (the merge's own message would name the source and a YAML key)."""
    trained = set().union(*(translated_classes(s, d) for s, d in zip(specs, scans)))
    own = translated_classes(target, target_scan)
    if not own & trained:
        fix = f"fix --label-map {label_map}" if label_map else "give --label-map"
        raise UsageError(
            f"--target {target.name!r} ({', '.join(sorted(own)) or 'no class'}) shares no class "
            f"with --data ({', '.join(sorted(trained))}); {fix} translating its classes into "
            "theirs"
        )


def plan_adaptation(
    data: str | list[str],
    target: str,
    shots: list[int],
    *,
    label_map: str | None = None,
    ratios=(0.7, 0.15, 0.15),
    seed: int = 0,
    skip_corrupt: bool = False,
    target_weight: int = 1,
) -> AdaptPlan:
    """Scans the sources and the target, merges them with the target test-only (so its images and
    any copy of them start in test), draws the shots and makes each k's split."""
    specs = read_sources(data)
    if any(spec.test_only for spec in specs):
        raise UsageError(
            "adapt trains on every --data source; drop test_only from the sources file (the "
            "--target is the one tested)"
        )
    path = Path(target).expanduser()
    if not path.exists():
        raise UsageError(
            f"--target {target!r} does not exist; pass a class-folder root, a "
            "pre-split root (all splits pooled) or a CSV manifest"
        )
    mapping = read_class_map(label_map, "--label-map") if label_map else {}
    target_spec = SourceSpec(path, name_of_path(path), mapping, True, label_map or "")
    check_unique_names([*specs, target_spec])
    scanned = [
        scan_dataset(spec.path, skip_corrupt=skip_corrupt, min_classes=1)
        for spec in [*specs, target_spec]
    ]
    for item in scanned[-1:]:  # the target's given splits are pooled: the draw decides them
        item.table["split"] = ""
    check_shared_classes(specs, scanned[:-1], target_spec, scanned[-1], label_map)
    base = merge_sources(list(zip([*specs, target_spec], scanned)), ratios=ratios, seed=seed)
    draw = draw_shots(base, target_spec.name, shots, seed=seed)
    splits = {k: shots_split(base, draw, k, repeat=target_weight) for k in draw.shots}
    names = [s.name for s in specs]
    return AdaptPlan(target_spec.name, names, draw, base, splits, target_weight)
