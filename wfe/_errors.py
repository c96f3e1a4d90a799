"""Every error wfe raises on purpose.

::

    WfeError
    ├── IntegrityError            stored bytes do not match their digest
    ├── InvalidDigestError        (ValueError) not ``sha256:`` + 64 lowercase hex
    ├── InvalidNameError          (ValueError) a name that cannot be stored
    ├── AddressError              (ValueError) text that is neither RUN:NODE[:PORT] nor a digest (prefix)
    ├── NotFoundError             (LookupError) a record is missing
    │   ├── BlobNotFoundError     (FileNotFoundError) no blob under a digest
    │   └── NodeError             a node's function raised, so the output asked for does not exist
    ├── WorkflowError             (ValueError) the workflow file or graph is invalid, before anything runs
    ├── RecordError               (ValueError) a record or a part of a graph has a field of the wrong shape
    ├── FunctionError             a function cannot be resolved
    │   ├── UnknownFunctionError  (WorkflowError, LookupError) no such function
    │   └── FunctionNotAllowedError (PermissionError) outside the allow-list
    ├── StoreURLError             (ValueError) a store URL or option is invalid
    ├── StoreError                (OSError) the backend failed
    │   ├── Damaged               an entry the store never wrote there (a link, FIFO, device, oversized record)
    │   └── NoHardLink            this filesystem takes no more hard links
    └── ExecutorError             an executor cannot be built or cannot reach the store

Errors of backend libraries (fsspec, botocore, storage3) are translated into
these at one boundary, :mod:`wfe.storage` (``translate``).
"""

from __future__ import annotations


class WfeError(Exception):
    """Base of every error wfe raises on purpose."""


class IntegrityError(WfeError):
    """Stored bytes do not hash to the digest they are stored under."""

    def __init__(self, digest: str, detail: str = "") -> None:
        self.digest = digest
        self.detail = detail
        message = f"integrity check failed for {digest}"
        super().__init__(f"{message}: {detail}" if detail else message)

    def __reduce__(self) -> tuple[type[IntegrityError], tuple[str, str]]:  # sent between processes whole
        return type(self), (self.digest, self.detail)


class InvalidDigestError(WfeError, ValueError):
    """A string that is not a valid digest (``sha256:`` + 64 lowercase hex)."""


class InvalidNameError(WfeError, ValueError):
    """A name (node, function, workflow, run) that cannot be stored."""


class AddressError(WfeError, ValueError):
    """Text that is not an address: neither ``RUN:NODE[:PORT]`` nor a digest (or a long enough prefix of one)."""


class NotFoundError(WfeError, LookupError):
    """A record (config, action, run, function) does not exist."""

    def __str__(self) -> str:  # LookupError would quote the message
        return str(self.args[0]) if self.args else ""


class BlobNotFoundError(NotFoundError, FileNotFoundError):
    """No blob is stored under the digest."""


class WorkflowError(WfeError, ValueError):
    """The workflow file or graph is invalid."""


class RecordError(WfeError, ValueError):
    """A record (an artifact, a node, a run record, a function spec) has a field of the wrong shape.

    ``where`` is the field's place (``nodes.3.id``; empty for the record itself), ``what`` the reason.
    """

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}" if where else what)
        self.where = where
        self.what = what

    def __reduce__(self) -> tuple[type[RecordError], tuple[str, str]]:
        return type(self), (self.where, self.what)


class FunctionError(WfeError):
    """A function name cannot be resolved to code."""


class UnknownFunctionError(FunctionError, WorkflowError, LookupError):
    """No registered or allowed function has this name (a workflow naming one is a :class:`WorkflowError`)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class FunctionNotAllowedError(FunctionError, PermissionError):
    """A reference names code outside the allow-list."""


class StoreURLError(WfeError, ValueError):
    """A store URL or store option is invalid."""


class StoreError(WfeError, OSError):
    """The storage backend failed (network, permissions, missing bucket)."""


class NoHardLink(StoreError):
    """This filesystem (or this file) takes no more hard links: use another way."""


class Damaged(StoreError):
    """An entry the store would never have written there: a link, FIFO or device, or one too large to be a record.

    Raised instead of reading it (or following it): verify reports it, the
    action cache takes it for a miss, and everything else stops with one line.
    """


class ExecutorError(WfeError):
    """An executor cannot be built (unknown name, missing extra, unreachable scheduler) or cannot reach the store."""


class NodeError(NotFoundError):
    """A node's function raised, so it has no outputs: raised by reading one (``result["node"]``, ``wfe.load``).

    ``node_id`` names the node, ``message`` is its recorded error and
    ``traceback`` the function's formatted traceback ("" if none was kept).
    A run does not raise it: a failed node fails the run, whose status says so.
    """

    def __init__(self, node_id: str, message: str, traceback: str = "") -> None:
        self.node_id = node_id
        self.message = message
        self.traceback = traceback
        super().__init__(f"node {node_id!r} failed: {message}")

    def __reduce__(self) -> tuple[type[NodeError], tuple[str, str, str]]:  # sent between processes whole
        return type(self), (self.node_id, self.message, self.traceback)
