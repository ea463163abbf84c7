"""How the probe curve's target photos should be weighted, measured on a VALIDATION target.

    python benchmarks/adapt_weighting.py --data SOURCE --target TARGET_VAL --output OUT \\
        [--model efficientnet_lite0] [--image-size N] [--shots 0,5,10] [--alpha 0] \\
        [--shares 0.1,0.25,0.5,1] [--copies 1,10] [--align none,standardise]

OUT is a folder `adapt --curve probe` already ran in with the same SOURCE, TARGET_VAL, model and
side (its stored features are read; a missing file is computed there). Every weighting is fitted
on the same features, draw and C (chosen once on the source's validation images at k = 0), and
scored on TARGET_VAL's fixed test set. TARGET_VAL must be a target kept for choosing: never the
target whose curve is reported (docs/adaptation.md cuts a shifted copy into two halves for this).
Prints a Markdown table, one row per weighting and feature alignment (`--align-features`): accuracy
at each k, the in-domain figure and the share of the gap recovered at each k > 0 (from that row's
own k = 0; `mean` is the mean accuracy over every k).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmark.adapt.curve import adaptation_table  # noqa: E402
from benchmark.adapt.features import image_rows, probe_plans, stored_features  # noqa: E402
from benchmark.adapt.plan import TargetWeighting, parse_shots, plan_adaptation  # noqa: E402
from benchmark.adapt.probe_curve import choose_c, curve_data, probe_rows  # noqa: E402
from benchmark.config.run_config import RunConfig  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--shots", default="0,5,10")
    parser.add_argument("--alpha", type=float, default=0.0)
    parser.add_argument("--shares", default="0.1,0.25,0.5,1")
    parser.add_argument("--copies", default="1,10")
    parser.add_argument("--align", default="none")
    args = parser.parse_args()
    config = RunConfig(
        models=[args.model], alphas=[args.alpha], data=args.data, image_size=args.image_size
    )
    (model_plan,), _ = probe_plans(config)
    plan = plan_adaptation(args.data, args.target, parse_shots(args.shots), seed=config.split_seed)
    started = time.perf_counter()
    stored = stored_features(
        config,
        model_plan,
        image_rows(plan.base.table),
        plan.base.class_names,
        args.output / "features",
    )
    how = f"computed for {', '.join(stored.computed)}" if stored.computed else "read"
    print(f"features {how} in {time.perf_counter() - started:.1f} s")
    c_value = choose_c(stored, curve_data(plan), args.alpha, len(plan.base.class_names))
    aligns = [a for a in args.align.split(",") if a]
    weightings = [
        TargetWeighting("share", float(f), align=a)
        for a in aligns
        for f in args.shares.split(",")
        if f
    ]
    weightings += [
        TargetWeighting("copies", copies=int(w), align=a)
        for a in aligns
        for w in args.copies.split(",")
        if w
    ]
    shots = plan.draw.shots
    print(
        f"\nC {c_value:g} (source validation, k = 0); {len(plan.draw.test_hashes())} target "
        f"groups in the fixed validation-target test set\n"
    )
    print(
        "| weighting | align | "
        + " | ".join(f"k={k}" for k in shots)
        + " | mean | in-domain | "
        + " | ".join(f"gap rec. k={k}" for k in shots if k)
        + " |"
    )
    print("|---" * (4 + len(shots) + sum(1 for k in shots if k)) + "|")
    for weighting in weightings:
        started = time.perf_counter()
        frame = adaptation_table(
            probe_rows(stored, plan, [args.alpha], weighting, 0, {args.alpha: c_value})
        )
        cells = [f"{a:.3f}" for a in frame["target_test_accuracy"]]
        gaps = [f"{g:.2f}" for k, g in zip(frame["shots"], frame["gap_recovered"]) if k]
        mean = frame["target_test_accuracy"].mean()
        print(
            f"| {weighting.label()} | {weighting.align} | "
            + " | ".join(cells)
            + f" | {mean:.3f} | {frame['in_domain_accuracy'].iloc[0]:.3f} | "
            + " | ".join(gaps)
            + f" |  <!-- {time.perf_counter() - started:.1f} s -->",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
