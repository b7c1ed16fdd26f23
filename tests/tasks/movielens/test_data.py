"""MovieLens loading: item text rendering and clear errors on malformed files."""

import pytest

from edgefleet.errors import DataError
from edgefleet.tasks.movielens.data import _title, load_movielens

ITEM_HEADER = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"


def write(tmp_path, items: str, inter: str):
    (tmp_path / "ml-100k.item").write_text(items)
    (tmp_path / "ml-100k.inter").write_text(inter)
    return tmp_path


def test_item_text_and_dense_indices(tmp_path):
    d = write(tmp_path, ITEM_HEADER + "10\tUsual Suspects, The\t1995\tCrime Thriller\n20\tFargo\t1996\tDrama\n",
              INTER_HEADER + "7\t20\t4\t100\n7\t10\t5\t50\n3\t10\t1\t70\n")
    cat = load_movielens(d)
    assert cat.item_texts() == ["The Usual Suspects (1995) Crime Thriller", "Fargo (1996) Drama"]
    assert cat.n_users == 2 and cat.user_raw_ids.tolist() == [3, 7]
    assert sorted(cat.interactions[["user", "item"]].itertuples(index=False)) == [(0, 0), (1, 0), (1, 1)]


def test_titles_move_trailing_articles():
    assert _title("Shawshank Redemption, The") == "The Shawshank Redemption"
    assert _title("Amateur, L'") == "L'Amateur"
    assert _title("Seven (Se7en)") == "Seven (Se7en)"


def test_missing_column_is_one_clear_error(tmp_path):
    d = write(tmp_path, ITEM_HEADER + "1\tX\t1995\tDrama\n", "user_id:token\titem_id:token\n1\t1\n")
    with pytest.raises(DataError, match="lacks column.*rating"):
        load_movielens(d)


def test_unknown_item_and_genre(tmp_path):
    d = write(tmp_path, ITEM_HEADER + "1\tX\t1995\tDrama\n", INTER_HEADER + "1\t2\t4\t1\n")
    with pytest.raises(DataError, match="unknown item"):
        load_movielens(d)
    d = write(tmp_path, ITEM_HEADER + "1\tX\t1995\tSpaghetti\n", INTER_HEADER + "1\t1\t4\t1\n")
    with pytest.raises(DataError, match="unknown genre"):
        load_movielens(d)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="missing data file"):
        load_movielens(tmp_path)
