"""A render process: `python -m uds.dashboards.render_worker`, driven by `render.RenderPool`.

It reads requests from stdin and writes answers to stdout, one at a time, framed:
request  = 4-byte big-endian length + JSON {"spec": {...}, "fmt": "png" | "svg"}
answer   = 1 status byte (0 ok, 1 the spec was refused, 2 other failure)
           + 4-byte big-endian length + the PNG bytes, the SVG text or the error message.
It imports nothing from UDS, so it starts fast and holds no server state.
"""

from __future__ import annotations

import json
import struct
import sys
from typing import BinaryIO

VEGA_LITE_VERSION = "6.4"
OK, REFUSED, FAILED = 0, 1, 2


def _read_exact(stream: BinaryIO, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def render(spec: dict, fmt: str) -> bytes:  # type: ignore[type-arg]
    import vl_convert

    if fmt == "png":
        return bytes(vl_convert.vegalite_to_png(spec, vl_version=VEGA_LITE_VERSION, allowed_base_urls=[]))
    if fmt == "svg":
        svg = vl_convert.vegalite_to_svg(spec, vl_version=VEGA_LITE_VERSION, allowed_base_urls=[])
        return str(svg).encode("utf-8")
    raise ValueError(f"unknown format {fmt!r}")


def serve(inp: BinaryIO, out: BinaryIO) -> None:
    while True:
        head = _read_exact(inp, 4)
        if head is None:
            return
        body = _read_exact(inp, struct.unpack(">I", head)[0])
        if body is None:
            return
        try:
            request = json.loads(body)
            status, payload = OK, render(request["spec"], request["fmt"])
        except ValueError as exc:  # vl-convert's way of refusing a spec
            status, payload = REFUSED, str(exc).encode("utf-8", "replace")
        except Exception as exc:
            status, payload = FAILED, f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")
        out.write(struct.pack(">BI", status, len(payload)) + payload)
        out.flush()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
