"""The Launch page: start `edgefleet simulate`, `stress` or `compress` from the common settings or a pasted TOML,
checked by the config schema before anything starts; follow the dashboard's jobs live, stop one, resume a stopped
simulation (dashboard/commands.py builds the arguments, dashboard/jobs.py keeps the jobs)."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import streamlit as st

from dashboard import commands, jobs
from dashboard.commands import COMMANDS, Launch
from dashboard.view import View
from edgefleet.config import Config, load_config
from edgefleet.errors import EdgeFleetError

REFRESH_S = 3
LOCAL = ("Jobs run on this machine as `python -m edgefleet COMMAND ...` (no shell, no command typed here), each "
         "into a new run directory under {root}. `edgefleet dashboard` listens on 127.0.0.1 only: keep it so, "
         "since whoever reaches this page can start and stop runs here. Ctrl-C on the dashboard stops its jobs too.")


def render(view: View) -> None:
    st.header("Launch")
    root = Path(view.root)
    st.caption(LOCAL.format(root=root))
    _form(root)
    _jobs(root)


def _form(root: Path) -> None:
    left, right = st.columns([2, 1])
    command = left.radio("Command", list(COMMANDS), horizontal=True, key="launch-command")
    preset = right.selectbox("Preset", [*COMMANDS[command], None], key=f"launch-preset-{command}",
                             format_func=lambda p: p or "none (the TOML's, else default)")
    base = load_config(None, preset)  # the values a field left empty keeps, shown as its placeholder
    with st.form(f"launch-{command}"):
        name = st.text_input("Run name: a new directory under the runs folder",
                             placeholder=f"{command}-<date>-<time> when left empty", key=f"launch-name-{command}")
        settings = {"simulate": _simulate, "stress": _stress, "compress": _compress}[command](root, base)
        toml = st.text_area("TOML config (optional): the fields above override it, as `--set` overrides `--config`",
                            height=110, key=f"launch-toml-{command}", placeholder="[sim]\ndevices = 50")
        go = st.form_submit_button("Start", type="primary")
    if go:
        launch = Launch(command, name.strip() or time.strftime(f"{command}-%Y%m%d-%H%M%S"), preset, settings, toml)
        try:
            job = jobs.start(root, commands.plan(root, launch))
        except EdgeFleetError as exc:
            st.error(str(exc))
            return
        st.session_state["launch-started"] = f"Started {job.command} into {job.run_dir} (pid {job.pid})."
        st.rerun()  # the whole page: the job list starts following the new job
    if "launch-started" in st.session_state:
        st.success(st.session_state.pop("launch-started"))


def _number(col, label: str, preset: object, step: int | float = 1) -> object:
    return col.number_input(label, value=None, step=step, placeholder=f"preset: {preset}",
                            format="%d" if isinstance(step, int) else "%g")


def _model(root: Path, label: str) -> Path | None:
    found = commands.artifacts(root)
    return st.selectbox(label, [*found, None], format_func=lambda p: "none: compress one into the run first (slow)"
                        if p is None else f"{p.parent.relative_to(root)} ({p.stat().st_size:,} B)")


def _simulate(root: Path, base: Config) -> dict[str, object]:
    c = st.columns(3)
    s = {"sim.devices": _number(c[0], "Devices", base.sim.devices),
         "sim.rounds": _number(c[1], "Rounds", base.sim.rounds),
         "sim.cohort": _number(c[2], "Cohort (devices per round)", base.sim.cohort)}
    c = st.columns([2, 1])
    with c[0]:
        s["sim.model"] = _model(root, "Model (artifacts that compress wrote under the runs folder)")
    s["sim.policy"] = c[1].selectbox("Policy", [None, "fixed", "adaptive"],
                                     format_func=lambda p: p or f"preset's ({base.sim.policy})")
    c = st.columns(4, vertical_alignment="bottom")
    p = base.privacy
    s["privacy.noise"] = _number(c[0], "DP noise multiplier (empty: no DP)", p.noise if p.noise is not None
                                 else "none", 0.1)
    s["privacy.clip"] = _number(c[1], "DP clipping norm", p.clip, 0.01)
    s["privacy.adaptive"] = c[2].checkbox("Adaptive clipping", value=False) or None
    s["privacy.secagg"] = c[3].checkbox("SecAgg+", value=False) or None
    return s


def _stress(root: Path, base: Config) -> dict[str, object]:
    s = {"sim.model": _model(root, "Model to stress (artifacts that compress wrote under the runs folder)")}
    c = st.columns(3)
    s.update({"stress.devices": _number(c[0], "Policy fleet: devices", base.stress.devices),
              "stress.rounds": _number(c[1], "Policy fleet: rounds", base.stress.rounds),
              "stress.cohort": _number(c[2], "Policy fleet: cohort", base.stress.cohort)})
    return s


def _compress(root: Path, base: Config) -> dict[str, object]:
    st.caption("compress trains the teacher and the students (minutes with the tiny preset; the artifacts cache "
               "makes a repeat fast). Other settings: paste a TOML.")
    return {}


def _jobs(root: Path) -> None:
    st.subheader("Jobs started from this dashboard")
    listed = jobs.read(root)
    if not listed:
        st.info("None yet.")
        return

    @st.fragment(run_every=REFRESH_S if any(jobs.alive(j) for j in listed) else None)
    def follow() -> None:
        for job in jobs.read(root):
            _job(root, job)

    follow()


def _job(root: Path, job: jobs.Job) -> None:
    state = jobs.state(job)
    with st.container(border=True, key=f"job-{job.name}"):
        head, buttons = st.columns([5, 1])
        minutes = (time.time() - job.started) / 60
        head.markdown(f"**{job.name}** · `{job.command}` · **{state}** · started "
                      f"{time.strftime('%H:%M:%S', time.localtime(job.started))} ({minutes:.0f} min ago) · "
                      f"pid {job.pid}")
        if state == "running" and buttons.button("Stop", key=f"stop-{job.name}"):
            jobs.stop(root, job.name)
            st.rerun()
        if jobs.resumable(job) and buttons.button("Resume", key=f"resume-{job.name}", type="primary"):
            jobs.resume(root, job.name)
            st.rerun()
        if job.rounds:
            done = jobs.rounds_done(job)
            head.progress(min(done / job.rounds, 1.0), text=f"{done} of {job.rounds} rounds committed")
        if jobs.resumable(job):
            st.caption(f"Its committed rounds are kept. Resume continues after the last one "
                       f"(`edgefleet simulate --resume {job.run_dir}`).")
        elif state in ("stopped", "failed"):
            st.caption("Nothing to resume: start it again under a new name (the log says why it ended).")
        elif state == "finished":
            st.caption(f"Finished: pick {job.name} in the sidebar to see its figures, or beside others on the "
                       "Compare page.")
        st.code(jobs.log_tail(job) or "(no output yet)", language=None, wrap_lines=True)
        with st.expander("Command"):
            st.code(shlex.join(job.argv), language=None)
