"""How another data set's class names translate into the run's: by name, or through a `--label-map`
file.

A photo set rarely uses TrashNet's names: it may say `Paper` for `paper`, have a
`paper_and_cardboard` class the run splits in two, or a `food` class the run never saw. The map
says, for each of DATA's classes, which run classes count as a right answer (one, several, or none:
the class is left out and listed). Anything unresolved is a one-line error naming the class, so a
table is never scored against a silently guessed translation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from benchmark.config.data_files import read_data_file
from benchmark.errors import UsageError

FLAG = "--label-map"


@dataclass(frozen=True)
class LabelMap:
    """DATA's classes -> the run's classes that count as right for them.

    Args:
        targets: for every scored DATA class (sorted), the run classes a right prediction may be,
            in the run's spelling and order. Several targets mean "any of them is right".
        left_out: DATA classes mapped to null; their images are not scored.
        by_name: DATA classes matched to a run class by name (case-insensitive), not through the
            file.
        source: the map file, or "" when every class matched by name.
    """

    targets: dict[str, tuple[str, ...]]
    left_out: tuple[str, ...] = ()
    by_name: tuple[str, ...] = ()
    source: str = ""
    run_classes: tuple[str, ...] = field(default=())

    def describe(self) -> list[str]:
        """One line per DATA class, `data -> run` (`a | b` for several targets), left-out ones
        last."""
        lines = [f"{name} -> {' | '.join(targets)}" for name, targets in self.targets.items()]
        return lines + [f"{name} -> (left out)" for name in self.left_out]


def read_label_map_file(path: str | Path) -> dict:
    """The raw mapping of a YAML or JSON file (JSON is YAML, so one parser reads both)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(
            f"{FLAG} {str(path)!r} does not exist; give a YAML or JSON file mapping DATA's classes "
            "to the run's"
        )
    data = read_data_file(path, FLAG)
    if not isinstance(data, dict) or not data:
        raise UsageError(
            f"{FLAG} {str(path)!r} must be a mapping of DATA class -> run class, list of run "
            "classes or null (one per line: `paper_and_cardboard: [paper, cardboard]`)"
        )
    return {str(key): value for key, value in data.items()}


def _by_lowercase(names: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Lowercase name -> the name itself; an exact spelling wins when two names differ only in
    case."""
    found: dict[str, str] = {}
    for name in names:
        found.setdefault(name.lower(), name)
    return found


def _match(name: str, names: list[str] | tuple[str, ...]) -> str | None:
    return name if name in names else _by_lowercase(names).get(name.lower())


def _targets(value, data_class: str, run_classes: list[str], where: str) -> tuple[str, ...]:
    """The run classes one map entry names, in the run's order; bad or unknown names are errors
    naming them."""
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise UsageError(
            f"{where}: {data_class!r} maps to {value!r}; give a run class, a list of run classes, "
            "or null to leave the class out"
        )
    resolved = []
    for item in values:
        match = _match(item.strip(), run_classes)
        if match is None:
            raise UsageError(
                f"{where}: {item!r} (for DATA class {data_class!r}) is not a class of the run; "
                f"the run's classes are {', '.join(run_classes)}"
            )
        resolved.append(match)
    return tuple(name for name in run_classes if name in resolved)


def resolve_label_map(
    data_classes: list[str],
    run_classes: list[str],
    mapping: dict | None = None,
    *,
    source: str = "",
) -> LabelMap:
    """Translates every DATA class: through `mapping` where it names the class, else by name
    (case-insensitive).

    A map key that is not one of DATA's classes, a target the run lacks, a DATA class that neither
    the map nor a name matches, and a map that leaves every class out are `UsageError`s, one line
    each.
    """
    where = f"{FLAG} {source!r}" if source else FLAG
    mapping = dict(mapping or {})
    entries: dict[str, object] = {}
    for key, value in mapping.items():
        match = _match(key, data_classes)
        if match is None:
            raise UsageError(
                f"{where}: {key!r} is not a class of DATA; DATA's classes are "
                f"{', '.join(data_classes)}"
            )
        if match in entries:
            raise UsageError(
                f"{where}: DATA class {match!r} is mapped twice (keys differ only in case)"
            )
        entries[match] = value
    targets, left_out, by_name, unmatched = {}, [], [], []
    for name in data_classes:
        if name in entries:
            if entries[name] is None:
                left_out.append(name)
            else:
                targets[name] = _targets(entries[name], name, run_classes, where)
            continue
        match = _match(name, run_classes)
        if match is None:
            unmatched.append(name)
        else:
            targets[name], by_name = (match,), [*by_name, name]
    if unmatched:
        listed = ", ".join(repr(n) for n in unmatched)
        hint = f"add them to {FLAG} {source!r}" if source else f"pass {FLAG} FILE (YAML or JSON)"
        raise UsageError(
            f"DATA class(es) {listed} match no class of the run ({', '.join(run_classes)}); {hint} "
            "mapping each to a run class, a list of run classes, or null to leave it out"
        )
    if not targets:
        raise UsageError(f"{where} leaves out every class of DATA; map at least one to a run class")
    return LabelMap(
        targets=targets,
        left_out=tuple(left_out),
        by_name=tuple(by_name),
        source=source,
        run_classes=tuple(run_classes),
    )
