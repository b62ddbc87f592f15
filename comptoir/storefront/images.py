"""Article images: verification, resizing and storage.

An upload is accepted only when Pillow decodes it as a JPEG, PNG, WebP or GIF within the size and
pixel limits. It is then re-encoded (which drops metadata such as GPS positions) in a few sizes and
written through an :class:`ImageStorage`. The local folder under the instance path is the default;
an S3-compatible backend implements the same three methods.
"""

from __future__ import annotations

import hashlib
import io
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from flask import current_app
from flask_babel import gettext as _
from PIL import Image, ImageOps, UnidentifiedImageError

from comptoir.platform.errors import ValidationError

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 40_000_000
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF"})
# Longest side of each stored size, in pixels.
SIZES: dict[str, int] = {"large": 1200, "card": 480}
STORAGE_EXTENSION = "comptoir_image_storage"
CONTENT_TYPES = {"jpeg": "image/jpeg", "png": "image/png"}


class ImageStorage(Protocol):
    """Where image bytes live. Keys are relative paths made of ``[a-z0-9/_.-]``."""

    def save(self, key: str, data: bytes, content_type: str) -> None: ...

    def read(self, key: str) -> bytes | None: ...

    def delete(self, key: str) -> None: ...


class LocalImageStorage:
    """A folder on the local disk (the instance folder by default)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            message = f"storage key escapes the storage root: {key!r}"
            raise ValueError(message)
        return path

    def save(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(path.suffix + ".part")
        temporary.write_bytes(data)
        temporary.replace(path)

    def read(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


def image_storage() -> ImageStorage:
    """The app's storage: ``COMPTOIR_IMAGE_STORAGE`` in the config if set, else a local folder."""
    storage: ImageStorage | None = current_app.extensions.get(STORAGE_EXTENSION)
    if storage is None:
        configured = current_app.config.get("COMPTOIR_IMAGE_STORAGE")
        storage = configured or LocalImageStorage(Path(current_app.instance_path) / "media")
        current_app.extensions[STORAGE_EXTENSION] = storage
    return storage


@dataclass(frozen=True)
class ProcessedImage:
    format: str  # "jpeg" or "png"
    width: int
    height: int
    sizes: dict[str, bytes]
    digest: str

    @property
    def extension(self) -> str:
        return "jpg" if self.format == "jpeg" else "png"

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]

    @property
    def byte_size(self) -> int:
        return sum(len(data) for data in self.sizes.values())


def _refuse(message: str) -> ValidationError:
    return ValidationError(message, fields={"image": [message]})


def read_limited(stream: IO[bytes], limit: int = MAX_UPLOAD_BYTES) -> bytes:
    """Read an upload, refusing it as soon as it passes ``limit`` bytes."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise _refuse(
            _("The image is too large (at most %(size)d MB).", size=limit // (1024 * 1024))
        )
    if not data:
        raise _refuse(_("Choose an image file."))
    return data


def process_image(data: bytes) -> ProcessedImage:
    """Verify ``data`` is an allowed image and produce the stored sizes, or raise."""
    not_an_image = _("This file is not an image in JPEG, PNG, WebP or GIF format.")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            image_format = probe.format
            width, height = probe.size
            if image_format not in ALLOWED_FORMATS:
                raise _refuse(not_an_image)
            if width * height > MAX_PIXELS:
                raise _refuse(_("The image has too many pixels."))
            probe.verify()
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened) or opened
            has_alpha = image.mode in {"RGBA", "LA", "PA"} or (
                image.mode == "P" and "transparency" in image.info
            )
            image = image.convert("RGBA" if has_alpha else "RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise _refuse(not_an_image) from None

    output_format = "png" if has_alpha else "jpeg"
    sizes: dict[str, bytes] = {}
    for size_name, longest in SIZES.items():
        copy = image.copy()
        copy.thumbnail((longest, longest), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        if output_format == "jpeg":
            copy.save(buffer, "JPEG", quality=85, optimize=True, progressive=True)
        else:
            copy.save(buffer, "PNG", optimize=True)
        sizes[size_name] = buffer.getvalue()
    digest = hashlib.sha256(b"".join(sizes[name] for name in sorted(sizes))).hexdigest()
    return ProcessedImage(
        format=output_format,
        width=image.width,
        height=image.height,
        sizes=sizes,
        digest=digest,
    )


def new_storage_key(organization_id: int, article_id: int) -> str:
    return f"org-{organization_id}/articles/{article_id}/{secrets.token_hex(8)}"


def size_key(storage_key: str, size: str, image_format: str) -> str:
    extension = "jpg" if image_format == "jpeg" else "png"
    return f"{storage_key}/{size}.{extension}"


def store(storage: ImageStorage, storage_key: str, processed: ProcessedImage) -> None:
    for size_name, data in processed.sizes.items():
        storage.save(
            size_key(storage_key, size_name, processed.format), data, processed.content_type
        )


def remove(storage: ImageStorage, storage_key: str, image_format: str) -> None:
    for size_name in SIZES:
        storage.delete(size_key(storage_key, size_name, image_format))
