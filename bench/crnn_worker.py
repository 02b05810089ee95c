"""A crnn build in a process of its own, timed on request: the crnn peers of bench/peers.py.

Two builds of crnn cannot share a process (both are the module ``crnn``), so each one
``peers.py`` times, the current one and a ``--baseline`` checkout, runs in a persistent worker:
this file run as a script with ``PYTHONPATH`` set to the checkout. It speaks pickled dicts over
its stdin / stdout (its own prints go to stderr):

* ``{"op": "hello"}`` -> where crnn came from, its version, default threads, ISA
* ``{"op": "build", "cell", "weights", "kwargs", "x"}`` -> builds ``crnn._core.RNN`` once per
  shape and keeps the input; ``{"ok": True}`` or ``{"unsupported": message}`` for a cell this
  build does not have
* ``{"op": "run", "threads"}`` -> ``{"out": handle.forward(x)}`` (for the check)
* ``{"op": "time", "threads", "count", "warm"}`` -> ``{"samples": [ns, ...]}``: ``count`` calls
  timed one by one inside the worker (:func:`timing.time_calls`), after which the worker waits
  for its own threads to go idle (:func:`timing.settle`) before it answers
* ``{"op": "quit"}``

Every answer may instead be ``{"error": message}``; :class:`Worker` raises it as RuntimeError.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))


def crnn_isa(core: Any) -> Optional[str]:
    """The ISA a crnn build reports it dispatches to, if it has a way to say."""
    machine = getattr(core, "machine", None)
    if callable(machine):
        return str(machine().get("isa"))
    for name in ("get_isa", "isa", "cpu_isa"):
        v = getattr(core, name, None)
        if v is not None:
            try:
                return str(v() if callable(v) else v)
            except Exception as err:  # noqa: BLE001 - a report, not a test
                return f"{name}() failed: {err}"
    return None


def serve(inp, out) -> None:
    """The worker's loop: answer requests until "quit" or end of input."""
    sys.path.insert(0, HERE)
    from timing import settle, time_calls
    import crnn
    import crnn._core as core
    state: Dict[str, Any] = {}
    default_threads = crnn.get_num_threads()

    def handle(req: Dict[str, Any]) -> Dict[str, Any]:
        op = req["op"]
        if op == "hello":
            return {"file": crnn.__file__, "version": crnn.__version__,
                    "default_threads": default_threads, "isa": crnn_isa(core),
                    "env_isa": os.environ.get("CRNN_ISA")}
        if op == "build":
            state.clear()
            try:
                handle = core.RNN(req["weights"], **req["kwargs"])
            except TypeError as err:  # an older crnn without this cell's keywords
                if req["cell"] != "simple" and "keyword" in str(err):
                    return {"unsupported": f"this crnn has no {req['cell']} cell ({err})"}
                raise
            state["fwd"], state["x"] = handle.forward, req["x"]
            state["handle"] = handle
            return {"ok": True}
        fwd, x = state["fwd"], state["x"]
        crnn.set_num_threads(req["threads"])
        if op == "run":
            return {"out": fwd(x)}
        if op == "time":
            samples = time_calls(lambda: fwd(x), req["count"], req["warm"])
            settle()
            return {"samples": samples}
        raise ValueError(f"unknown op {op!r}")

    while True:
        try:
            req = pickle.load(inp)
        except EOFError:
            return
        if req.get("op") == "quit":
            return
        try:
            ans = handle(req)
        except Exception as err:  # noqa: BLE001 - reported to the client
            ans = {"error": f"{type(err).__name__}: {err}"}
        pickle.dump(ans, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()


class Worker:
    """A worker process running the crnn found at ``root`` (a checkout or site-packages)."""

    def __init__(self, root: str, label: str) -> None:
        self.root, self.label = os.path.abspath(root), label
        env = dict(os.environ)
        env["PYTHONPATH"] = self.root + (os.pathsep + env["PYTHONPATH"]
                                         if env.get("PYTHONPATH") else "")
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__)], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=HERE)
        self.info = self.call({"op": "hello"})
        pkg = os.path.dirname(os.path.realpath(self.info["file"]))
        if os.path.dirname(pkg) != os.path.realpath(self.root):
            self.close()
            raise RuntimeError(f"{label}: the worker imported crnn from {pkg}, expected "
                               f"{self.root}/crnn (is an installed crnn shadowing it?)")

    def call(self, req: Dict[str, Any]) -> Dict[str, Any]:
        pickle.dump(req, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        self.proc.stdin.flush()
        try:
            ans = pickle.load(self.proc.stdout)
        except EOFError:
            raise RuntimeError(f"{self.label}: the worker exited "
                               f"(status {self.proc.wait()})") from None
        if "error" in ans:
            raise RuntimeError(f"{self.label}: {ans['error']}")
        return ans

    def build(self, cell: str, weights: List[Any], kwargs: Dict[str, Any], x) -> Optional[str]:
        """Build the handle for this shape; None, or why this build cannot run the cell."""
        return self.call({"op": "build", "cell": cell, "weights": weights, "kwargs": kwargs,
                          "x": x}).get("unsupported")

    def run(self, threads: int):
        return self.call({"op": "run", "threads": threads})["out"]

    def time(self, threads: int, count: int, warm: bool) -> List[int]:
        return self.call({"op": "time", "threads": threads, "count": count,
                          "warm": warm})["samples"]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                pickle.dump({"op": "quit"}, self.proc.stdin)
                self.proc.stdin.close()
            except OSError:
                pass
            self.proc.wait(timeout=30)


if __name__ == "__main__":
    channel_in = os.fdopen(os.dup(sys.stdin.fileno()), "rb")
    channel_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not corrupt the pipe
    serve(channel_in, channel_out)
