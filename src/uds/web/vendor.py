"""GraphiQL's browser files, fetched from the npm registry at setup time and served by UDS.

`python -m uds.web.vendor` (run by `make run` and `make test`) packs the pinned npm
packages with `npm pack`, takes the few files GraphiQL needs and checks each against its
pinned SHA-256 before it writes it to `src/uds/web/static/vendor/` (git-ignored). Nothing
is downloaded at run time: without these files `GET /graphql` from a browser answers 503
and says how to get them. All three packages are MIT-licensed; their licence files are
served beside them.

`python -m uds.web.vendor --check` only says whether the files are there and intact.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

VENDOR_DIR = Path(__file__).resolve().parent / "static" / "vendor"
SETUP_HINT = (
    "GraphiQL's files are not installed: run `make web-assets` "
    "(or `.venv/bin/python -m uds.web.vendor`; it needs `npm` and the npm registry)"
)


@dataclass(frozen=True, slots=True)
class VendorFile:
    package: str  # "name@version" as npm pack takes it
    path: str  # inside the package tarball, below package/
    name: str  # the file served at /static/vendor/<name>
    sha256: str


FILES = (
    VendorFile(
        "react@18.2.0",
        "umd/react.production.min.js",
        "react.production.min.js",
        "4b4969fa4ef3594324da2c6d78ce8766fbbc2fd121fff395aedf997db0a99a06",
    ),
    VendorFile(
        "react@18.2.0",
        "LICENSE",
        "react.LICENSE",
        "52412d7bc7ce4157ea628bbaacb8829e0a9cb3c58f57f99176126bc8cf2bfc85",
    ),
    VendorFile(
        "react-dom@18.2.0",
        "umd/react-dom.production.min.js",
        "react-dom.production.min.js",
        "21758ed084cd0e37e735722ee4f3957ea960628a29dfa6c3ce1a1d47a2d6e4f7",
    ),
    VendorFile(
        "react-dom@18.2.0",
        "LICENSE",
        "react-dom.LICENSE",
        "52412d7bc7ce4157ea628bbaacb8829e0a9cb3c58f57f99176126bc8cf2bfc85",
    ),
    VendorFile(
        "graphiql@3.8.3",
        "graphiql.min.js",
        "graphiql.min.js",
        "22faab94067b695e5f7959619fbe686ebcc8955002a0c97d986bcbba4ad4bc2c",
    ),
    VendorFile(
        "graphiql@3.8.3",
        "graphiql.min.css",
        "graphiql.min.css",
        "b1868247f8e0502cd869e581f5f3cb55b334862e7f51b1d6cbace11059b9adc2",
    ),
    VendorFile(
        "graphiql@3.8.3",
        "LICENSE",
        "graphiql.LICENSE",
        "4b18fbe55c4e8f9169cb702be138f4d858a2dad920c39857204ffdc9c1c9fdc4",
    ),
)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def missing(directory: Path = VENDOR_DIR) -> list[str]:
    """Names of the files that are absent or not the pinned ones (empty: all good)."""
    out = []
    for f in FILES:
        path = directory / f.name
        if not path.is_file() or _digest(path) != f.sha256:
            out.append(f.name)
    return out


def fetch(directory: Path = VENDOR_DIR) -> None:
    """Pack the pinned packages with npm and install the files GraphiQL needs."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed; GraphiQL's files cannot be fetched")
    directory.mkdir(parents=True, exist_ok=True)
    packages = sorted({f.package for f in FILES})
    with tempfile.TemporaryDirectory(prefix="uds-vendor-") as tmp:
        run = subprocess.run(
            [npm, "pack", *packages, "--pack-destination", tmp, "--silent"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if run.returncode != 0:
            raise RuntimeError(f"npm pack failed: {run.stderr.strip()[-500:]}")
        for f in FILES:
            name, version = f.package.rsplit("@", 1)
            tarball = Path(tmp) / f"{name}-{version}.tgz"
            with tarfile.open(tarball, "r:gz") as archive:
                member = archive.extractfile(f"package/{f.path}")
                if member is None:
                    raise RuntimeError(f"{f.package} has no {f.path}")
                data = member.read()
            if hashlib.sha256(data).hexdigest() != f.sha256:
                raise RuntimeError(f"{f.package}/{f.path} is not the pinned file (SHA-256 differs)")
            target = directory / f.name
            partial = target.with_suffix(target.suffix + ".part")
            partial.write_bytes(data)
            partial.replace(target)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    bad = missing()
    if "--check" in args:
        print("GraphiQL files: ok" if not bad else f"GraphiQL files missing: {', '.join(bad)}")
        return 0 if not bad else 1
    if not bad:
        print(f"GraphiQL files: already in {VENDOR_DIR}")
        return 0
    try:
        fetch()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(
            f"warning: {exc}.\n{SETUP_HINT}. Until then GET /graphql in a browser answers 503.",
            file=sys.stderr,
        )
        return 1
    print(f"GraphiQL files: fetched into {VENDOR_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
