"""Cached loaders: each is keyed by the run directory and the signature of its files, so a page re-reads a run
exactly when something in it changed (a new round committed, a report written) and never otherwise."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import data


@st.cache_data(show_spinner=False, max_entries=256)
def run(path: str, root: str, sig: tuple) -> data.Run:
    return data.load_run(Path(path), Path(root))


@st.cache_data(show_spinner=False, max_entries=64)
def rounds(path: str, sig: tuple) -> tuple[pd.DataFrame, str | None]:
    return data.rounds_table(Path(path))


@st.cache_data(show_spinner=False, max_entries=64)
def devices(path: str, sig: tuple) -> tuple[pd.DataFrame, str | None]:
    return data.devices_table(Path(path))


@st.cache_data(show_spinner=False, max_entries=64)
def tiers(path: str, sig: tuple) -> list[str]:
    return data.tiers(Path(path))


def all_runs(root: Path) -> list[data.Run]:
    return [run(str(p), str(root), data.signature(p)) for p in data.find_runs(root)]


def tables(r: data.Run) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    sig = data.signature(r.path)
    rs, e1 = rounds(str(r.path), sig)
    ds, e2 = devices(str(r.path), sig)
    return rs.assign(run=r.name) if len(rs) else rs, ds.assign(run=r.name) if len(ds) else ds, \
        [e for e in (e1, e2) if e]
