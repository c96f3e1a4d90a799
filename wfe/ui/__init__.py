"""``wfe ui``: a local web app that shows a store's runs, nodes, outputs and artifacts, read only.

Starlette, uvicorn and Jinja2 (the ``ui`` extra) are imported only here, so
``import wfe`` and the other commands never load them.
"""

from __future__ import annotations

from ._app import create_app
from ._serve import serve

__all__ = ["create_app", "serve"]
