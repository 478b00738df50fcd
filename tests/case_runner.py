"""Run entry points as separate processes, fast: each case is forked from one interpreter that imported the
project once, so a case costs its own work, not Python's and torch's start-up (about 2 s each).

Every case is its own process (``os.fork``), with its own exit status, stdout and stderr (files), its own
working directory and environment, exactly as ``python <script>.py ARGS`` would run it: the script's
``main`` is called the way its ``if __name__ == "__main__"`` block calls it, and an uncaught exception
prints its traceback and exits 1. A case may inject a fault first (kill itself with SIGKILL at the n-th
``os.replace`` / ``os.rename`` / ``os.fsync`` whose path matches, as a kill -9 at that moment would) or
run as another user (for unreadable files when the tests run as root).

    with CaseServer() as server:
        result = server.run("train_simclr", ["--epochs", "1"], cwd=tmp)
        result.returncode, result.stdout, result.stderr
"""
from __future__ import annotations

import fnmatch
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# entry point -> (module, script path as the user types it, whether main's return value is the exit status)
ENTRY_POINTS = {
    "train_simclr": ("train_simclr", "train_simclr.py", False),
    "train_linear": ("train_linear", "train_linear.py", False),
    "train_fewshot": ("train_fewshot", "train_fewshot.py", False),
    "infer_features": ("infer_features", "infer_features.py", False),
    "sample_mak": ("sample_mak", "sample_mak.py", False),
    "report": ("report", "report.py", True),
    "make_splits": ("splits.make_splits", "splits/make_splits.py", True),
}


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


# ---- the server: runs in its own interpreter ------------------------------------------------------------

def _warm_up() -> dict:
    """Import every entry point and the heavy libraries they load lazily, so no case pays for it."""
    import importlib

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import sklearn.cluster  # noqa: F401
    import torch
    from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    torch.set_num_threads(1)
    "".encode("cp437")  # zipfile's codec, imported lazily: a case run as another user may not read the stdlib
    return {name: importlib.import_module(module) for name, (module, _, _) in ENTRY_POINTS.items()}


def _install_fault(fault: dict) -> None:
    """SIGKILL this process at the ``nth`` call of ``fault["call"]`` (replace, rename, fsync) whose path
    (the destination; for fsync the file behind the descriptor) matches ``fault["match"]``, ``before``
    or ``after`` the call itself."""
    call, pattern, nth, when = fault["call"], fault["match"], fault.get("nth", 1), fault.get("when", "after")
    original = getattr(os, call)
    seen = [0]

    def target_of(args):
        if call == "fsync":
            try:
                return os.readlink(f"/proc/self/fd/{args[0]}")
            except OSError:
                return ""
        return os.fspath(args[1])

    def wrapped(*args, **kwargs):
        hit = fnmatch.fnmatch(os.path.basename(target_of(args)), pattern)
        if hit:
            seen[0] += 1
        if hit and seen[0] == nth and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(*args, **kwargs)
        if hit and seen[0] == nth and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(os, call, wrapped)


def _child(modules: dict, request: dict) -> int:
    """In the forked process: become the case, run it, return its exit status."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, fd)
        os.close(out)
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    os.environ.update(request.get("env") or {})
    for name in request.get("unset_env") or ():
        os.environ.pop(name, None)
    os.chdir(request["cwd"])
    name = request["entry"]
    module, script, returns_status = ENTRY_POINTS[name]
    sys.argv = [script, *request["argv"]]
    if request.get("fault"):
        _install_fault(request["fault"])
    if request.get("uid") is not None:
        os.setgroups([])
        os.setgid(request["uid"])
        os.setuid(request["uid"])
    try:
        value = modules[name].main(request["argv"])
        return value if returns_status and isinstance(value, int) else 0
    except SystemExit as e:
        if e.code is None:
            return 0
        if isinstance(e.code, int):
            return e.code
        print(e.code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1


def serve() -> None:
    """Read one JSON request a line from stdin, fork a case for each, answer ``{"id", "pid"}`` at once and
    ``{"id", "status"}`` when it ends (status: the exit code, or -signal)."""
    modules = _warm_up()
    out = sys.stdout
    print(json.dumps({"ready": True}), file=out, flush=True)
    running: dict[int, str] = {}
    selector = selectors.DefaultSelector()
    selector.register(sys.stdin, selectors.EVENT_READ)
    open_input = True
    while open_input or running:
        if open_input and selector.select(timeout=0.02):
            line = sys.stdin.readline()
            if not line:
                open_input = False
                continue
            request = json.loads(line)
            out.flush()
            pid = os.fork()
            if pid == 0:
                status = 1
                try:
                    status = _child(modules, request)
                except BaseException:
                    traceback.print_exc()
                finally:
                    try:
                        sys.stdout.flush()
                        sys.stderr.flush()
                    finally:
                        os._exit(status & 0xFF if status >= 0 else 1)
            running[pid] = request["id"]
            print(json.dumps({"id": request["id"], "pid": pid}), file=out, flush=True)
        elif not open_input:
            time.sleep(0.02)
        while running:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            print(json.dumps({"id": running.pop(pid), "status": code}), file=out, flush=True)


# ---- the client ---------------------------------------------------------------------------------------

class CaseServer:
    """The server process and the cases in flight."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="ltssl-cases-"))
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "TQDM_DISABLE": "1", "MPLBACKEND": "Agg"}
        self.process = subprocess.Popen([sys.executable, "-c", "from tests.case_runner import serve; serve()"],
                                        cwd=REPO_ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, bufsize=1)
        ready = self.process.stdout.readline()
        if not ready:
            raise RuntimeError("the case server did not start")
        self.lock = threading.Lock()
        self.pending: dict[str, dict] = {}
        self.count = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            reply = json.loads(line)
            with self.lock:
                entry = self.pending.get(reply["id"])
            if entry is None:
                continue
            if "pid" in reply:
                entry["pid"].set_result(reply["pid"])
            else:
                entry["status"].set_result(reply["status"])

    def start(self, entry: str, argv, cwd, env: dict | None = None, fault: dict | None = None,
              uid: int | None = None, unset_env=()) -> dict:
        with self.lock:
            self.count += 1
            case_id = f"c{self.count}"
            handle = {"id": case_id, "pid": Future(), "status": Future(), "started": time.time(),
                      "stdout": str(self.folder / f"{case_id}.out"), "stderr": str(self.folder / f"{case_id}.err")}
            self.pending[case_id] = handle
        request = {"id": case_id, "entry": entry, "argv": [str(a) for a in argv], "cwd": str(cwd),
                   "env": env or {}, "unset_env": list(unset_env), "fault": fault, "uid": uid,
                   "stdout": handle["stdout"], "stderr": handle["stderr"]}
        with self.lock:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        return handle

    def wait(self, handle: dict, timeout: float = 300) -> Result:
        try:
            status = handle["status"].result(timeout=timeout)
        except TimeoutError:
            os.kill(handle["pid"].result(timeout=5), signal.SIGKILL)
            status = handle["status"].result(timeout=30)
        with self.lock:
            self.pending.pop(handle["id"], None)
        read = lambda p: Path(p).read_text(errors="replace")
        return Result(status, read(handle["stdout"]), read(handle["stderr"]), time.time() - handle["started"])

    def run(self, entry: str, argv, cwd, **kwargs) -> Result:
        timeout = kwargs.pop("timeout", 300)
        return self.wait(self.start(entry, argv, cwd, **kwargs), timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        for f in self.folder.iterdir():
            f.unlink()
        self.folder.rmdir()

    def __enter__(self) -> "CaseServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
