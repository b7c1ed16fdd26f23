"""The dashboard's pages in sidebar order: a new page is one module here with `render(view)` plus one line below.

The folder is not called pages/: Streamlit takes a pages/ folder beside app.py for its own multipage app and would
list and run each file here as a page of its own.
"""

from dashboard.screens import accuracy, compare, compression, latency, launch, memory, privacy, runs, stress

PAGES = {"Runs": runs.render, "Compare": compare.render, "Accuracy": accuracy.render, "Latency": latency.render,
         "Memory": memory.render, "Privacy": privacy.render, "Compression": compression.render,
         "Stress": stress.render, "Launch": launch.render}
# Pages about the runs folder rather than the selected runs: drawn with no run selected, and following their own jobs
# rather than the selected runs.
FOLDER_PAGES = {"Launch"}
