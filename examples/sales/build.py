"""The sales report of workflow.yaml, built in Python: run it, or write it as a workflow file.

    python examples/sales/build.py                 # run on ./.wfe (or $WFE_STORE)
    python examples/sales/build.py --yaml OUT.yaml # write the workflow file (beside sales_functions.py)
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from sales_functions import attainment, render_report, revenue_by_month, revenue_by_region, summary  # noqa: E402

import wfe  # noqa: E402


def build() -> wfe.Workflow:
    """The same graph as workflow.yaml, so it has the same workflow digest and shares its cache."""
    wf = wfe.Workflow("sales-report", base_dir=HERE)
    sales = wf.file("sales.csv", mime="text/csv")
    targets = wf.file("targets.json", mime="application/json")
    by_region = wf.node(revenue_by_region, sales, id="by_region")
    by_month = wf.node(revenue_by_month, sales, id="by_month", months=6)
    regions = wf.node(attainment, by_region, targets)
    wf.node(render_report, by_month, regions, id="report", title="Sales 2026")
    wf.node(summary, regions)
    return wf


def main(argv: list[str]) -> int:
    wf = build()
    if argv[:1] == ["--yaml"] and len(argv) == 2:
        wf.to_yaml(argv[1])
        return 0
    result = wfe.run(wf, None)
    for node_id, record in result.manifest.nodes.items():
        print(node_id, record.status, *(a.digest for a in record.outputs))
    return 0 if result.status == "succeeded" else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
