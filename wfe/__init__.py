"""wfe: a workflow engine that keeps every output in a content-addressed store."""

from __future__ import annotations

from ._codecs import ARTIFACT_LIST, Codec, register_codec
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
from ._fsio import StorageIO
from ._functions import Input, Output, function
from ._models import Artifact, Edge, FunctionSpec, Node, RunManifest, WorkflowGraph, load_workflow
from ._runner import RunResult, run
from ._store import Store, open_store
from ._task import scratch_dir

__version__ = "0.1.0"

__all__ = [
    "ARTIFACT_LIST",
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
    "WorkflowError",
    "WorkflowGraph",
    "function",
    "load_workflow",
    "open_store",
    "register_codec",
    "run",
    "scratch_dir",
]
