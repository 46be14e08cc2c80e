"""The stand-in ``promptflow.contracts.multimedia.Image``: an image's bytes, as promptflow's.

A python node written for promptflow takes and returns ``Image`` (``def flip(img: Image) ->
Image``). promptflow's ``Image`` is ``bytes`` with a MIME type and, for one read from a URL,
its ``source_url``; so is this one: ``Image(data, mime_type="image/png")``, ``str(image)`` is
``Image(<hash>)``, ``image.to_base64(with_type=True)`` its ``data:`` URL.

In a converted workflow an image travels as text (a path, an ``http(s)`` URL or a ``data:``
URL, what a chat step's ``images:`` takes). A parameter annotated ``Image`` turns that text
into an ``Image`` when flowrun checks the tool's arguments (a path is read from the disk, a
URL fetched, as promptflow does with an image input; a relative path not found in the
working directory is read from the workflow's folder; promptflow's ``{"data:image/png;path":
...}`` / ``;url`` / ``;base64`` forms are read too); an ``Image`` a tool returns becomes its
``data:`` URL, which a chat step's ``images:`` sends as it is.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import hashlib
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flowrun.provider.images import data_url_bytes, sniff_mime

__all__ = ["Image", "PFBytes", "image_from", "paths_from"]

_FETCH_TIMEOUT_S = 30
_BASE: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "flowrun_image_base", default=None
)


@contextlib.contextmanager
def paths_from(folder: Path) -> Iterator[None]:
    """While the block runs, a relative image path that is not in the working directory is
    read from ``folder`` (the workflow's), as a chat step's ``images:`` are."""
    token = _BASE.set(folder)
    try:
        yield
    finally:
        _BASE.reset(token)


class PFBytes(bytes):
    """Bytes with a MIME type (and the URL they came from, if any)."""

    def __new__(cls, value: bytes, *_args: Any, **_kwargs: Any) -> PFBytes:
        return super().__new__(cls, value)

    def __init__(self, value: bytes, mime_type: str, source_url: str | None = None) -> None:
        super().__init__()
        self._hash = hashlib.sha1(value).hexdigest()[:8]
        self._mime_type = mime_type.lower()
        self._source_url = source_url

    @property
    def source_url(self) -> str | None:
        return self._source_url

    def to_base64(self, with_type: bool = False) -> str:
        text = base64.b64encode(self).decode("ascii")
        return f"data:{self._mime_type};base64,{text}" if with_type else text


class Image(PFBytes):
    """An image: its MIME type is found from its first bytes when not given (``image/*`` when
    they are not PNG, JPEG, GIF or WEBP)."""

    def __init__(
        self, value: bytes, mime_type: str | None = None, source_url: str | None = None
    ) -> None:
        super().__init__(value, mime_type or sniff_mime(bytes(value)) or "image/*", source_url)

    def __str__(self) -> str:
        return f"Image({self._hash})"

    __repr__ = __str__

    def serialize(self, encoder: Any = None) -> Any:
        return str(self) if encoder is None else encoder(self)

    def __flowrun_json__(self) -> str:
        """What the image is in a workflow's values: its ``data:`` URL."""
        return self.to_base64(with_type=True)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_plain_validator_function(image_from)


def image_from(value: Any) -> Image:
    """An ``Image`` from a value of a workflow: an ``Image`` or bytes, a path, an ``http(s)``
    or ``data:`` URL, or promptflow's one-key dict (``{"data:image/png;url": "https://..."}``)."""
    if isinstance(value, Image):
        return value
    if isinstance(value, (bytes, bytearray)):
        return Image(bytes(value))
    if isinstance(value, dict) and len(value) == 1:
        ((key, text),) = value.items()
        kind = str(key).rpartition(";")[2]
        mime = str(key).removeprefix("data:").partition(";")[0] or None
        if kind == "base64" and isinstance(text, str):
            return Image(base64.b64decode(text), mime)
        if kind in ("url", "path") and isinstance(text, str):
            return _from_text(text, mime)
    if isinstance(value, str):
        return _from_text(value, None)
    raise ValueError(
        f"expected an image (a path, a URL or a data: URL), got {type(value).__name__}"
    )


def _from_text(text: str, mime: str | None) -> Image:
    if text.startswith("data:"):
        data = data_url_bytes(text)
        if data is None:
            raise ValueError("a data: URL of an image must be base64")
        return Image(data, text[5:].partition(";")[0] or mime)
    if text.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(text, timeout=_FETCH_TIMEOUT_S) as response:  # noqa: S310
                return Image(response.read(), mime, source_url=text)
        except OSError as exc:
            raise ValueError(f"cannot fetch the image {text}: {exc}") from None
    path = Path(text).expanduser()
    base = _BASE.get()
    if not path.is_absolute() and not path.exists() and base is not None:
        path = base / path
    try:
        return Image(path.read_bytes(), mime)
    except OSError as exc:
        raise ValueError(f"cannot read the image {text}: {exc.strerror}") from None
