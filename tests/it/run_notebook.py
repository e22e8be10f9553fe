"""Executes a notebook with nbclient (the test's runner): fails on the first
cell that raises, prints each cell's text output, and checks the committed
file carries no outputs.

usage: run_notebook.py NOTEBOOK
"""
import sys

import nbclient
import nbformat

path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
for cell in nb.cells:
    if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None):
        raise SystemExit(f"{path}: committed with outputs (clear them before committing)")
client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": "."}})
client.execute()
for cell in nb.cells:
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            print(o["text"], end="")
print(f"executed {sum(c.cell_type == 'code' for c in nb.cells)} code cells")
