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
