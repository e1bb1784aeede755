"""Which source column each canonical column comes from: the user's mapping, then aliases.

An explicit mapping (--map, a mapping file) wins and must name real columns (with a
did-you-mean when it does not); aliases fill the rest in order of preference. A mapping may also
carry a "keep" entry: the columns the user keeps although they look like label leaks
(analytics.leaks); it travels with the mapping, so a stored dataset keeps them on every reload.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from analytics import columns as C
from analytics.ingest.aliases import BINARY_ONLY_ALIASES, alias_rank, norm
from analytics.ingest.errors import MappingError
from analytics.ingest.messages import listing, suggest

KEEP = "keep"  # the mapping's entry listing the columns kept although they look like leaks


def split_keep(mapping: Mapping | None) -> tuple[dict[str, str], list[str]]:
    """(canonical -> source column, columns kept) of a mapping that may hold a "keep" entry."""
    canonical = {k: v for k, v in (mapping or {}).items() if k != KEEP}
    return canonical, keep_list((mapping or {}).get(KEEP, ()), "the mapping's keep entry")


def keep_list(value: object, what: str = "keep") -> list[str]:
    """Sorted distinct column names from a name or a list of names (a JSON "keep" entry)."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, Iterable) or not all(isinstance(n, str) and n.strip() for n in names):
        raise MappingError(
            f'{what} must be a column name or a list of column names, e.g. "keep": ["Complain"]'
        )
    return sorted({n.strip() for n in names})


def with_keep(mapping: Mapping | None, keep: Iterable[str]) -> dict:
    """`mapping` with `keep` added to its "keep" entry (absent when nothing is kept)."""
    canonical, kept = split_keep(mapping)
    kept = keep_list([*kept, *keep])
    return {**canonical, KEEP: kept} if kept else canonical


def kept_columns(keep: Sequence[str], columns: Sequence[str]) -> list[str]:
    """The table's columns that `keep` names (exact, else ignoring case and punctuation)."""
    result = []
    for name in keep:
        hits = [c for c in columns if c == name] or [c for c in columns if norm(c) == norm(name)]
        if len(hits) != 1:
            raise MappingError(
                f"--keep {name}: the table has no column '{name}'{suggest(name, columns)} "
                f"(columns found: {listing(list(columns))})"
            )
        result.append(hits[0])
    return result


def _check_canonical(name: str, what: str) -> None:
    if name not in C.CANONICAL:
        raise MappingError(
            f"{what} names '{name}', which is not a canonical column: expected one of "
            f"{', '.join(C.CANONICAL)}{suggest(name, C.CANONICAL)}"
        )


def parse_mapping_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """{"churned": "Exited"} from CLI pairs like "churned=Exited" (canonical=source column)."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        canonical, sep, source = str(pair).partition("=")
        canonical, source = canonical.strip(), source.strip()
        if not sep or not canonical or not source:
            raise MappingError(
                f"--map expects canonical=column (e.g. churned=Exited), got '{pair}'"
            )
        _check_canonical(canonical, f"--map {pair}")
        if mapping.get(canonical, source) != source:
            raise MappingError(
                f"--map gives {canonical} twice: '{mapping[canonical]}' and '{source}'"
            )
        mapping[canonical] = source
    return mapping


def _match_column(source: str, columns: Sequence[str], canonical: str) -> str:
    """The column an explicit mapping means: exact name, else a unique case-insensitive one."""
    if source in columns:
        return source
    for key in (str.strip, str.lower, norm):
        hits = [c for c in columns if key(c) == key(source.strip())]
        if len(hits) == 1:
            return hits[0]
    raise MappingError(
        f"mapping {canonical}={source}: the table has no column '{source}'"
        f"{suggest(source, columns)} (columns found: {listing(list(columns))})"
    )


def explicit_mapping(columns: Sequence[str], explicit: Mapping[str, str] | None) -> dict[str, str]:
    resolved: dict[str, str] = {}
    for canonical, source in split_keep(explicit)[0].items():
        _check_canonical(str(canonical), f"the mapping {canonical}={source}")
        resolved[str(canonical)] = _match_column(str(source), columns, str(canonical))
    taken: dict[str, str] = {}
    for canonical, source in resolved.items():
        if source in taken:
            raise MappingError(
                f"the mapping sends column '{source}' to both {taken[source]} and {canonical}"
            )
        taken[source] = canonical
    return resolved


def resolve(
    columns: Sequence[str],
    explicit: Mapping[str, str] | None,
    is_binary: Callable[[str], bool] | None,
) -> tuple[dict[str, str], list[str]]:
    """(canonical -> source, notes). Explicit entries win; aliases fill the rest in order."""
    mapping = explicit_mapping(columns, explicit)
    notes: list[str] = []
    used = set(mapping.values())
    for canonical in C.CANONICAL:
        if canonical in mapping:
            continue
        ranks = alias_rank(canonical)
        candidates = []
        for position, column in enumerate(columns):
            rank = ranks.get(norm(column))
            if column in used or rank is None:
                continue
            if rank[1] in BINARY_ONLY_ALIASES and not (is_binary and is_binary(column)):
                continue
            spelled_otherwise = column.strip().lower() != rank[1]
            candidates.append((rank[0], spelled_otherwise, position, column))
        if not candidates:
            continue
        candidates.sort()
        chosen = candidates[0][3]
        mapping[canonical] = chosen
        used.add(chosen)
        if len(candidates) > 1:
            others = ", ".join(f"'{c[3]}'" for c in candidates[1:])
            notes.append(
                f"{canonical}: several columns match ('{chosen}', {others}); using '{chosen}'"
                f" (choose with --map {canonical}=<column>)"
            )
    return {c: mapping[c] for c in C.CANONICAL if c in mapping}, notes


def resolve_mapping(
    columns: Sequence[str], explicit: Mapping[str, str] | None = None
) -> dict[str, str]:
    """canonical -> source column, from the explicit mapping first, then the aliases.

    Names only: the generic label names in BINARY_ONLY_ALIASES ("target", "status", ...)
    need the data to check they hold two values, so only validate() takes them.
    """
    return resolve([str(c).strip() for c in columns], explicit, None)[0]


def columns_to_drop(
    drop: Sequence[str], columns: Sequence[str], mapping: Mapping[str, str]
) -> set[str]:
    result = set()
    for name in drop:
        name = str(name).strip()
        hits = [c for c in columns if c == name] or [c for c in columns if norm(c) == norm(name)]
        if len(hits) != 1:
            raise MappingError(
                f"--drop {name}: the table has no column '{name}'{suggest(name, columns)} "
                f"(columns found: {listing(list(columns))})"
            )
        if hits[0] in mapping.values():
            raise MappingError(f"column '{hits[0]}' is both mapped and dropped (--drop)")
        result.add(hits[0])
    return result
