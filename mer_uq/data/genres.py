"""One primary genre per song, for stratifying the split.

Rule: the FIRST genre listed. The 2013 metadata has one genre per song; the 2014 metadata
lists several, hyphen-joined (``SoulRB-Country-Folk``). The first one is the genre the
song was sampled under: across the 1,000 songs of 2014 each first-listed genre occurs
about 100 times (Blues and SoulRB share 100), the designed sampling of DEAM 2014
(Aljanaki et al. 2017), while the later ones are free tags. ``Hip-Hop`` is the one genre
with a hyphen in its name and is kept whole. Spelling is normalised case-insensitively to
one canonical name (``rock`` -> ``Rock``, ``hiphop``/``rap`` -> ``Hip-Hop``); genres with
fewer than ``min_songs`` songs in the loaded set are merged into ``Other``.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

OTHER = "Other"
UNKNOWN = "Unknown"
DEFAULT_MIN_SONGS = 20

_CANONICAL = (
    "Blues",
    "Classical",
    "Country",
    "Electronic",
    "Experimental",
    "Folk",
    "Hip-Hop",
    "International",
    "Jazz",
    "Pop",
    "Rock",
    "SoulRB",
)
_ALIASES = {
    "hiphop": "Hip-Hop",
    "rap": "Hip-Hop",
    "soul": "SoulRB",
    "rnb": "SoulRB",
    "r&b": "SoulRB",
    "world": "International",
}
_LOOKUP = {**{g.lower(): g for g in _CANONICAL}, **_ALIASES}
_MISSING = {"", "n/a", "na", "none", "unknown"}


def canonical_genre(name: str) -> str:
    """One genre name in its canonical spelling; unknown names keep their own spelling
    (title-cased) so a new genre is visible rather than silently renamed."""
    cleaned = " ".join(name.split())
    if cleaned.lower() in _MISSING:
        return UNKNOWN
    return _LOOKUP.get(cleaned.lower(), cleaned.title() if cleaned.islower() else cleaned)


def primary_genre(cell: str) -> str:
    """The first genre of a (possibly hyphen-joined) metadata genre cell."""
    protected = " ".join(cell.split()).replace("Hip-Hop", "Hip\0Hop").replace("hip-hop", "Hip\0Hop")
    first = protected.split("-")[0].replace("\0", "-")
    return canonical_genre(first)


def merge_rare(genres: pd.Series, min_songs: int = DEFAULT_MIN_SONGS) -> pd.Series:
    """Genres with fewer than ``min_songs`` songs become ``Other``, so every stratum is
    big enough to put songs in all three splits."""
    counts = genres.value_counts()
    rare = set(counts.index[counts < min_songs]) | {UNKNOWN}
    return genres.where(~genres.isin(rare), OTHER)


def primary_genres(cells: pd.Series, min_songs: int = DEFAULT_MIN_SONGS) -> pd.Series:
    """Primary genre per song (index kept), rare ones merged."""
    return merge_rare(cells.map(primary_genre).astype(str), min_songs)


def genre_names(genres: Iterable[str]) -> list[str]:
    """Sorted distinct genres, the order strata are split in (fixes the random stream)."""
    return sorted(set(genres))
