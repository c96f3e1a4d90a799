"""wfe: a workflow engine that keeps every output in a content-addressed store."""

from __future__ import annotations

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
    StoreError,
    StoreURLError,
    UnknownFunctionError,
    WfeError,
    WorkflowError,
)
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

# What a user meets is wfe's: ``wfe.WorkflowError``, not ``wfe._errors.WorkflowError``, in reprs and tracebacks.
# (Pickling finds each class by this name too: every one of them is an attribute of this module.)
for _name in __all__:
    _public = globals()[_name]
    if isinstance(_public, type) and _public.__module__.startswith("wfe."):
        _public.__module__ = __name__
del _name, _public
