"""wfe: a workflow engine that keeps every output in a content-addressed store."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._errors import (
    AddressError,
    BlobNotFoundError,
    ExecutorError,
    FunctionError,
    FunctionNotAllowedError,
    IntegrityError,
    InvalidDigestError,
    InvalidNameError,
    NodeError,
    NotFoundError,
    RecordError,
    StoreError,
    StoreURLError,
    UnknownFunctionError,
    WfeError,
    WorkflowError,
)

if TYPE_CHECKING:
    from .engine._runner import RunResult, run
    from .engine._scratch import scratch_dir
    from .graph._builder import Workflow
    from .graph._codecs import ARTIFACT_LIST, Codec, register_codec
    from .graph._functions import Input, Output, function
    from .graph._load import load_workflow
    from .graph._model import Artifact, Edge, Node, WorkflowGraph
    from .graph._specs import FunctionSpec
    from .ops._address import load
    from .storage._base import StorageIO
    from .store._manifest import RunManifest
    from .store._store import Store, open_store

__version__ = "0.1.0"

__all__ = [
    "ARTIFACT_LIST",
    "AddressError",
    "Artifact",
    "BlobNotFoundError",
    "Codec",
    "Edge",
    "ExecutorError",
    "FunctionError",
    "FunctionNotAllowedError",
    "FunctionSpec",
    "Input",
    "IntegrityError",
    "InvalidDigestError",
    "InvalidNameError",
    "Node",
    "NodeError",
    "NotFoundError",
    "Output",
    "RecordError",
    "RunManifest",
    "RunResult",
    "StorageIO",
    "Store",
    "StoreError",
    "StoreURLError",
    "UnknownFunctionError",
    "WfeError",
    "Workflow",
    "WorkflowError",
    "WorkflowGraph",
    "function",
    "load",
    "load_workflow",
    "open_store",
    "register_codec",
    "run",
    "scratch_dir",
]

# Everything but the errors is imported on first use: ``import wfe`` then costs what a program uses of it
# (a run does not need the builder, addresses or record models it never reads). Name -> defining module.
_LAZY = {
    "ARTIFACT_LIST": "graph._codecs",
    "Artifact": "graph._model",
    "Codec": "graph._codecs",
    "Edge": "graph._model",
    "FunctionSpec": "graph._specs",
    "Input": "graph._functions",
    "Node": "graph._model",
    "Output": "graph._functions",
    "RunManifest": "store._manifest",
    "RunResult": "engine._runner",
    "StorageIO": "storage._base",
    "Store": "store._store",
    "Workflow": "graph._builder",
    "WorkflowGraph": "graph._model",
    "function": "graph._functions",
    "load": "ops._address",
    "load_workflow": "graph._load",
    "open_store": "store._store",
    "register_codec": "graph._codecs",
    "run": "engine._runner",
    "scratch_dir": "engine._scratch",
}


def _own(public: Any) -> Any:
    # What a user meets is wfe's: ``wfe.WorkflowError``, not ``wfe._errors.WorkflowError``, in reprs and
    # tracebacks. (Pickling finds each class by this name too: every one of them is an attribute of this module.)
    if isinstance(public, type) and public.__module__.startswith(f"{__name__}."):
        public.__module__ = __name__
    return public


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = _own(getattr(importlib.import_module(f"{__name__}.{module}"), name))
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


for _name in __all__:
    if _name not in _LAZY:
        _own(globals()[_name])
del _name
