"""Local disk (``file://`` and plain paths), using the OS directly rather than fsspec.

One rule for everything a store holds, whoever put it there: only regular
files are read, and nothing is followed out of the store root. On local
disk an entry that is a symbolic link, FIFO, device or socket, and a folder
below the root that is a symbolic link, is :class:`~wfe.storage.Damaged`: never read,
written, listed through or deleted through (deleting the entry itself is
fine). The root itself may be a link its user chose. A read that is given a
``limit`` (records: ``MAX_RECORD_BYTES``) refuses a bigger entry as damaged
without loading it whole, on every backend in the same single request.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import itertools
import os
import stat
import time
from collections.abc import Iterator
from typing import IO, Any, BinaryIO

from .._errors import NoHardLink
from ._base import Hasher, Listed, Page, Staging, StorageIO
from ._fill import read_hashing
from ._translate import damaged, raise_os_error, too_large, translate


def _check_root(root: str) -> None:
    """A store folder that can never be made (it, or a folder above it, is a file) is a bad URL, said at once."""
    from .._errors import StoreURLError

    path = root
    while True:
        try:
            mode = os.stat(path).st_mode
        except (FileNotFoundError, NotADirectoryError):  # not there, or under a file: look further up
            parent = os.path.dirname(path)
            if parent == path:
                return
            path = parent
            continue
        except OSError:
            return  # unreadable: the first write says why
        if not stat.S_ISDIR(mode):
            where = "it" if path == root else f"{path}"
            raise StoreURLError(f"local store {root} cannot be a folder: {where} is a file")
        return


class LocalIO(StorageIO):
    """Local disk, using the OS directly: temp file in ``tmp/``, then a hard link (or rename).

    Temp files all live in one folder and are linked into place: on ext4 that
    is several times cheaper than creating each file in its own fan-out
    folder, because new inodes are then allocated side by side.

    Nothing is followed out of the root (see the module's docstring): a file
    is opened with ``O_NOFOLLOW | O_NONBLOCK`` and read only if ``fstat`` says
    it is a regular file, so a link, FIFO or device is refused at once; every
    folder between the root and a path is checked once per process (one
    ``lstat`` each, kept in ``_folders``) before anything goes through it, so
    the per-node paths pay a set lookup, not a system call.
    """

    exclusive_publish = True  # os.link refuses an existing target
    hard_links = True  # link_new and touch exist (leases are links to one file per run)
    remote = False  # a call costs microseconds: nothing to gain from sending them together

    def __init__(self, fs: Any, root: str) -> None:
        super().__init__(fs, os.path.abspath(root))
        _check_root(self.root)
        self._folders: set[str] = set()  # folders under the root known to be real folders, not links
        self._tmp = f"{self.root}/tmp"

    @property
    def protocol(self) -> str:
        return "file"  # ``fs`` may be None: local disk is reached through os, not fsspec

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}"  # ``rel`` is built by wfe: relative, "/"-separated

    def local_path(self, rel: str) -> str | None:
        return self.path(rel)

    def makedirs(self, directory: str) -> None:
        """Make ``directory`` (under the root) and the folders above it; Damaged if one is a link."""
        if directory not in self._folders:
            with translate("mkdir", directory):
                self._check_folders(directory, make=True)

    def _check_folders(self, directory: str, *, make: bool = False) -> None:
        """Check each folder from the root down to ``directory`` (making it if ``make``): a real folder, no link.

        :class:`Damaged` if one is a symbolic link; otherwise the OSError met
        (FileNotFoundError if one is missing and not ``make``, NotADirectoryError
        for a file where a folder belongs), for the caller to translate.
        Checked folders are remembered.
        """
        if not directory.startswith(self.root + "/"):
            if directory == self.root and make:
                os.makedirs(directory, exist_ok=True)  # the root itself may be a link: the user's choice
            return
        path = self.root
        for part in directory[len(self.root) + 1 :].split("/"):
            path = f"{path}/{part}"
            if path in self._folders:
                continue
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                if not make:
                    raise
                if path.rpartition("/")[0] == self.root:
                    os.makedirs(self.root, exist_ok=True)
                try:
                    os.mkdir(path)
                    self._folders.add(path)
                    continue
                except FileExistsError:  # made by another writer meanwhile: check what it is
                    mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                raise damaged(path, mode)
            if not stat.S_ISDIR(mode):
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            self._folders.add(path)

    def _folder_of(self, path: str) -> None:
        """Check the folders above ``path`` (FileNotFoundError if one is missing); a set lookup once checked."""
        directory = path.rpartition("/")[0]
        if directory not in self._folders:
            self._check_folders(directory)

    def read_bytes(self, rel: str, limit: int | None = None) -> bytes:
        return self._read(rel, limit, None)

    def read_hashed(self, rel: str, hasher: Hasher) -> bytes:
        return self._read(rel, None, hasher)

    def _read(self, rel: str, limit: int | None, hasher: Hasher | None) -> bytes:
        path = f"{self.root}/{rel}"
        try:
            directory = path.rpartition("/")[0]
            if directory not in self._folders:
                self._check_folders(directory)
            fd = os.open(path, _READ_FLAGS)
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    raise damaged(path, info.st_mode)
                size = info.st_size
                if limit is not None and size > limit:
                    raise too_large(path, limit)
                if size < _SMALL:
                    data = os.read(fd, size + 1)  # a short read of a regular file means its end
                    if len(data) <= size:
                        if hasher is not None:
                            hasher.update(data)
                        return data
                elif hasher is not None:
                    return read_hashing(fd, size, hasher)
                else:
                    data = b""
                with io.FileIO(fd, "rb", closefd=False) as handle:
                    if limit is None:
                        data += handle.readall()
                        if hasher is not None:
                            hasher.update(data)
                        return data
                    data += handle.read(limit + 1 - len(data))  # it may have grown since fstat
                    if len(data) > limit:
                        raise too_large(path, limit)
                    return data
            finally:
                os.close(fd)
        except FileNotFoundError:
            raise  # the usual miss (an action not yet cached): passed on as it is, at the least cost
        except OSError as exc:
            raise_os_error("read", path, exc)

    def open_read(self, rel: str) -> BinaryIO:
        path = self.path(rel)
        try:
            self._folder_of(path)
            fd = os.open(path, _READ_FLAGS)
            try:
                mode = os.fstat(fd).st_mode
                if not stat.S_ISREG(mode):
                    raise damaged(path, mode)
                return os.fdopen(fd, "rb")
            except BaseException:
                os.close(fd)
                raise
        except OSError as exc:
            raise_os_error("open", path, exc)

    def exists(self, rel: str) -> bool:
        """Whether anything is at ``rel`` (a link too: it is never followed, and reads refuse it)."""
        path = f"{self.root}/{rel}"
        try:
            directory = path.rpartition("/")[0]
            if directory not in self._folders:
                self._check_folders(directory)
            os.lstat(path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise_os_error("check", path, exc)
        return True

    def _lstat(self, rel: str) -> os.stat_result:
        path = self.path(rel)
        try:
            self._folder_of(path)
            return os.lstat(path)  # of the entry itself: a link's own, never its target's
        except OSError as exc:
            raise_os_error("stat", path, exc)

    def size(self, rel: str) -> int:
        return self._lstat(rel).st_size

    def modified(self, rel: str) -> float | None:
        return self._lstat(rel).st_mtime

    def walk(self, prefix: str) -> Iterator[str]:
        """Every entry under ``prefix`` that is no folder (links, FIFOs too, for readers to refuse); links to
        folders and a linked ``prefix`` are :class:`Damaged`."""
        base = self.path(prefix).rstrip("/")
        try:
            self._check_folders(base)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise_os_error("list", base, exc)
        pending = [(base, prefix.rstrip("/"))]
        while pending:
            directory, rel_dir = pending.pop()
            try:
                with os.scandir(directory) as listing:
                    entries = list(listing)
            except FileNotFoundError:
                continue  # removed since it was listed
            except OSError as exc:
                raise_os_error("list", directory, exc)
            for entry in entries:
                rel = f"{rel_dir}/{entry.name}"
                if entry.is_dir(follow_symlinks=False):
                    self._folders.add(entry.path)
                    pending.append((entry.path, rel))
                elif entry.is_symlink() and entry.is_dir():  # only a link is stat'ed again: rare
                    raise damaged(entry.path, stat.S_IFLNK)
                else:
                    yield rel

    def list_page(self, prefix: str, start_after: str = "", limit: int = 1000) -> Page:
        """The entries under ``prefix`` named after ``start_after``, in name order, at most ``limit`` of them."""
        names = sorted(rel for rel in self.walk(prefix) if rel > start_after)
        objects = []
        for rel in names[:limit]:
            with contextlib.suppress(FileNotFoundError):  # removed since it was listed
                objects.append(Listed(rel, self._lstat(rel).st_size))
        return Page(objects, len(names) > limit)

    def stage(self) -> Staging:
        return _LocalStaging(self)

    def write_bytes(self, rel: str, data: bytes, *, exclusive: bool = False) -> bool:
        if len(data) > _SMALL:
            return super().write_bytes(rel, data, exclusive=exclusive)
        # The small-record path (several per node): the same steps as a staged write, in one function
        # and one ``except``, since every wrapper here is paid for several times per node.
        final = f"{self.root}/{rel}"
        temp, fd = self.create_temp()
        try:
            try:
                written = os.write(fd, data)
                if written < len(data):  # a short write: go on from where it stopped
                    view = memoryview(data)[written:]
                    while view:
                        view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            return self.publish_temp(temp, final, exclusive=exclusive)
        except OSError as exc:
            raise_os_error("write", final, exc)
        finally:
            try:
                os.unlink(temp)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise_os_error("write", final, exc)

    def create_small(self, rel: str, data: bytes) -> bool:
        path = f"{self.root}/{rel}"
        try:
            directory = path.rpartition("/")[0]
            if directory not in self._folders:
                self._check_folders(directory, make=True)
            try:
                fd = os.open(path, _CREATE_FLAGS, 0o644)  # O_EXCL: an existing link is not followed either
            except FileNotFoundError:  # the folder was removed since it was checked
                self._folders.clear()
                self._check_folders(directory, make=True)
                fd = os.open(path, _CREATE_FLAGS, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            raise_os_error("create", path, exc)

    def create_temp(self) -> tuple[str, int]:
        """A new empty file in ``tmp/``: its path and an open descriptor."""
        # A name unique to this process and write: cheaper than mkstemp's random retries (this runs
        # several times per node); a clash with a dead process's leftover falls back to mkstemp.
        temp = f"{self._tmp}/put-{_PID[0]}-{next(_STAGING_NAMES)}"
        try:
            if self._tmp not in self._folders:
                self._check_folders(self._tmp, make=True)
            try:
                return temp, os.open(temp, _CREATE_FLAGS, 0o644)
            except FileNotFoundError:  # removed since it was checked
                self._folders.clear()
                self._check_folders(self._tmp, make=True)
            except FileExistsError:
                pass
            import tempfile

            fd, temp = tempfile.mkstemp(dir=self._tmp, prefix="put-")
            return temp, fd
        except OSError as exc:
            raise_os_error("create", self._tmp, exc)

    def publish_temp(self, temp: str, final: str, *, exclusive: bool) -> bool:
        """Move the finished ``temp`` to ``final``; False if ``exclusive`` and ``final`` exists."""
        try:
            directory = final.rpartition("/")[0]
            if directory not in self._folders:
                self._check_folders(directory, make=True)  # the fan-out folder's first file makes it
            try:
                return _link_or_replace(temp, final, exclusive)
            except FileNotFoundError:
                if not os.path.lexists(temp):
                    raise
                self._folders.clear()  # a folder was removed since it was checked: check (and make) again
                self._check_folders(directory, make=True)
                return _link_or_replace(temp, final, exclusive)
        except OSError as exc:
            raise_os_error("publish", final, exc)

    def link_new(self, source: str, rel: str) -> bool:
        """Hard-link ``source`` to ``rel`` (both relative); False if ``rel`` exists already.

        FileNotFoundError if ``source`` is missing; :class:`NoHardLink` where the
        filesystem has no hard links or ``source`` has as many as it can take.
        """
        target = f"{self.root}/{rel}"
        try:
            self._folder_of(f"{self.root}/{source}")
            directory = target.rpartition("/")[0]
            if directory not in self._folders:
                self._check_folders(directory, make=True)
            try:
                os.link(f"{self.root}/{source}", target)  # link(2): a link as source is linked, not followed
            except FileNotFoundError:
                if not os.path.lexists(f"{self.root}/{source}"):
                    raise
                self._folders.clear()  # the folder was removed since it was checked
                self._check_folders(directory, make=True)
                os.link(f"{self.root}/{source}", target)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno in _NO_LINK_ERRNOS:
                raise NoHardLink(f"link {target!r} failed: {exc}") from exc
            raise_os_error("link", target, exc)

    def adopt(self, path: str, rel: str) -> bool:
        """Move the file at ``path`` (on this disk) to ``rel``, with a new file's mode; False if ``rel`` exists.

        Either way ``path`` is gone after: if ``rel`` exists, it holds the same bytes.
        """
        final = f"{self.root}/{rel}"
        try:
            try:
                os.chmod(path, 0o644 & ~_umask())  # as if the store had made it
                return self.publish_temp(path, final, exclusive=True)
            finally:
                os.unlink(path)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise_os_error("publish", final, exc)

    def touch(self, rel: str, when: float) -> None:
        """Set the modification time of ``rel`` (of a link itself, never of what it points at)."""
        path = f"{self.root}/{rel}"
        try:
            self._folder_of(path)
            os.utime(path, (when, when), follow_symlinks=False)
        except OSError as exc:
            raise_os_error("touch", path, exc)

    def refresh(self, rel: str) -> bool:
        self.touch(rel, time.time())
        return True

    def delete(self, rel: str) -> bool:
        path = f"{self.root}/{rel}"
        try:
            directory = path.rpartition("/")[0]
            if directory not in self._folders:
                self._check_folders(directory)
            os.unlink(path)  # a link goes, never what it points at
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise_os_error("delete", path, exc)
        return True

    def prune(self, rel: str) -> None:
        """Remove the empty folders at and below ``rel``, deepest first; never through a link."""
        base = self.path(rel)
        try:
            self._check_folders(base)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise_os_error("prune", base, exc)
        folders = [base]
        for directory in folders:  # grows as it goes: every real folder below, parents first
            with contextlib.suppress(OSError), os.scandir(directory) as listing:
                folders.extend(e.path for e in listing if e.is_dir(follow_symlinks=False))
        for directory in reversed(folders):
            self._folders.discard(directory)
            with contextlib.suppress(OSError):  # not empty: a file someone still writes, or a link
                os.rmdir(directory)


def _link_or_replace(temp: str, final: str, exclusive: bool) -> bool:
    if not exclusive:
        os.replace(temp, final)
        return True
    try:
        os.link(temp, final)  # fails if final exists: no overwrite, no race
    except FileExistsError:
        return False
    except FileNotFoundError:
        raise  # the folder is missing: the caller makes it
    except OSError:  # no hard links here (some network or FAT filesystems)
        if os.path.lexists(final):
            return False
        os.replace(temp, final)
    return True


_STAGING_NAMES = itertools.count()


_PID = [os.getpid()]  # asked once, not per temp file; a forked child (the processes executor) asks again


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


# A link is refused rather than followed (ELOOP), and opening a FIFO or device never waits.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


@functools.cache
def _umask() -> int:
    """This process's umask, read where the system tells it without changing it."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_NO_LINK_ERRNOS = {errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}


_SMALL = 1 << 20  # records and small blobs: read with one system call, written without a staging object


class _LocalStaging(Staging):
    def __init__(self, storage: LocalIO) -> None:
        self._storage = storage
        self._temp, fd = storage.create_temp()
        self._file: IO[bytes] | None = os.fdopen(fd, "wb", buffering=0)

    def write(self, data: bytes | memoryview) -> None:
        assert self._file is not None
        with translate("write", self._temp):
            self._file.write(data)

    def publish(self, rel: str, *, exclusive: bool) -> bool:
        assert self._file is not None
        self._file.close()
        self._file = None
        return self._storage.publish_temp(self._temp, self._storage.path(rel), exclusive=exclusive)

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._temp)
