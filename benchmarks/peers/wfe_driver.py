"""wfe driven from Python as a user's script drives it: ``wfe.run(WORKFLOW, STORE)``, then the last node's output read.

    python wfe_driver.py WORKFLOW STORE

Runs in wfe's own venv, like every peer in its own. Prints one JSON line:
the run's status and, per node, its status and output digests (as ``wfe run
--json`` prints them), and the size of the JSON of the last node's output,
read back verified and decoded.
"""

from __future__ import annotations

import json
import sys

import wfe


def main() -> None:
    workflow, store = sys.argv[1], sys.argv[2]
    result = wfe.run(workflow, store)
    nodes = result.manifest.nodes
    last = next(reversed(nodes))
    value = result[last]  # the final output, as the other tools hand theirs back
    report = {
        "status": result.status,
        "nodes": {
            node: {"status": record.status, "outputs": [{"digest": a.digest} for a in record.outputs]}
            for node, record in nodes.items()
        },
        "last": last,
        "size": len(value) if isinstance(value, (bytes, list)) else 1,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
