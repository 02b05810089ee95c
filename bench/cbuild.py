"""Compile a benchmark's C helper into a shared object once, and cache it.

The C compiler is the one Python was built with (``CC`` from sysconfig, or ``$CC``, else
``cc``). The shared object is cached under ``$CRNN_BENCH_CACHE`` (default
``~/.cache/crnn-bench``) under a name hashing the source, the compiler, the flags and whatever
else the caller says it depends on, so a change of any of them rebuilds it.
"""
from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sysconfig
import tempfile
from typing import List, Sequence


class BuildError(RuntimeError):
    """The compiler failed; the message holds its command line and its errors."""


def compiler() -> List[str]:
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    argv = shlex.split(cc)
    if not shutil.which(argv[0]):
        argv = ["cc"]
    return argv


def build_shared(source: str, name: str, cflags: Sequence[str], libs: Sequence[str] = (),
                 depends: bytes = b"") -> str:
    """Path of ``source`` compiled with ``cc cflags -shared -fPIC source -o OUT libs``."""
    cc = compiler()
    with open(source, "rb") as f:
        src = f.read()
    key = hashlib.sha256(b"\0".join([src, " ".join(cc + list(cflags) + list(libs)).encode(),
                                     depends])).hexdigest()[:16]
    cache = os.environ.get("CRNN_BENCH_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "crnn-bench")
    os.makedirs(cache, exist_ok=True)
    out = os.path.join(cache, f"{name}-{key}.so")
    if os.path.exists(out):
        return out
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=cache)
    os.close(fd)
    cmd = cc + list(cflags) + ["-shared", "-fPIC", source, "-o", tmp] + list(libs)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        os.unlink(tmp)
        raise BuildError(f"building {os.path.basename(source)} failed: {shlex.join(cmd)}\n"
                         f"{proc.stderr.strip()}")
    os.replace(tmp, out)
    return out
