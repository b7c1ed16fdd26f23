"""MovieLens-100K from the installed recbole wheel, with every item rendered as text."""

from __future__ import annotations

import hashlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from edgefleet.errors import DataError

# The 19 MovieLens-100K genres in the dataset's own order ("unknown" included).
GENRES: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
_ARTICLE = re.compile(r"^(?P<rest>.*), (?P<article>The|A|An|Les|La|Le|L'|Il|Das|Der|Die|El)$")


@dataclass(frozen=True)
class Catalogue:
    """Items (dense index 0..n-1) with their text; interactions as dense user/item indices."""

    item_raw_ids: np.ndarray
    titles: list[str]
    years: list[str]
    genres: np.ndarray  # (n_items, 19) bool
    user_raw_ids: np.ndarray
    interactions: pd.DataFrame  # columns user, item, rating, timestamp (dense indices)
    source_digest: str

    @property
    def n_items(self) -> int:
        return len(self.titles)

    @property
    def n_users(self) -> int:
        return len(self.user_raw_ids)

    def item_text(self, i: int) -> str:
        """`Toy Story (1995) Animation Children's Comedy`: what the item tower reads."""
        names = [GENRES[g] for g in np.flatnonzero(self.genres[i])]
        year = f" ({self.years[i]})" if self.years[i] else ""
        return f"{self.titles[i]}{year} {' '.join(names)}".strip()

    def item_texts(self) -> list[str]:
        return [self.item_text(i) for i in range(self.n_items)]


def default_data_dir() -> Path:
    """The ml-100k folder inside the installed recbole package (found without importing recbole)."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("MovieLens-100K not found: install it with `pip install --no-deps recbole==1.2.1` (make setup)")
    return Path(list(spec.submodule_search_locations)[0]) / "dataset_example" / "ml-100k"


def _read(path: Path, required: list[str]) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"missing data file {path}")
    try:
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot parse {path}: {exc}") from None
    frame.columns = [c.split(":", 1)[0] for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"{path.name} lacks column(s) {', '.join(missing)}")
    if frame.empty:
        raise DataError(f"{path.name} has no rows")
    return frame


def _title(raw: str) -> str:
    """`Usual Suspects, The` -> `The Usual Suspects`; the text encoder reads natural word order."""
    match = _ARTICLE.match(raw.strip())
    if not match:
        return raw.strip()
    article = match["article"]
    sep = "" if article.endswith("'") else " "
    return f"{article}{sep}{match['rest']}"


def load_movielens(data_dir: Path | None = None) -> Catalogue:
    """Read ml-100k.item and ml-100k.inter; raise DataError with one line on anything missing or malformed."""
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    items = _read(data_dir / "ml-100k.item", ["item_id", "movie_title", "release_year", "class"])
    inter = _read(data_dir / "ml-100k.inter", ["user_id", "item_id", "rating", "timestamp"])
    digest = hashlib.sha256()
    for name in ("ml-100k.item", "ml-100k.inter"):
        digest.update((data_dir / name).read_bytes())

    item_raw = items["item_id"].to_numpy()
    item_index = {raw: i for i, raw in enumerate(item_raw)}
    genre_pos = {g: j for j, g in enumerate(GENRES)}
    genres = np.zeros((len(items), len(GENRES)), dtype=bool)
    for i, cls in enumerate(items["class"]):
        for name in cls.split():
            if name not in genre_pos:
                raise DataError(f"ml-100k.item row {i + 2}: unknown genre {name!r}")
            genres[i, genre_pos[name]] = True

    unknown = ~inter["item_id"].isin(item_index.keys())
    if unknown.any():
        raise DataError(f"ml-100k.inter references {int(unknown.sum())} unknown item id(s)")
    try:
        timestamps = inter["timestamp"].astype(float).astype(np.int64)
        ratings = inter["rating"].astype(float)
    except ValueError as exc:
        raise DataError(f"ml-100k.inter has a non-numeric value: {exc}") from None
    user_raw, user_idx = np.unique(inter["user_id"].astype(int).to_numpy(), return_inverse=True)
    frame = pd.DataFrame({
        "user": user_idx.astype(np.int32),
        "item": inter["item_id"].map(item_index).to_numpy(np.int32),
        "rating": ratings.to_numpy(np.float32),
        "timestamp": timestamps.to_numpy(),
    })
    return Catalogue(
        item_raw_ids=item_raw,
        titles=[_title(t) for t in items["movie_title"]],
        years=list(items["release_year"]),
        genres=genres,
        user_raw_ids=user_raw,
        interactions=frame,
        source_digest=digest.hexdigest(),
    )
