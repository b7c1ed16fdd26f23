"""The dashboard's pages in sidebar order: a new page is one module here with `render(view)` plus one line below.

The folder is not called pages/: Streamlit takes a pages/ folder beside app.py for its own multipage app and would
list and run each file here as a page of its own.
"""

from dashboard.screens import accuracy, compression, latency, memory, privacy, runs, stress

PAGES = {"Runs": runs.render, "Accuracy": accuracy.render, "Latency": latency.render, "Memory": memory.render,
         "Privacy": privacy.render, "Compression": compression.render, "Stress": stress.render}
