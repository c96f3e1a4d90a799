"""wfe: a workflow engine that keeps every output in a content-addressed store."""

from __future__ import annotations

from ._errors import (
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
from ._functions import Input, function
from ._models import Artifact, Edge, FunctionSpec, Node, RunManifest, WorkflowGraph, load_workflow
from ._runner import RunResult, run
from ._store import Store, open_store

__version__ = "0.1.0"

__all__ = [
    "Artifact",
    "BlobNotFoundError",
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
    "RunManifest",
    "RunResult",
    "Store",
    "StoreError",
    "StoreURLError",
    "UnknownFunctionError",
    "WfeError",
    "WorkflowError",
    "WorkflowGraph",
    "function",
    "load_workflow",
    "open_store",
    "run",
]
