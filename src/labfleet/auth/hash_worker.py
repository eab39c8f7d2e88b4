"""One scrypt worker process of :class:`labfleet.auth.hash_pool.HashPool`.

Run as a plain script (``python -I -S hash_worker.py NICE``), so it imports
only the standard library: no labfleet, no JupyterHub, a few MB of memory and
a ~20 ms start. It reads one JSON request per line on stdin and writes one
JSON answer per line on stdout, until stdin closes (the hub exited). The
password travels base64-encoded over a pipe private to the hub; it is never
logged. The process lowers its own CPU priority, so during a login storm the
hub's event loop (and the members' servers) are scheduled before the hashes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys


def answer(request: dict[str, object]) -> dict[str, object]:
    """The derived key for one request, or the error that prevented it."""
    try:
        secret = base64.b64decode(str(request["secret"]))
        salt = base64.b64decode(str(request["salt"]))
        key = hashlib.scrypt(
            secret,
            salt=salt,
            n=int(str(request["n"])),
            r=int(str(request["r"])),
            p=int(str(request["p"])),
            maxmem=int(str(request["maxmem"])),
            dklen=int(str(request["dklen"])),
        )
    except (KeyError, ValueError, TypeError, MemoryError) as exc:
        return {"error": type(exc).__name__}
    return {"key": base64.b64encode(key).decode("ascii")}


def main(argv: list[str]) -> int:
    niceness = int(argv[1]) if len(argv) > 1 else 0
    if niceness > 0:
        os.nice(niceness)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    for line in stdin:
        try:
            request = json.loads(line)
        except ValueError:
            reply: dict[str, object] = {"error": "ValueError"}
        else:
            reply = answer(request) if isinstance(request, dict) else {"error": "TypeError"}
        stdout.write(json.dumps(reply).encode("ascii") + b"\n")
        stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
