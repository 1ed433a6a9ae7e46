"""Downloads that show progress, resume after a break, check a sha256 when one is known, and never
leave a half-written file under the final name."""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from tqdm import tqdm

from catdog import CatdogError

CHUNK_BYTES = 1024 * 1024
TIMEOUT_SECONDS = 60


class DownloadError(CatdogError):
    """A download failed; the message says what to do next."""


def sha256_file(path: Path) -> str:
    """A file's sha256 in hex, read in chunks (a model or an archive never sits whole in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_name_for(url: str) -> str:
    name = PurePosixPath(unquote(urlparse(url).path)).name
    return name or "download"


def _range_start(content_range: str | None) -> int | None:
    """The first byte of ``Content-Range: bytes START-END/TOTAL``."""
    if not content_range or not content_range.startswith("bytes ") or "-" not in content_range:
        return None
    try:
        return int(content_range[6:].split("-", 1)[0])
    except ValueError:
        return None


def _validator(headers) -> str | None:
    """What identifies this version of the file, for If-Range: a strong ETag, else Last-Modified."""
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("Last-Modified")


def _write_body(url: str, response, partial: Path, offset: int, resumed: bool, progress: bool) -> None:
    """Append (``resumed``) or write the response's body to ``partial``, with a progress bar; a body that
    breaks off or ends short says to run the command again (the part is kept to resume)."""
    length = response.headers.get("Content-Length")
    expected = offset + int(length) if length else None
    mode = "ab" if resumed else "wb"
    try:
        with (
            open(partial, mode) as out,
            tqdm(
                total=expected,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=partial.name.removesuffix(".part"),
                disable=not progress,
            ) as bar,
        ):
            for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                out.write(chunk)
                bar.update(len(chunk))
    except (OSError, http.client.HTTPException) as error:
        raise DownloadError(
            f"the download of {url} broke off after {partial.stat().st_size:,} bytes ({error}); "
            f"run the same command again to resume it"
        ) from None
    received = partial.stat().st_size
    if expected is not None and received != expected:
        raise DownloadError(
            f"the download of {url} stopped at {received:,} of {expected:,} bytes; "
            "run the same command again to resume it"
        )


def download(url: str, cache_dir: Path, *, sha256: str | None = None, progress: bool = True) -> Path:
    """Fetch ``url`` into ``cache_dir`` and return the file's path.

    A finished file is reused. An interrupted one stays as ``<name>.part`` and the next call resumes it
    with an HTTP Range request, only if the server shows (If-Range on its ETag or Last-Modified, and a
    Content-Range that starts where the part ends) that it is the same file: a file that changed on the
    server, or a server that ignores ranges, starts over rather than splicing two files together.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / file_name_for(url)
    partial = final.with_name(final.name + ".part")
    validator_file = final.with_name(final.name + ".part-validator")
    if final.exists():
        if sha256 is None or sha256_file(final) == sha256:
            return final
        final.unlink()  # a stale or damaged copy: fetch it again

    validator = validator_file.read_text().strip() if validator_file.exists() else ""
    offset = partial.stat().st_size if partial.exists() and validator else 0
    request = urllib.request.Request(url, headers={"User-Agent": "catdog"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
        request.add_header("If-Range", validator)
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as error:
        total = (error.headers.get("Content-Range") or "").rpartition("/")[2]
        if error.code == 416 and offset and total == str(offset):  # the part is already complete
            response = None
        elif error.code == 416:  # the part is longer than the file: not the same file
            partial.unlink(missing_ok=True)
            validator_file.unlink(missing_ok=True)
            return download(url, cache_dir, sha256=sha256, progress=progress)
        else:
            raise DownloadError(f"cannot download {url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        raise DownloadError(f"cannot reach {url}: {getattr(error, 'reason', error)}") from None

    if response is not None:
        with response:
            resumed = (
                bool(offset)
                and response.status == 206
                and _range_start(response.headers.get("Content-Range")) == offset
            )
            if response.status == 206 and not resumed:
                raise DownloadError(f"{url} answered with another byte range than asked; run the same command again")
            if not resumed:  # a fresh start: remember which version of the file this part is of
                offset = 0
                validator_file.write_text(_validator(response.headers) or "")
            _write_body(url, response, partial, offset, resumed, progress)

    validator_file.unlink(missing_ok=True)
    if sha256 is not None:
        actual = sha256_file(partial)
        if actual != sha256:
            partial.unlink()
            raise DownloadError(f"{url} has sha256 {actual}, expected {sha256}: the file was deleted")
    partial.replace(final)
    return final
