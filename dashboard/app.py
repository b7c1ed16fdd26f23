"""EdgeFleet dashboard: `streamlit run dashboard/app.py -- --runs DIR` (or `edgefleet dashboard --runs DIR`).

It reads run directories, and its Launch page starts `edgefleet` commands into new ones. While a selected run is
still going, the page re-renders itself every few seconds (a Streamlit fragment); the loaders re-read a run only when
its files changed.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

import streamlit as st

from dashboard import loaders
from dashboard.screens import FOLDER_PAGES, PAGES
from dashboard.view import View

REFRESH_S = 3


def runs_root() -> Path:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs", default=os.environ.get("EDGEFLEET_RUNS", "runs"))
    args, _ = parser.parse_known_args(sys.argv[1:])
    return Path(args.runs)


def sidebar(root: Path) -> tuple[str, View]:
    st.sidebar.title("EdgeFleet")
    page = st.sidebar.radio("Page", list(PAGES), key="page")
    runs = loaders.all_runs(root)
    if not runs:
        return page, View([], None, None, root)
    names = [r.name for r in runs]
    # The newest readable simulation by default: the one a user just started or finished.
    default = [r.name for r in runs if r.is_simulation and r.status != "corrupt"][:1] or names[:1]
    chosen = st.sidebar.multiselect("Runs (pick two or more to compare)", names, default=default, key="runs")
    picked = [r for r in runs if r.name in chosen]
    offered = sorted({t for r in picked for t in loaders.tiers(str(r.path), loaders.data.signature(r.path))})
    tiers = st.sidebar.multiselect("Tiers", offered, key="tiers")
    most = max([int((r.summary or {}).get("rounds") or (r.config or {}).get("sim", {}).get("rounds") or 1)
                for r in picked] or [1])
    rounds = st.sidebar.slider("Rounds", 1, max(most, 2), (1, max(most, 2)), key="rounds") if picked else None
    st.sidebar.toggle("Follow running runs", value=True, key="live")
    return page, View(picked, tiers or None, rounds, root)


def main() -> None:
    st.set_page_config(page_title="EdgeFleet", layout="wide")
    root = runs_root()
    page, view = sidebar(root)
    if not root.is_dir():
        st.info(f"No run directory at {root}. Start one with `edgefleet simulate --out {root}/NAME`, then come back.")
        return
    if not view.runs and page != "Runs" and page not in FOLDER_PAGES:
        st.info(f"No runs found under {root} yet (the Launch page starts one).")
        return
    live = st.session_state.get("live", True) and page not in FOLDER_PAGES and \
        any(r.status == "running" for r in view.runs)

    @st.fragment(run_every=REFRESH_S if live else None)
    def body() -> None:
        fresh = View([loaders.run(str(r.path), str(root), loaders.data.signature(r.path)) for r in view.runs],
                     view.tiers, view.rounds, root)
        try:
            PAGES[page](fresh)
        except Exception as exc:  # one unreadable file must not take the page down with a traceback
            st.error(f"This page could not be drawn from the selected runs: {type(exc).__name__}: {exc}")
            print(traceback.format_exc(), file=sys.stderr)

    body()


if __name__ == "__main__":  # Streamlit runs this file as __main__
    main()
