# %% [markdown]
# # Exploring the sales data, notebook style
#
# Cells as a notebook runs them (Jupyter, VS Code and PyCharm open `# %%` cells):
# functions defined right here, a workflow built from them, results read back,
# a function edited and the workflow run again. `python examples/notebook/explore.py`
# runs every cell in turn on the store `./.wfe` (or `$WFE_STORE`).

# %%
import csv
import io
import os
from pathlib import Path

import wfe

DATA = Path(__file__).resolve().parent.parent / "sales"
store = wfe.open_store(os.environ.get("WFE_STORE", "./.wfe"))


# %% Functions, typed: their MIME types come from the hints
@wfe.function(inputs=["text/csv"])
def units_by_product(sales: str) -> dict[str, int]:
    totals: dict[str, int] = {}
    for row in csv.DictReader(io.StringIO(sales)):
        totals[row["product"]] = totals.get(row["product"], 0) + int(row["units"])
    return totals


@wfe.function
def best_sellers(units: dict[str, int], *, top: int = 2) -> list[str]:
    return sorted(units, key=lambda product: -units[product])[:top]


# %% The workflow, built from the functions themselves
wf = wfe.Workflow("explore-sales", base_dir=DATA)
sales = wf.file("sales.csv", mime="text/csv")
units = wf.node(units_by_product, sales)
wf.node(best_sellers, units, top=2)
wf  # noqa: B018  (in a notebook, the cell shows the graph)

# %% Run it and read the results by node
result = wfe.run(wf, store)
print(result.status, result["units_by_product"], result["best_sellers"])
result  # noqa: B018  (in a notebook: the graph coloured by status, and the node table)

# %% Edit a function and run again: only what changed runs
@wfe.function
def best_sellers(units: dict[str, int], *, top: int = 2) -> list[str]:
    return sorted(units, key=lambda product: (-units[product], product))[:top]


again = wfe.run(wf, store)
print({node: record.status for node, record in again.manifest.nodes.items()})

# %% Any earlier output, by address
print(wfe.load("latest:units_by_product", store=store))
