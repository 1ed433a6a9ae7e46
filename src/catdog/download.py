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
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_name_for(url: str) -> str:
    name = PurePosixPath(unquote(urlparse(url).path)).name
    return name or "download"


def download(url: str, cache_dir: Path, *, sha256: str | None = None, progress: bool = True) -> Path:
    """Fetch ``url`` into ``cache_dir`` and return the file's path.

    A finished file is reused. An interrupted one stays as ``<name>.part`` and the next call resumes it
    with an HTTP Range request (or starts over if the server ignores ranges).
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / file_name_for(url)
    partial = final.with_name(final.name + ".part")
    if final.exists():
        if sha256 is None or sha256_file(final) == sha256:
            return final
        final.unlink()  # a stale or damaged copy: fetch it again

    offset = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "catdog"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # the part is already complete
            response = None
        else:
            raise DownloadError(f"cannot download {url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        raise DownloadError(f"cannot reach {url}: {getattr(error, 'reason', error)}") from None

    if response is not None:
        with response:
            resumed = response.status == 206
            if not resumed:
                offset = 0
            length = response.headers.get("Content-Length")
            expected = offset + int(length) if length else None
            mode = "ab" if resumed else "wb"
            try:
                with open(partial, mode) as out, tqdm(
                    total=expected, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                    desc=final.name, disable=not progress,
                ) as bar:
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

    if sha256 is not None:
        actual = sha256_file(partial)
        if actual != sha256:
            partial.unlink()
            raise DownloadError(f"{url} has sha256 {actual}, expected {sha256}: the file was deleted")
    partial.replace(final)
    return final
