"""Kept files (invoice and credit note PDFs): a small storage interface and its local folder.

Any layer may keep files through :func:`file_storage`. Keys are relative paths made of
``[A-Za-z0-9/_.-]``; the local backend writes them under ``<instance>/files``. An S3-compatible
backend implements the same three methods and is installed as ``COMPTOIR_FILE_STORAGE`` in the
app config. :meth:`LocalFileStorage.path` lets the mail job attach a file without copying it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

from flask import current_app

STORAGE_EXTENSION = "comptoir_file_storage"
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/_.-]{0,199}$")


class FileStorage(Protocol):
    def save(self, key: str, data: bytes, content_type: str) -> None: ...

    def read(self, key: str) -> bytes | None: ...

    def delete(self, key: str) -> None: ...

    def path(self, key: str) -> Path | None:
        """A local path to the file when the backend has one (attachments read it at sending)."""


class LocalFileStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not _KEY.match(key) or ".." in key.split("/"):
            message = f"not a storage key: {key!r}"
            raise ValueError(message)
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            message = f"storage key escapes the storage root: {key!r}"
            raise ValueError(message)
        return path

    def save(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside then renamed: a reader never sees half a file.
        temporary = path.with_suffix(path.suffix + ".part")
        temporary.write_bytes(data)
        temporary.replace(path)

    def read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def path(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path.exists() else None


def file_storage() -> FileStorage:
    """The app's storage: ``COMPTOIR_FILE_STORAGE`` in the config if set, else a local folder."""
    storage: FileStorage | None = current_app.extensions.get(STORAGE_EXTENSION)
    if storage is None:
        configured = current_app.config.get("COMPTOIR_FILE_STORAGE")
        storage = configured or LocalFileStorage(Path(current_app.instance_path) / "files")
        current_app.extensions[STORAGE_EXTENSION] = storage
    return storage
