"""Countries and places by name, from pycountry's ISO 3166 data: no hand-typed list of names."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache


def fold(text: str) -> str:
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return text.replace("-", " ").casefold().strip()


@lru_cache(maxsize=1)
def _country_names() -> list[tuple[str, list[str], set[str]]]:
    """(alpha-3, folded names, initials of the names' capitalised words) for every pycountry country."""
    import pycountry

    table = []
    for country in pycountry.countries:
        names = [n for f in ("name", "official_name", "common_name") if (n := getattr(country, f, None))]
        initials = {"".join(w[0] for w in re.findall(r"\b[A-Z]\w*", n)) for n in names}
        table.append((country.alpha_3, [fold(n) for n in names], initials))
    return table


@lru_cache(maxsize=4096)
def country_code(name: str, exact: bool = False) -> str | None:
    """pycountry's alpha-3 code for a country's name or code, the initials of its name ("UAE") or, unless `exact`,
    a word prefix of only its names ("Russia"). Not search_fuzzy: it matches subdivisions, making Islamabad Pakistan."""
    import pycountry

    try:
        return pycountry.countries.lookup(name.strip()).alpha_3
    except LookupError:
        pass
    if name.isalpha() and name.isupper():
        matches = {code for code, _, initials in _country_names() if name in initials}
    elif exact:
        return None
    else:
        prefix = re.compile(r"\b" + re.escape(fold(name)))
        matches = {code for code, names, _ in _country_names() if any(prefix.search(n) for n in names)}
    return next(iter(matches)) if len(matches) == 1 else None


@lru_cache(maxsize=4096)
def is_place(name: str) -> bool:
    import pycountry

    try:
        return bool(pycountry.subdivisions.lookup(name.strip()))
    except LookupError:
        return country_code(name) is not None
