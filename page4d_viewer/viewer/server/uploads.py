"""Uploads are uploads: where they are kept, how they are received, and the one check every
file a panel event names must pass.

A Gradio event names its input files by server path (`{"path": ..., "meta": {"_type":
"gradio.FileData"}}`), and a client can write any path there. Gradio's own check that the
path lies in its upload folder is skipped for an app mounted with `mount_gradio_app`, and the
handler would then open whatever file the client named. So:

* The app receives uploads itself (`receive_upload`, at Gradio's own `/gradio_api/upload`
  address, which it shadows): the size budget is enforced while the body streams in, free
  space is checked first, and the files land in a folder of fresh random names under
  `InputFolders.uploads`, a folder no route serves.
* Every file path in every request body is checked by `InputFolders.check` (called by the
  request guard, `guard.py`, before Gradio sees the body): it must resolve inside the uploads
  folder, or inside Gradio's own cache (where Gradio keeps what it sent to the page, and the
  copies of inputs it made). Anything else is refused in one line that says nothing about the
  path: not whether it exists, nor what kind of file it is.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from page4d_viewer import settings
from page4d_viewer.errors import Page4DError
from page4d_viewer.viewer.runs import DiskFullError, check_free_space

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import Message, Receive

logger = logging.getLogger(__name__)

UPLOAD_ROUTE = "/gradio_api/upload"
REFUSED_INPUT = "refused: this event names a file that was not uploaded to this app"
"""The whole refusal: the same words whatever the path was, so it reveals nothing about it."""
# Multipart framing (boundaries, part headers) on top of the files themselves.
MULTIPART_SLACK_BYTES = 64 * 1024
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


class UploadRefusedError(Page4DError):
    """A file named by a request is not an upload of this app, or an upload is refused."""


@dataclass(frozen=True)
class InputFolders:
    """The folders a panel event may name files in.

    Attributes:
        uploads: Where `receive_upload` stores uploads; served by no route.
        gradio_cache: Gradio's cache (`GRADIO_TEMP_DIR`): its copies of inputs and outputs.
    """

    uploads: Path
    gradio_cache: Path

    @classmethod
    def at(cls, uploads: str | os.PathLike[str], gradio_cache: str | os.PathLike[str]):
        """The folders, resolved once (created when missing)."""
        made = []
        for folder in (uploads, gradio_cache):
            Path(folder).mkdir(parents=True, exist_ok=True)
            made.append(Path(folder).resolve())
        return cls(made[0], made[1])

    def check(self, path: object) -> Path:
        """The resolved path of a file an event names, if it is an upload (or Gradio's copy).

        Raises:
            UploadRefusedError: anything else, in the same one line whatever the path
                (outside the folders, missing, a folder, a link out, a NUL byte, not text).
        """
        if not isinstance(path, str) or not path or "\0" in path:
            raise UploadRefusedError(REFUSED_INPUT)
        try:
            resolved = Path(path).resolve()
        except (OSError, RuntimeError, ValueError):
            raise UploadRefusedError(REFUSED_INPUT) from None
        inside = any(resolved.is_relative_to(folder) for folder in self.folders)
        # Containment first, then kind: a file outside is refused before it is looked at.
        if not inside or not resolved.is_file():
            raise UploadRefusedError(REFUSED_INPUT)
        return resolved

    @property
    def folders(self) -> tuple[Path, Path]:
        """Both folders, resolved."""
        return (self.uploads, self.gradio_cache)

    def check_body(self, body: bytes) -> None:
        """Check every file a JSON request body names (a Gradio event's inputs).

        Raises:
            UploadRefusedError: a named file is not an upload.
        """
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            return  # not JSON: Gradio refuses it itself, and it names no file
        for path in file_paths(data):
            self.check(path)


def file_paths(data: Any) -> Iterator[Any]:
    """Every value that names a server file in decoded JSON: the `path` of each object that
    has one (a Gradio FileData, with or without its `meta` marker), at any depth."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "path" in item:
                yield item["path"]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def safe_file_name(name: str | None) -> str:
    """A file name to store an upload under: the last part of what the browser sent, with
    only letters, digits and ``._ -``, never hidden, at most 120 characters."""
    base = Path((name or "").replace("\\", "/")).name
    cleaned = _SAFE_NAME.sub("_", base).strip(" .")[-120:].lstrip(".")
    return cleaned or "upload"


class _TooLarge(Exception):
    """The body streamed past the budget."""


def _limited(receive: Receive, budget: int) -> Receive:
    """`receive`, counting body bytes and stopping once there are more than `budget`."""
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > budget:
                raise _TooLarge
        return message

    return counted


async def receive_upload(request: Request, folders: InputFolders) -> Response:
    """The upload route: store the posted files under a fresh folder of `folders.uploads`.

    Refused in one line, with nothing left on disk: a body over `PAGE4D_MAX_UPLOAD_BYTES`
    (413, as soon as it is declared or has streamed past the budget), not enough free disk
    space (507), or a body that is not a multipart form of files (400).

    Returns:
        JSON: the stored paths, in the order posted (what Gradio's client expects).
    """
    from starlette.requests import Request as StarletteRequest
    from starlette.responses import JSONResponse, PlainTextResponse

    limit = settings.MAX_UPLOAD_BYTES
    budget = int(min(limit.value(), 2**62)) + MULTIPART_SLACK_BYTES
    try:
        declared = int(request.headers.get("content-length", "0"))
    except ValueError:
        return PlainTextResponse("upload refused: a bad Content-Length", status_code=400)
    if declared > budget:
        return PlainTextResponse(limit.message("upload refused", declared), status_code=413)
    try:
        check_free_space(folders.uploads, declared)
    except DiskFullError as error:
        return PlainTextResponse(f"upload refused: {error}", status_code=507)
    folder = folders.uploads / secrets.token_hex(16)
    folder.mkdir(parents=True)
    try:
        stored = await _store_form(
            StarletteRequest(request.scope, _limited(request.receive, budget)), folder
        )
    except _TooLarge:
        stored = limit.message("upload refused", budget)
        status = 413
    except Exception as error:  # a malformed form, a dropped connection: nothing is kept
        stored = (
            f"upload refused: {error}"
            if isinstance(error, UploadRefusedError)
            else ("upload refused: not a complete multipart form of files")
        )
        status = 400
    if isinstance(stored, str):
        shutil.rmtree(folder, ignore_errors=True)
        return PlainTextResponse(stored, status_code=status)
    logger.debug("received %d upload(s) into %s", len(stored), folder.name)
    return JSONResponse(stored)


async def _store_form(request: Request, folder: Path) -> list[str]:
    """Parse the multipart body (Starlette spools it) and move its files into `folder`."""
    from starlette.datastructures import UploadFile

    form = await request.form(max_files=100, max_fields=100)
    try:
        stored: list[str] = []
        for item in form.getlist("files"):
            if not isinstance(item, UploadFile):
                raise UploadRefusedError("a form field that is not a file")
            target = folder / safe_file_name(item.filename)
            if target.exists():  # two files of one name: keep both
                target = folder / f"{len(stored)}-{target.name}"
            with target.open("wb") as out:
                shutil.copyfileobj(item.file, out)
            stored.append(str(target))
    finally:
        await form.close()
    if not stored:
        raise UploadRefusedError("no file in the form")
    return stored
