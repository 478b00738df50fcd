r"""GPU acceptance check: every CUDA path of the project in one command, in under 8 minutes on one GPU.

    bash cmds/gpu_check.sh                  # a CUDA machine; results in $OUT (default runs/gpu_check)
    bash cmds/gpu_check.sh -g 4             # stage 4 across 4 GPUs with NCCL
    bash cmds/gpu_check.sh --dry_run        # every stage with its commands and time limit; runs nothing
    bash cmds/gpu_check.sh --cpu_smoke      # stages 0-4 on the CPU at tiny sizes (CI), a few minutes
    bash cmds/gpu_check.sh --stages 5       # some stages only (0, the data, is added when 2-4 need it)

Each stage runs under a hard time limit (its processes are killed when it is spent), all stages under one
overall budget (--budget_s): a stage gets its own limit or what the budget leaves after the reserves of
the stages still to come, whichever is less. A failing or hanging stage does not stop the others, and
gpu_check.md / gpu_check.json are rewritten after every stage, so a kill leaves the stages done so far.

  0  data: the embedded synthetic patterns written as a CIFAR-10 folder, its OOD images as a 300K-format pool
  1  versions and device, then the CUDA-marked tests (pytest -m cuda): GPU results against the CPU's
  c  --compile against the eager model (in the background during stages 2-4; joined before stage 5)
  2  per variant of RESUME_VARIANTS: a 1-GPU run with COLT sampling rounds, SIGKILLed once a checkpoint is
     written and resumed, against an uninterrupted run (deterministic algorithms: bitwise)
  3  the MAK chain on the GPU: pre-training, inference (plain and augmented passes), sampling, re-training
  4  two processes on the one GPU (NCCL if it allows two ranks on one GPU, else gloo on the GPU): the
     gathered loss, its gradients, the SyncBatchNorm statistics and the tailness equal one process's on
     the same global batch; then a 2-process COLT run against a 1-process run. -g N (N >= 2): N processes
     on N GPUs with NCCL.
  5a bench/bench_train.py, CIFAR ResNet-18 batch 512, with the 300,000 + 12,000 sampling round
  5b bench/bench_train.py --kind imagenet, ResNet-50 batch 256 at 224 px (stages 1-3 of the benchmark)
  5c bench/bench_mak.py on the GPU: K-center K = 10,000 of 15,000, 12,000 covered, d = 2048; ECLE of
     100,000 items, R = 10

Outputs in --out: gpu_check.md (the stages, the benchmarks against the targets, device, versions, date),
gpu_check.json, gpu_check.log (every command's output, capped) and the benchmarks' JSON files, each well
under 1 MB. Scratch data go to --work (a temporary folder, removed at the end unless --keep_work).
The orchestration needs only the standard library; the steps that need torch are this file's subcommands
(``python cmds/gpu_check.py STEP ...``), run as processes under the stage's limit.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
THIS = Path(__file__).resolve()
sys.path.insert(0, str(REPO_ROOT))  # the steps import the project from the checkout

# Method variants of stage 2's kill-and-resume check: (name, extra train_simclr.py flags). The common
# flags (CIFAR-format data, COLT's warm-up, interval, budget and clusters, which only COLT reads) are in
# resume_args(); each variant costs an uninterrupted run, a killed one and its resume (about 20 s on a GPU).
RESUME_VARIANTS = [
    ("colt", ["--COLT"]),
    ("sdclr_colt", ["--prune", "--prune_percent", "0.9", "--prune_dual_bn", "--COLT"]),
    ("bcl_d", ["--bcl", "--rand_k", "2", "--prune", "--prune_percent", "0.9", "--prune_dual_bn"]),
]

# The targets for the benchmarks: (JSON file, key, comparison, bound, label).
TARGETS = [
    ("bench_train_cifar.json", "batched_over_model", ">=", 0.90,
     "CIFAR ResNet-18, batch 512: batched-augmentation step / model-only step (speed)"),
    ("bench_train_cifar.json", "colt_over_plain", "<=", 1.03, "CIFAR: SimCLR+COLT step time / SimCLR step time"),
    ("bench_train_cifar.json", "round_over_epoch", "<", 0.25,
     "CIFAR: one sampling round (300,000 pool + 12,000 ID) / one epoch of ID + budget"),
    ("bench_train_imagenet.json", "batched_over_model", ">=", 0.90,
     "ImageNet-size ResNet-50, batch 256, 224 px: batched step / model-only step (speed)"),
    ("bench_train_imagenet.json", "colt_over_plain", "<=", 1.03, "ImageNet-size: SimCLR+COLT step / SimCLR step"),
    ("bench_train_cifar.json", "sdclr_over_simclr", "<=", 1.10, "CIFAR: SDCLR step (both branches) / SimCLR step"),
    ("bench_train_cifar.json", "bcl_i_over_batched_simclr", "<=", 1.10,
     "CIFAR: BCL-I batched step (RandAugment) / batched SimCLR step"),
    ("bench_train_cifar.json", "bcl_d_over_batched_simclr", "<=", 1.10,
     "CIFAR: BCL-D augmentation + step / batched SimCLR step"),
]
LOG_CAP_PER_COMMAND = 40_000  # characters of a command's output kept in gpu_check.log (head and tail)
LOG_CAP_TOTAL = 900_000


@dataclass(frozen=True)
class Profile:
    """Sizes of one mode: the GPU check, or the CPU smoke run that keeps the script's code alive in CI."""
    name: str
    device: str          # cuda or cpu
    width: int           # ResNet-18 width of stages 2-4
    batch: int           # global batch of stages 2-4
    steps: int           # --max_steps_per_epoch
    epochs: int          # stage 2's runs
    kill_after: int      # stage 2: SIGKILL once model_<kill_after>.pt is written
    interval: int        # stage 2: --sample_interval (first round at epoch 2: --warmup 1)
    budget: int          # COLT's images per round
    clusters: int        # COLT's k-means clusters
    k_largest: int       # --k_largest_logits
    pool_items: int      # generated pool size
    mak_budget: int      # MAK's --sampling_num
    mak_repeats: int     # augmented passes of the pool
    infer_batch: int
    chunk: int           # inference chunk size
    workers: int         # --num_workers of the training and inference runs
    id_stride: int       # the ID split: every id_stride-th image of the embedded training set
    pytest: bool         # stage 1 runs pytest -m cuda (the CPU smoke leaves that to the CI's test suite)
    compile: bool        # run stage c
    bench: bool          # run stage 5
    limit_scale: float   # the stages' time limits and reserves times this
    env: tuple = ()      # (name, value) pairs set for every command


GPU = Profile("gpu", "cuda", width=64, batch=256, steps=8, epochs=5, kill_after=3, interval=2, budget=1000,
              clusters=5, k_largest=10, pool_items=6000, mak_budget=1000, mak_repeats=3, infer_batch=1024,
              chunk=8192, workers=4, id_stride=1, pytest=True, compile=True, bench=True, limit_scale=1.0)
# The CPU smoke: every stage's code at the smallest sizes that still have a round before and after the
# kill. One thread per process: on a shared 2-core machine two torch threads per process waited on each
# other (an epoch of 2 steps took 18 s with 2 threads, 0.9 s with 1). Its time is mostly the processes'
# start-up (importing torch), so its limits are generous.
CPU_SMOKE = Profile("cpu_smoke", "cpu", width=4, batch=32, steps=2, epochs=3, kill_after=1, interval=1, budget=32,
                    clusters=3, k_largest=5, pool_items=512, mak_budget=32, mak_repeats=2, infer_batch=256,
                    chunk=256, workers=0, id_stride=5, pytest=False, compile=False, bench=False, limit_scale=2.5,
                    env=(("OMP_NUM_THREADS", "1"), ("MKL_NUM_THREADS", "1")))


@dataclass
class Stage:
    key: str
    title: str
    limit_s: int          # its own hard limit
    reserve_s: int        # what earlier stages must leave it of the overall budget
    body: object = None   # function(run: StageRun) -> None
    background: bool = False


@dataclass
class Result:
    rc: int
    seconds: float
    timed_out: bool
    output: str


class Aborted(Exception):
    """The whole check was told to stop (SIGTERM / SIGINT)."""


@dataclass
class StageRun:
    """One stage while it runs: its deadline, its commands, its outcome."""
    check: "Check"
    stage: Stage
    deadline: float
    commands: list = field(default_factory=list)
    status: str = "running"
    details: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    started: float = 0.0
    seconds: float = 0.0
    limit: float = 0.0

    @property
    def dry(self) -> bool:
        return self.check.dry_run

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, argv: list, env: dict | None = None, timeout: float | None = None, note: str = "",
            kill_when=None, cwd: Path | None = None) -> Result:
        """Run ``argv`` (its own process group) until it ends, ``timeout`` or the stage's deadline passes
        (then its whole group is killed), or ``kill_when()`` holds (then SIGKILL, on purpose)."""
        shown = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
        shown = (shown + " " if shown else "") + " ".join(shlex.quote(str(a)) for a in argv)
        self.commands.append(shown + (f"   # {note}" if note else ""))
        if self.dry:
            return Result(0, 0.0, False, "")
        limit = self.left() if timeout is None else min(timeout, self.left())
        if limit <= 1:
            return Result(-1, 0.0, True, "no time left in this stage")
        return self.check.execute([str(a) for a in argv], env or {}, limit, kill_when, cwd, shown)

    def fail(self, message: str) -> None:
        self.status = "fail"
        self.notes.append(message)

    def note(self, message: str) -> None:
        self.notes.append(message)


class Check:
    def __init__(self, args, profile: Profile):
        self.args, self.profile = args, profile
        self.dry_run = args.dry_run
        self.out, self.work = Path(args.out), Path(args.work)
        self.python = sys.executable
        self.gpus = args.gpus
        self.started_wall = time.time()
        self.start = time.monotonic()
        self.budget_end = self.start + args.budget_s
        self.runs: list[StageRun] = []
        self.lock = threading.Lock()
        self.children: dict[int, subprocess.Popen] = {}
        self.aborted = False
        self.log_chars = 0
        self.env_info: dict = {}
        self.skipped: list[str] = []
        self.stages = build_stages(self)
        self.selected = select_stages(args.stages, profile)

    # --- processes -------------------------------------------------------------------------------------
    def execute(self, argv, env, limit, kill_when, cwd, shown) -> Result:
        full_env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(REPO_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]),
            "PYTHONUNBUFFERED": "1", **dict(self.profile.env), **env}
        start = time.monotonic()
        with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as sink:
            proc = subprocess.Popen(argv, cwd=cwd or REPO_ROOT, env=full_env, stdout=sink, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            with self.lock:
                self.children[proc.pid] = proc
            timed_out = killed_on_purpose = False
            try:
                while proc.poll() is None:
                    if self.aborted:
                        raise Aborted
                    if time.monotonic() - start > limit:
                        timed_out = True
                        break
                    if kill_when is not None and kill_when():
                        killed_on_purpose = True
                        break
                    time.sleep(0.02 if kill_when is not None else 0.2)
            finally:
                if proc.poll() is None:
                    stop_group(proc, hard=killed_on_purpose)
                with self.lock:
                    self.children.pop(proc.pid, None)
            sink.seek(0)
            output = sink.read()
        seconds = time.monotonic() - start
        rc = proc.returncode
        if timed_out:
            output += f"\n[gpu_check] killed after {seconds:.0f} s: the time limit of this command was {limit:.0f} s\n"
        self.log(f"$ {shown}\n[gpu_check] rc {rc}, {seconds:.1f} s{' (time limit)' if timed_out else ''}\n", output)
        return Result(rc if not timed_out else 124, seconds, timed_out, output)

    def kill_children(self) -> None:
        with self.lock:
            procs = list(self.children.values())
        for proc in procs:
            stop_group(proc, hard=False)

    def log(self, header: str, output: str) -> None:
        if len(output) > LOG_CAP_PER_COMMAND:
            cut = len(output) - LOG_CAP_PER_COMMAND
            output = (output[:LOG_CAP_PER_COMMAND // 4] + f"\n[gpu_check] ... {cut} characters left out ...\n"
                      + output[-3 * LOG_CAP_PER_COMMAND // 4:])
        text = header + output + ("" if output.endswith("\n") else "\n") + "\n"
        with self.lock:
            if self.log_chars + len(text) > LOG_CAP_TOTAL:
                text = header + "[gpu_check] output left out: gpu_check.log is full\n\n"
            self.log_chars += len(text)
            with open(self.out / "gpu_check.log", "a", encoding="utf-8") as f:
                f.write(text)

    def helper(self, step: str, *args) -> list:
        return [self.python, str(THIS), step, *map(str, args)]

    def py(self, script_and_args: list) -> list:
        return [self.python, *script_and_args]

    # --- stages ----------------------------------------------------------------------------------------
    def reserve_after(self, stage: Stage) -> int:
        keys = [s.key for s in self.stages]
        later = self.stages[keys.index(stage.key) + 1:]
        return sum(s.reserve_s * self.profile.limit_scale for s in later if s.key in self.selected
                   and not s.background)

    def begin(self, stage: Stage) -> StageRun:
        now = time.monotonic()
        own = stage.limit_s * self.profile.limit_scale
        limit = own if self.dry_run else max(0.0, min(own, self.budget_end - now - self.reserve_after(stage)))
        run = StageRun(self, stage, deadline=now + limit, started=now, limit=limit)
        with self.lock:
            self.runs.append(run)
        self.write_report()  # a kill from outside still shows which stage was running
        return run

    def finish(self, run: StageRun, error: BaseException | None = None) -> None:
        run.seconds = time.monotonic() - run.started
        if self.dry_run:
            run.status = "planned"
        elif isinstance(error, Aborted):
            run.status, run.notes = "killed", run.notes + ["the whole check was stopped during this stage"]
        elif error is not None:
            run.status = "error"
            run.notes.append(f"{type(error).__name__}: {error}")
        elif run.status == "running":
            run.status = "pass"
        if not self.dry_run and run.left() <= 1 and run.status != "pass" and run.limit < run.stage.limit_s:
            run.notes.append(f"its limit was cut to {run.limit:.0f} s by the overall budget")
        self.write_report()

    def run_stage(self, stage: Stage) -> StageRun:
        run = self.begin(stage)
        if not self.dry_run and run.limit < 3:
            run.status = "skipped"
            run.notes.append("no time left in the overall budget")
            self.finish(run)
            return run
        try:
            stage.body(run)
        except BaseException as e:  # noqa: BLE001 - one stage's failure must not stop the others
            self.finish(run, e)
            if isinstance(e, (Aborted, KeyboardInterrupt)):
                raise Aborted from None
            return run
        self.finish(run)
        return run

    def main(self) -> int:
        if not self.dry_run:
            self.out.mkdir(parents=True, exist_ok=True)
            self.work.mkdir(parents=True, exist_ok=True)
            (self.out / "gpu_check.log").write_text("", encoding="utf-8")
        background = None
        try:
            for stage in self.stages:
                if stage.key not in self.selected:
                    continue
                if stage.background:
                    if self.dry_run:
                        self.run_stage(stage)
                    else:
                        background = threading.Thread(target=self._background, args=(stage,), daemon=True)
                        background.start()
                    continue
                if stage.key.startswith("5") and background is not None:
                    self.join(background)
                    background = None
                self.run_stage(stage)
            if background is not None:
                self.join(background)
        except Aborted:
            self.kill_children()
            self.write_report()
            return 124
        self.write_report()
        if self.dry_run:
            print_plan(self)
            return 0
        failed = [r.stage.key for r in self.runs if r.status not in ("pass", "skipped")]
        print(f"gpu_check: {len(self.runs) - len(failed)} of {len(self.runs)} stages passed or skipped"
              f"{'; not passed: ' + ', '.join(failed) if failed else ''}; report in {self.out / 'gpu_check.md'}")
        return 1 if failed else 0

    def _background(self, stage: Stage) -> None:
        try:
            self.run_stage(stage)
        except Aborted:
            pass

    def join(self, thread: threading.Thread) -> None:
        """Wait for the background stage; its own limit bounds the wait (its processes are killed then)."""
        while thread.is_alive():
            if self.aborted:
                raise Aborted
            thread.join(0.2)

    # --- report ----------------------------------------------------------------------------------------
    def write_report(self) -> None:
        if self.dry_run:
            return
        with self.lock:
            report = build_report(self)
            write_text_atomic(self.out / "gpu_check.json", json.dumps(report, indent=1, default=str) + "\n")
            write_text_atomic(self.out / "gpu_check.md", render_markdown(report))


def stop_group(proc: subprocess.Popen, hard: bool) -> None:
    """SIGKILL (``hard``) or SIGTERM then, after 5 s, SIGKILL to the process's whole group."""
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        return
    try:
        os.killpg(pgid, signal.SIGKILL if hard else signal.SIGTERM)
        if not hard:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(pgid, signal.SIGKILL)
        proc.wait(10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


# --- the stages ------------------------------------------------------------------------------------------

def data_args(check: Check) -> list:
    w = check.work / "data"
    return ["--dataset", "cifar10", "--data", w, "--trainSplit", w / "lt_split.npy"]


def train_args(check: Check, name: str, save_dir: Path, *extra) -> list:
    p = check.profile
    # --aug_device gpu: the batched augmentation, device-resident uint8 data (on the CPU in the smoke)
    return ["train_simclr.py", name, *data_args(check), "--width", p.width, "--batch_size", p.batch,
            "--max_steps_per_epoch", p.steps, "--lr_warmup_epochs", 1, "--num_workers", p.workers,
            "--device", p.device, "--aug_device", "gpu", "--print_freq", 4, "--save-dir", save_dir, *extra]


def colt_args(check: Check) -> list:
    p = check.profile
    return ["--sample_set", "300K_random_images", "--ood_data", check.work / "data" / "pool.npy", "--warmup", 1,
            "--sample_interval", p.interval, "--budget", p.budget, "--k_means_clusters", p.clusters,
            "--k_largest_logits", p.k_largest, "--embed_batch_size", 1024]


DETERMINISTIC_ENV = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}


def stage_data(run: StageRun) -> None:
    check = run.check
    result = run.run(check.helper("make_data", "--work", check.work, "--pool_items", check.profile.pool_items,
                                  "--id_stride", check.profile.id_stride))
    if run.dry:
        return
    summary = read_json(check.work / "data" / "summary.json")
    if result.rc != 0 or summary is None:
        return run.fail(f"data not written (rc {result.rc})")
    run.details.update(summary)


def stage_tests(run: StageRun) -> None:
    check = run.check
    info = check.work / "env.json"
    result = run.run(check.helper("env", "--json", info), timeout=60)
    if not run.dry:
        check.env_info = read_json(info) or {"error": f"env step failed (rc {result.rc})"}
        if check.profile.device == "cuda" and not check.env_info.get("cuda_available"):
            run.fail("torch sees no CUDA device")
    if not check.profile.pytest:
        run.note("pytest -m cuda left to the test suite (LTSSL_TEST_DEVICE=cpu lets the CPU stand in)")
        return
    xml = check.work / "pytest_cuda.xml"
    result = run.run([check.python, "-m", "pytest", "-m", "cuda", "-q", "-rs", "-p", "no:cacheprovider",
                      "--junitxml", xml, "tests"])
    if run.dry:
        return
    counts = junit_counts(xml)
    run.details.update(counts)
    last = [line for line in result.output.strip().splitlines() if line.strip()][-1:] or [""]
    run.details["pytest"] = last[0][-200:]
    if result.rc != 0 or not counts.get("passed"):
        run.fail(f"pytest -m cuda: rc {result.rc}" + (f"; failed: {', '.join(counts['failed_names'][:8])}"
                                                      if counts.get("failed_names") else ""))


def junit_counts(path: Path) -> dict:
    import xml.etree.ElementTree as ET
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return {}
    cases = list(root.iter("testcase"))
    failed = [f"{c.get('classname', '')}.{c.get('name', '')}" for c in cases
              if c.find("failure") is not None or c.find("error") is not None]
    skipped = [c for c in cases if c.find("skipped") is not None]
    return {"tests": len(cases), "passed": len(cases) - len(failed) - len(skipped), "failed": len(failed),
            "skipped": len(skipped), "failed_names": failed}


def stage_resume(run: StageRun) -> None:
    check, p = run.check, run.check.profile
    run.details["variants"] = {}
    for name, flags in RESUME_VARIANTS:
        base = check.work / "resume" / name
        common = [*flags, *colt_args(check), "--epochs", p.epochs, "--save_freq", 1, "--seed", 1]
        straight = train_args(check, name, base / "straight", *common)
        resumed = train_args(check, name, base / "resumed", *common)
        deterministic = check.helper("deterministic")
        first = run.run(deterministic + straight, env=DETERMINISTIC_ENV, note="uninterrupted")
        run_dir = base / "resumed" / name
        marker = run_dir / f"model_{p.kill_after}.pt"
        latest = run_dir / "model.pt"

        def saved_through_marker() -> bool:  # the snapshot is written before model.pt: wait for both
            try:
                return latest.stat().st_mtime_ns >= marker.stat().st_mtime_ns
            except FileNotFoundError:
                return False

        killed = run.run(deterministic + resumed, env=DETERMINISTIC_ENV, kill_when=saved_through_marker,
                         note=f"SIGKILL once {marker.name} and model.pt after it are written")
        kept = [] if run.dry else sorted(int(f.stem.split("_")[1]) for f in run_dir.glob("model_*.pt"))
        again = run.run(deterministic + resumed + ["--resume"], env=DETERMINISTIC_ENV, note="resumed")
        report = base / "compare.json"
        run.run(check.helper("compare_runs", base / "straight" / name, run_dir, "--json", report))
        if run.dry:
            continue
        found = {k: v for k, v in (read_json(report) or {}).items() if k not in ("run", "other")}
        found.update(killed_at_epoch=max(kept) if kept else None, epochs=p.epochs)
        run.details["variants"][name] = found
        problems = []
        if first.rc != 0 or again.rc != 0:
            problems.append(f"a run failed (uninterrupted rc {first.rc}, resumed rc {again.rc})")
        if killed.rc != -signal.SIGKILL:
            problems.append(f"the run to be killed ended by itself (rc {killed.rc}) before {marker.name} appeared")
        elif not kept or max(kept) >= p.epochs:
            problems.append("the kill came too late: the run had finished, nothing was resumed")
        elif "resumed from" not in read_text(run_dir / "log.txt"):
            problems.append("the resumed run did not say it resumed")
        warned = sum(r.output.count("does not have a deterministic implementation") for r in (first, again))
        found["nondeterministic_warnings"] = warned
        if found.get("bitwise"):
            pass
        elif found.get("selections_equal") and warned and found.get("max_rel_diff", 1) <= 1e-3:
            run.note(f"{name}: not bitwise ({warned} warnings of ops without a deterministic CUDA kernel); "
                     f"largest relative weight difference {found['max_rel_diff']:.2e} <= 1e-3, same OOD picks")
        else:
            problems.append(f"weights differ from the uninterrupted run (max |diff| {found.get('max_abs_diff')}, "
                            f"{found.get('tensors_differing')} tensors; OOD picks equal: "
                            f"{found.get('selections_equal')})")
        for problem in problems:
            run.fail(f"{name}: {problem}")


def stage_compile(run: StageRun) -> None:
    check = run.check
    base = check.work / "compile"
    extra = ["--epochs", 1, "--precision", "fp32", "--print_freq", 1]
    eager = run.run(check.py(train_args(check, "eager", base, *extra)), timeout=60)
    compiled = run.run(check.py(train_args(check, "compiled", base, *extra, "--compile")))
    report = base / "compare.json"
    run.run(check.helper("compare_runs", base / "eager", base / "compiled", "--json", report), timeout=60)
    if run.dry:
        return
    found = read_json(report) or {}
    run.details.update({k: found.get(k) for k in ("first_loss", "first_loss_other", "loss_rel_diff",
                                                   "max_rel_diff", "epoch_seconds", "epoch_seconds_other")})
    run.details["note"] = "epoch_seconds_other includes the compilation"
    if eager.rc != 0 or compiled.rc != 0:
        return run.fail(f"a run failed (eager rc {eager.rc}, compiled rc {compiled.rc})")
    if found.get("loss_rel_diff") is None or found["loss_rel_diff"] > 1e-2:
        run.fail(f"compiled and eager first-epoch losses differ by {found.get('loss_rel_diff')} (> 1e-2)")


def stage_mak(run: StageRun) -> None:
    check, p = run.check, run.check.profile
    base, data = check.work / "mak", check.work / "data"
    infer = base / "infer"
    pre = run.run(check.py(train_args(check, "pretrain", base / "runs", "--epochs", 2)))
    ckpt = base / "runs" / "pretrain" / "model.pt"
    common = ["--checkpoint", ckpt, "--save-dir", infer, "--device", p.device, "--batch_size", p.infer_batch,
              "--chunk_size", p.chunk, "--num_workers", p.workers]
    pool = ["--inference_dataset", "300K_random_images", "--inference_dataset_split", data / "pool.npy"]
    steps = [run.run(check.py(["infer_features.py", "pool_noaug", *pool, "--inference_noAug", *common])),
             run.run(check.py(["infer_features.py", "train_noaug", "--inference_dataset", "cifar10", "--data", data,
                               "--inference_dataset_split", data / "lt_split.npy", "--inference_noAug", *common])),
             run.run(check.py(["infer_features.py", "pool_aug", *pool, "--inference_repeat_time", p.mak_repeats,
                               *common]))]
    sample = run.run(check.py(["sample_mak.py", "--inference_root", infer, "--no_aug_sampling_dataset_inference_exp",
                      "pool_noaug", "--no_aug_training_dataset_inference_exp", "train_noaug",
                      "--aug_sampling_dataset_inference_exp", "pool_aug", "--loss_repeat_time", p.mak_repeats,
                      "--sampling_num", p.mak_budget, "--split_save_dir", base / "splits", "--loss_txt_name",
                      "mak_split", "--device", p.device]))
    retrain = run.run(check.py(train_args(check, "retrain", base / "runs", "--epochs", 1, "--additional_dataset",
                                          "300K_random_images", "--additional_split",
                                          base / "splits" / "mak_split.npy", "--additional_data", data / "pool.npy")))
    report = base / "check.json"
    run.run(check.helper("check_mak", "--work", base, "--pool_items", p.pool_items, "--budget", p.mak_budget,
                         "--json", report), timeout=60)
    if run.dry:
        return
    names = ["pretrain", "infer pool", "infer ID", "infer pool x R", "sample", "retrain"]
    rcs = [r.rc for r in (pre, *steps, sample, retrain)]
    run.details["steps"] = dict(zip(names, rcs))
    found = read_json(report) or {}
    run.details.update(found)
    if any(rcs):
        run.fail("failed steps: " + ", ".join(n for n, rc in zip(names, rcs) if rc))
    for problem in found.get("problems", ["the MAK outputs were not checked"]):
        run.fail(problem)


def stage_dist(run: StageRun) -> None:
    check, p = run.check, run.check.profile
    base = check.work / "dist"
    on_gpu = p.device == "cuda"
    procs = check.gpus if on_gpu and check.gpus > 1 else 2
    if not on_gpu:
        attempts = [("gloo", {"LTSSL_DIST_BACKEND": "gloo"})]
    elif check.gpus > 1:
        attempts = [("nccl", {"LTSSL_DIST_BACKEND": "nccl"})]
    else:
        share = {"LTSSL_SHARE_GPU": "1"}
        attempts = [("nccl", {"LTSSL_DIST_BACKEND": "nccl", **share}), ("gloo", {"LTSSL_DIST_BACKEND": "gloo", **share})]
    batch = 16 * procs if p.device == "cpu" else 64 * procs
    train = [a for a in train_args(check, "run", Path("SAVE"), "--COLT", *colt_args(check), "--epochs", 2,
                                   "--precision", "fp32")][1:]  # without the script
    used = None
    for backend, env in attempts:
        report = base / f"{backend}.json"
        result = run.run([check.python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", procs,
                          str(THIS), "dist_step", "--device", p.device, "--batch", batch, "--width", p.width,
                          "--json", report, "--save_dir", base / f"{backend}_runs", "--", *train],
                         env={**env, **DETERMINISTIC_ENV}, timeout=45 if backend == "nccl" and len(attempts) > 1 else None,
                         note="if it fails: the next line" if backend == "nccl" and len(attempts) > 1 else "")
        if run.dry:
            continue
        found = read_json(report)
        if result.rc == 0 and found is not None:
            used = (backend, found)
            break
        tail = " ".join(result.output.strip().splitlines()[-3:])[-300:]
        run.note(f"{backend} with {procs} processes failed (rc {result.rc}): {tail}")
    single = run.run(check.helper("deterministic", "--no_tf32", "train_simclr.py",
                                  *[str(a).replace("SAVE", str(base / "single")) for a in train]),
                     env=DETERMINISTIC_ENV, note="one process, for the multi-process run to match")
    compare = base / "compare.json"
    if run.dry:
        run.run(check.helper("compare_runs", base / "single" / "run", base / "BACKEND_runs" / "run", "--json",
                             compare), note="BACKEND: the one that ran")
        return
    if used is not None:
        run.run(check.helper("compare_runs", base / "single" / "run", base / f"{used[0]}_runs" / "run",
                             "--json", compare), timeout=60)
    if used is None:
        return run.fail("no backend ran the 2-process check")
    backend, found = used
    run.details.update(found)
    trained = read_json(compare) or {}
    run.details["train_vs_single"] = {k: trained.get(k) for k in ("max_rel_diff", "selection_overlap",
                                                                  "first_loss", "first_loss_other")}
    if on_gpu and check.gpus == 1:
        if backend == "gloo":
            run.note("NCCL refused two ranks on one GPU; gloo on the GPU ran instead (SyncBatchNorm checked "
                     "through gloo's all_gather)")
        check.skipped.append("NCCL across several GPUs: one GPU here (run with -g N on N GPUs)")
    for problem in found.get("problems", []):
        run.fail(problem)
    if single.rc != 0:
        run.fail(f"the 1-process run failed (rc {single.rc})")
    elif not found.get("sync_batchnorm"):
        run.note("the multi-process run keeps BatchNorm statistics per process (no SyncBatchNorm on the CPU), "
                 "so it is not expected to match the 1-process run: its figures are for information")
    elif trained.get("max_rel_diff") is None or trained["max_rel_diff"] > 1e-2 or \
            (trained.get("selection_overlap") or 0) < 0.95:
        run.fail(f"the {procs}-process COLT run differs from the 1-process run: largest relative weight "
                 f"difference {trained.get('max_rel_diff')} (> 1e-2) or OOD pick overlap "
                 f"{trained.get('selection_overlap')} (< 0.95)")


def bench_stage(kind: str):
    def body(run: StageRun) -> None:
        check = run.check
        workers = max(2, min(12, (os.cpu_count() or 4) - 2))
        if kind == "mak":
            out = check.out / "bench_mak.json"
            result = run.run([check.python, "bench/bench_mak.py", "--devices", "cuda", "--ecle_n", 100000, "--out", out])
        else:
            out = check.out / f"bench_train_{kind}.json"
            steps = 10 if kind == "cifar" else 5
            result = run.run([check.python, "bench/bench_train.py", "--kind", kind, "--device", "cuda", "--steps",
                              steps, "--num_workers", workers, "--out", out])
        if run.dry:
            return
        found = read_json(out)
        if result.rc != 0 or found is None:
            return run.fail(f"benchmark failed (rc {result.rc})")
        run.details.update(bench_summary(kind, found))
    return body


def bench_summary(kind: str, found: dict) -> dict:
    if kind == "mak":
        out = {}
        for r in found.get("k_center", []):
            out["k_center_s"] = r.get("ours_s")
            out["k_center_release_scaled_s"] = r.get("release_scaled_s")
        for r in found.get("ecle", []):
            out["ecle_per_100k_s"] = r.get("per_100k_s")
        return out
    keys = ("model_only_img_s", "per_image_step_img_s", "batched_step_img_s", "colt_over_plain", "round_s",
            "embed_s", "round_over_epoch", "peak_device_mib", "peak_host_mib", "batch_size", "sdclr_over_simclr",
            "sdclr_two_pass_over_simclr", "bcl_i_over_batched_simclr", "bcl_d_over_batched_simclr")
    out = {k: found.get(k) for k in keys if found.get(k) is not None}
    if found.get("batched_step_img_s") and found.get("model_only_img_s"):
        out["batched_over_model"] = found["batched_step_img_s"] / found["model_only_img_s"]
    if found.get("per_image_step_img_s") and found.get("model_only_img_s"):
        out["per_image_over_model"] = found["per_image_step_img_s"] / found["model_only_img_s"]
    return out


def build_stages(check: Check) -> list[Stage]:
    return [
        Stage("0", "data: the embedded patterns as a CIFAR-10 folder and a 300K-format pool", 45, 15, stage_data),
        Stage("1", "versions and device; pytest -m cuda (GPU against CPU on the same input)", 100, 40, stage_tests),
        Stage("c", "--compile against eager (background during stages 2-4)", 150, 0, stage_compile, background=True),
        Stage("2", "1-GPU runs (SimCLR+COLT, SDCLR+COLT, BCL-D) SIGKILLed and --resume'd, against uninterrupted "
                   "runs", 170, 60, stage_resume),
        Stage("3", "MAK chain: pre-training, inference, sampling, re-training", 120, 60, stage_mak),
        Stage("4", "several processes: gathered loss, gradients, SyncBatchNorm, tailness; a multi-process COLT run",
              100, 45, stage_dist),
        Stage("5a", "bench_train: CIFAR ResNet-18 batch 512, 300,000-item pool round", 110, 45, bench_stage("cifar")),
        Stage("5b", "bench_train: ImageNet-size ResNet-50 batch 256, 224 px", 80, 35, bench_stage("imagenet")),
        Stage("5c", "bench_mak: K-center and ECLE on the GPU", 60, 20, bench_stage("mak")),
    ]


def select_stages(spec: str | None, profile: Profile) -> set[str]:
    keys = set(STAGE_ORDER)
    if spec:
        chosen = set()
        for part in spec.split(","):
            part = part.strip()
            chosen |= {"5a", "5b", "5c"} if part == "5" else {part}
    else:
        chosen = set(keys)
    if not profile.compile:
        chosen.discard("c")
    if not profile.bench:
        chosen -= {"5a", "5b", "5c"}
    if chosen & {"2", "3", "4", "c"}:
        chosen.add("0")
    return chosen


def read_text(path: Path) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


# --- report ----------------------------------------------------------------------------------------------

def build_report(check: Check) -> dict:
    stages = [{"stage": r.stage.key, "title": r.stage.title, "status": r.status, "seconds": round(r.seconds, 1),
               "limit_s": round(r.limit), "own_limit_s": round(r.stage.limit_s * check.profile.limit_scale), "details": r.details, "notes": r.notes,
               "commands": r.commands} for r in sorted(check.runs, key=lambda r: order_key(r.stage.key))]
    benchmarks = []
    for file, key, op, bound, label in TARGETS:
        found = read_json(check.out / file)
        value = bench_summary("train", found).get(key) if found else None
        met = None if value is None else {">=": value >= bound, "<=": value <= bound, "<": value < bound}[op]
        benchmarks.append({"figure": label, "key": key, "value": value, "target": f"{op} {bound}", "met": met})
    extra = {}
    for file, kind in (("bench_train_cifar.json", "train"), ("bench_train_imagenet.json", "train"),
                       ("bench_mak.json", "mak")):
        found = read_json(check.out / file)
        if found:
            extra[file.replace(".json", "")] = bench_summary(kind, found)
    skipped = list(check.skipped)
    count = (check.env_info or {}).get("gpu_count")
    if count and check.gpus < count:
        skipped.append(f"{count - check.gpus} of the {count} visible GPUs: -g {check.gpus} was asked for "
                       f"(-g {count} runs stage 4 across all of them)")
    if check.gpus > 1:
        skipped.append(f"stages 1-3 and 5 use one GPU whatever -g says (only stage 4 spans {check.gpus} GPUs)")
    if check.profile.device == "cpu":
        skipped.append("stage c (--compile) and stage 5 (benchmarks): GPU only (the CPU smoke checks the script, "
                       "its kill-and-resume logic and the MAK chain; bench/*.py --quick run on the CPU)")
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(check.started_wall)),
            "mode": check.profile.name, "gpus_asked": check.gpus, "budget_s": check.args.budget_s,
            "elapsed_s": round(time.monotonic() - check.start, 1), "environment": check.env_info,
            "stages": stages, "targets": benchmarks, "benchmarks": extra, "skipped": skipped,
            "passed": all(s["status"] in ("pass", "skipped") for s in stages)}


STAGE_ORDER = ["0", "1", "c", "2", "3", "4", "5a", "5b", "5c"]


def order_key(key: str) -> int:
    return STAGE_ORDER.index(key) if key in STAGE_ORDER else len(STAGE_ORDER)


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {fmt(v)}" for k, v in value.items() if v not in (None, [], {}, ""))
    if isinstance(value, list):
        return ", ".join(fmt(v) for v in value[:8]) + (" ..." if len(value) > 8 else "")
    return str(value)


def render_markdown(report: dict) -> str:
    env = report.get("environment") or {}
    gpu = env.get("gpu_name") or "no GPU"
    lines = ["# GPU check", "",
             f"{report['date']}; mode {report['mode']}; {gpu}"
             + (f" ({env.get('gpu_count')} visible, {fmt(env.get('gpu_memory_gib'))} GiB)" if env.get("gpu_name") else "")
             + f"; driver {env.get('driver', 'n/a')}; torch {env.get('torch', '?')} (CUDA {env.get('cuda', 'n/a')}, "
               f"cuDNN {env.get('cudnn', 'n/a')}, NCCL {env.get('nccl', 'n/a')}); torchvision "
               f"{env.get('torchvision', '?')}; Python {env.get('python', '?')}; {env.get('cpus', '?')} CPUs",
             "", f"{report['elapsed_s']:.0f} s of a {report['budget_s']} s budget; "
                 f"{'all stages passed' if report['passed'] else 'NOT all stages passed'}.", "",
             "| stage | what | result | seconds | limit (s) | details |", "|---|---|---|---|---|---|"]
    for s in report["stages"]:
        details = "; ".join([fmt({k: v for k, v in s["details"].items() if k not in ("failed_names", "variants")})]
                            + [f"{name}: {fmt(v)}" for name, v in s["details"].get("variants", {}).items()]
                            + s["notes"])
        lines.append(f"| {s['stage']} | {s['title']} | {s['status']} | {s['seconds']:.0f} | {s['limit_s']} | "
                     f"{details.replace('|', '/').strip('; ')} |")
    lines += ["", "## Benchmarks against the targets", "", "| figure | measured | target | met |", "|---|---|---|---|"]
    for b in report["targets"]:
        met = "n/a" if b["met"] is None else ("yes" if b["met"] else "no")
        lines.append(f"| {b['figure']} | {'not measured' if b['value'] is None else fmt(b['value'])} | "
                     f"{b['target']} | {met} |")
    if report["benchmarks"]:
        lines += ["", "| benchmark | figure | value |", "|---|---|---|"]
        for name, figures in report["benchmarks"].items():
            lines += [f"| {name} | {key} | {fmt(value)} |" for key, value in figures.items()]
    if report["skipped"]:
        lines += ["", "## Skipped, and why", ""] + [f"- {s}" for s in report["skipped"]]
    lines += ["", "## Commands", ""]
    for s in report["stages"]:
        lines.append(f"Stage {s['stage']} ({s['limit_s']} s):")
        lines += [f"    {c}" for c in s["commands"]] + [""]
    return "\n".join(lines) + "\n"


def print_plan(check: Check) -> None:
    p = check.profile
    print(f"gpu_check --dry_run: mode {p.name} on {p.device}, -g {check.gpus}, overall budget {check.args.budget_s} s; "
          f"outputs in {check.out}, scratch in {check.work}"
          + (f"; every command with {' '.join(f'{k}={v}' for k, v in p.env)}" if p.env else ""))
    for run in sorted(check.runs, key=lambda r: order_key(r.stage.key)):
        s = run.stage
        print(f"\nstage {s.key}: {s.title}\n  time limit {s.limit_s * p.limit_scale:.0f} s (reserve "
              f"{s.reserve_s * p.limit_scale:.0f} s of the budget)"
              f"{'; runs in the background, joined before stage 5' if s.background else ''}")
        for command in run.commands:
            print(f"  $ {command}")
    left_out = [s for s in check.stages if s.key not in check.selected]
    for s in left_out:
        why = "GPU only" if (s.key == "c" and not p.compile) or (s.key.startswith("5") and not p.bench) else "not selected"
        print(f"\nstage {s.key}: {s.title}\n  not run: {why}")


# --- steps that need torch (subcommands, each a process under its stage's limit) ------------------------

def step_env(argv) -> int:
    a = _simple(argv, ["--json"])
    import platform
    import numpy
    import torch
    import torchvision
    info = {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": numpy.__version__, "cuda": torch.version.cuda, "cpus": os.cpu_count(),
            "cuda_available": torch.cuda.is_available(), "host": platform.node()}
    try:
        import sklearn
        info["sklearn"] = sklearn.__version__
    except ImportError:
        pass
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu_name=props.name, gpu_count=torch.cuda.device_count(),
                    gpu_memory_gib=props.total_memory / 2**30, capability=f"{props.major}.{props.minor}",
                    cudnn=torch.backends.cudnn.version(), bf16=torch.cuda.is_bf16_supported())
        try:
            info["nccl"] = ".".join(map(str, torch.cuda.nccl.version()))
        except Exception as e:  # noqa: BLE001 - reported, not fatal
            info["nccl"] = f"unavailable ({e})"
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20)
            info["driver"] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 and smi.stdout.strip() else "?"
        except (OSError, subprocess.TimeoutExpired):
            info["driver"] = "?"
    print(json.dumps(info, indent=1))
    write_text_atomic(Path(a["--json"]), json.dumps(info, indent=1))
    return 0


def step_make_data(argv) -> int:
    a = _simple(argv, ["--work", "--pool_items", "--id_stride"])
    import numpy as np
    from data.cifar import write_cifar
    from data.synthetic import load_synthetic
    work = Path(a["--work"])
    arrays = load_synthetic(work / "synthetic")
    data = work / "data"
    if (data / "cifar-10-batches-py").exists():
        shutil.rmtree(data)
    write_cifar(data, "cifar10", arrays["train_x"], arrays["train_y"], arrays["test_x"], arrays["test_y"])
    if int(a["--pool_items"]) > len(arrays["ood_x"]):
        raise SystemExit(f"error: --pool_items {a['--pool_items']}: the synthetic pool has {len(arrays['ood_x'])}")
    pool = arrays["ood_x"][:int(a["--pool_items"])]
    np.save(data / "pool.npy", pool)
    split = np.arange(0, len(arrays["train_y"]), int(a["--id_stride"]), dtype=np.int64)
    np.save(data / "lt_split.npy", split)
    counts = np.bincount(arrays["train_y"][split]).tolist()
    summary = {"id_images": len(split), "per_class": counts, "pool_items": len(pool),
               "test_images": len(arrays["test_y"])}
    write_text_atomic(data / "summary.json", json.dumps(summary))
    print(json.dumps(summary))
    return 0


def step_deterministic(argv) -> int:
    """Run a script as __main__ with deterministic algorithms (warn_only: ops without a deterministic CUDA
    kernel warn); --no_tf32 also turns cuDNN's TF32 convolutions off."""
    no_tf32 = bool(argv) and argv[0] == "--no_tf32"
    if no_tf32:
        argv = argv[1:]
    import runpy
    import torch
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    if no_tf32:
        torch.backends.cudnn.allow_tf32 = False
    script = str(REPO_ROOT / argv[0])
    sys.argv = [script, *argv[1:]]
    runpy.run_path(script, run_name="__main__")
    return 0


def _epoch_stats(run_dir: Path) -> tuple[float | None, float | None]:
    import re
    found = re.search(r"epoch 1/\d+ loss ([-0-9.naninf]+) \d+ img/s \(([0-9.]+)s\)", read_text(run_dir / "log.txt"))
    return (float(found.group(1)), float(found.group(2))) if found else (None, None)


def step_compare_runs(argv) -> int:
    """Two runs' final weights, OOD selections and first-epoch losses, as JSON."""
    a = _simple(argv[2:], ["--json"])
    first, other = Path(argv[0]), Path(argv[1])
    import numpy as np
    import torch
    out: dict = {"run": str(first), "other": str(other)}
    try:
        x = torch.load(first / "model.pt", map_location="cpu", weights_only=True)
        y = torch.load(other / "model.pt", map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a missing run is a result
        out["error"] = f"{type(e).__name__}: {e}"
        write_text_atomic(Path(a["--json"]), json.dumps(out, indent=1))
        print(json.dumps(out))
        return 1
    sx, sy = x["state_dict"], y["state_dict"]
    differing, max_abs, max_rel = 0, 0.0, 0.0
    for key in sx:
        if key not in sy or sx[key].shape != sy[key].shape:
            differing += 1
            max_abs = max_rel = float("inf")
            continue
        if not torch.equal(sx[key], sy[key]):
            differing += 1
            if sx[key].is_floating_point():
                d = (sx[key].double() - sy[key].double()).abs().max().item()
                scale = max(sx[key].double().abs().max().item(), 1e-12)
                max_abs, max_rel = max(max_abs, d), max(max_rel, d / scale)
    out.update(epochs=(x.get("epoch"), y.get("epoch")), tensors=len(sx), tensors_differing=differing,
               bitwise=differing == 0 and sx.keys() == sy.keys(), max_abs_diff=max_abs, max_rel_diff=max_rel)
    if "colt" in x and "colt" in y:
        a_picks, b_picks = x["colt"]["ood_indices"].numpy(), y["colt"]["ood_indices"].numpy()
        out["selections_equal"] = bool(np.array_equal(a_picks, b_picks)) and all(
            np.array_equal(np.load(f), np.load(other / f.name)) for f in sorted(first.glob("ood_round*.npy"))
            if (other / f.name).is_file())
        out["selection_overlap"] = len(np.intersect1d(a_picks, b_picks)) / max(len(a_picks), 1)
        out["rounds"] = (x["colt"]["rounds_done"], y["colt"]["rounds_done"])
    else:
        out["selections_equal"] = True
    (out["first_loss"], out["epoch_seconds"]), (out["first_loss_other"], out["epoch_seconds_other"]) = \
        _epoch_stats(first), _epoch_stats(other)
    if out["first_loss"] and out["first_loss_other"] is not None:
        out["loss_rel_diff"] = abs(out["first_loss"] - out["first_loss_other"]) / abs(out["first_loss"])
    write_text_atomic(Path(a["--json"]), json.dumps(out, indent=1))
    print(json.dumps(out))
    return 0


def step_dist_step(argv) -> int:
    """One rank of stage 4: the gathered loss, gradients (DDP), SyncBatchNorm statistics and tailness of one
    global batch against one process's; then a short multi-process training run (``-- TRAIN ARGS``)."""
    split = argv.index("--") if "--" in argv else len(argv)
    a = _simple(argv[:split], ["--device", "--batch", "--width", "--json", "--save_dir"])
    train = argv[split + 1:]
    import torch
    from torch.nn.parallel import DistributedDataParallel
    import train_simclr
    import methods
    from sampling.colt import COLT, COLTConfig
    from utils import distributed
    torch.backends.cudnn.allow_tf32 = False  # only the order of the reductions may differ
    torch.use_deterministic_algorithms(True, warn_only=True)
    info = distributed.init_distributed(a["--device"])
    backend = distributed.backend_name()
    args = train_simclr.parse_args(["--COLT", "--sup_weight", "0.2", "--k_largest_logits", "10", "--precision",
                                    "fp32", "--width", a["--width"], "--warmup", "0", "--sample_interval", "1"])
    batch = int(a["--batch"])
    g = torch.Generator().manual_seed(1)
    views = torch.randint(0, 256, (batch, 2, 3, 32, 32), dtype=torch.uint8, generator=g)
    index, is_ood = torch.arange(batch), torch.arange(batch) >= 3 * batch // 4
    sync_bn = info.device.type == "cuda"  # SyncBatchNorm needs CUDA tensors

    def one_step(world: distributed.DistInfo, part: slice):
        torch.manual_seed(0)
        model = train_simclr.build_network(args, world)
        if not sync_bn:
            model.eval()  # BatchNorm per process on the CPU: compare with fixed statistics instead
        method = methods.build_method(args, model)
        runner = DistributedDataParallel(method, device_ids=[world.device.index] if world.device.type == "cuda"
                                         else None) if world.is_distributed else method
        colt = COLT(batch, COLTConfig.from_args(args, pool_size=batch), world.device)
        out = method.step(methods.Batch(views[part], index[part], is_ood[part]), runner)
        loss = out.loss + colt.extra_loss(out)
        loss.backward()
        colt.step_end(out, epoch=1)
        grads = torch.cat([p.grad.flatten() for p in model.parameters()]).cpu()
        stats = torch.cat([b.flatten().float() for n, b in model.named_buffers() if "running" in n]).cpu()
        kinds = {type(m).__name__ for m in model.modules()}
        return loss.item(), grads, stats, colt.tracker.scores.cpu(), "SyncBatchNorm" in kinds

    b = batch // info.world_size
    mine = one_step(info, slice(info.rank * b, (info.rank + 1) * b))
    losses = distributed.all_gather_variable(torch.tensor([mine[0]], device=info.device)).cpu().tolist()
    result = None
    if info.is_main:
        # one process on the whole batch, here on rank 0 alone: the collectives must see a world of one
        gathered_world, gathered_rank = distributed.world_size, distributed.rank
        distributed.world_size, distributed.rank = (lambda: 1), (lambda: 0)
        try:
            single = one_step(distributed.DistInfo(0, 1, 0, info.device), slice(0, batch))
        finally:
            distributed.world_size, distributed.rank = gathered_world, gathered_rank
        grad_cos = torch.nn.functional.cosine_similarity(mine[1].double(), single[1].double(), dim=0).item()
        grad_rel = ((mine[1] - single[1]).norm() / single[1].norm()).item()
        stats_rel = ((mine[2] - single[2]).abs().max() / single[2].abs().max().clamp(min=1e-12)).item()
        scores_diff = (mine[3] - single[3]).nan_to_num(0).abs().max().item()
        same_nan = bool(torch.equal(mine[3].isnan(), single[3].isnan()))
        problems = []
        if max(abs(x - single[0]) for x in losses) > 1e-4 * abs(single[0]):
            problems.append(f"gathered losses {losses} differ from one process's {single[0]:.6f} (> 1e-4 relative)")
        if grad_cos < 0.9999 or grad_rel > 1e-3:
            problems.append(f"DDP gradients differ from one process's: cosine {grad_cos:.6f}, relative {grad_rel:.2e}")
        if sync_bn and stats_rel > 1e-4:
            problems.append(f"SyncBatchNorm running statistics differ from one process's BatchNorm: {stats_rel:.2e}")
        if sync_bn and not mine[4]:
            problems.append("the multi-process model has no SyncBatchNorm")
        if scores_diff > 1e-5 or not same_nan:
            problems.append(f"tailness scores differ from one process's by {scores_diff:.2e}")
        result = {"backend": backend, "world_size": info.world_size, "device": str(info.device),
                  "sync_batchnorm": mine[4], "batchnorm": "SyncBatchNorm (train mode)" if sync_bn else
                  "eval mode (no SyncBatchNorm on the CPU)", "losses": losses, "loss_single": single[0],
                  "grad_cosine": grad_cos, "grad_rel": grad_rel, "bn_stats_rel": stats_rel if sync_bn else None,
                  "tailness_max_diff": scores_diff, "problems": problems}
    distributed.barrier()
    save = [str(x).replace("SAVE", a["--save_dir"]) for x in train]
    train_simclr.main(save)  # reuses the process group, closes it at the end
    if result is not None:
        write_text_atomic(Path(a["--json"]), json.dumps(result, indent=1))
        print(json.dumps(result))
    return 0


def step_check_mak(argv) -> int:
    a = _simple(argv, ["--work", "--pool_items", "--budget", "--json"])
    import numpy as np
    import torch
    base, problems, out = Path(a["--work"]), [], {}
    split = base / "splits" / "mak_split.npy"
    try:
        chosen = np.load(split)
        out["chosen"] = int(len(chosen))
        if len(np.unique(chosen)) != int(a["--budget"]) or chosen.min() < 0 or chosen.max() >= int(a["--pool_items"]):
            problems.append(f"the split holds {len(np.unique(chosen))} distinct items in [{chosen.min()}, "
                            f"{chosen.max()}], expected {a['--budget']} of the pool's {a['--pool_items']}")
    except (OSError, ValueError) as e:
        problems.append(f"no MAK split: {e}")
    summary = read_json(base / "splits" / "mak_split.json") or {}
    out["sampling_seconds"] = summary.get("seconds")
    log = read_text(base / "runs" / "retrain" / "log.txt")
    if f"+ {a['--budget']} extra images" not in log:
        problems.append("the re-training log does not show the extra images")
    try:
        state = torch.load(base / "runs" / "retrain" / "model.pt", map_location="cpu", weights_only=True)
        if not all(torch.isfinite(t).all() for t in state["state_dict"].values() if t.is_floating_point()):
            problems.append("the re-trained weights are not finite")
    except Exception as e:  # noqa: BLE001 - reported
        problems.append(f"no re-trained checkpoint: {e}")
    out["problems"] = problems
    write_text_atomic(Path(a["--json"]), json.dumps(out, indent=1))
    print(json.dumps(out))
    return 0


def _simple(argv, names) -> dict:
    """``--name value`` pairs of a step's own arguments (the steps are internal: no argparse help)."""
    out = dict(zip(argv[::2], argv[1::2]))
    missing = [n for n in names if n not in out]
    if missing or len(argv) % 2:
        raise SystemExit(f"error: expected {' '.join(n + ' VALUE' for n in names)}, got {argv}")
    return out


STEPS = {"env": step_env, "make_data": step_make_data, "deterministic": step_deterministic,
         "compare_runs": step_compare_runs, "dist_step": step_dist_step, "check_mak": step_check_mak}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry_run", action="store_true", help="list every stage with its commands and time limit")
    p.add_argument("--cpu_smoke", action="store_true",
                   help="stages 0-4 on the CPU at tiny sizes, the CUDA tests with the CPU standing in (CI)")
    p.add_argument("-g", "--gpus", type=int, default=1,
                   help="GPUs to use (stage 4 runs one process per GPU with NCCL when N >= 2; default 1)")
    p.add_argument("--out", default=os.environ.get("OUT") or "runs/gpu_check",
                   help="folder of the report (default $OUT, else runs/gpu_check)")
    p.add_argument("--work", default=None, help="scratch folder (default: a new temporary folder)")
    p.add_argument("--keep_work", action="store_true", help="keep the scratch folder")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier report in --out")
    p.add_argument("--stages", default=None, help="comma list of the stages to run: 0,1,2,c,3,4,5 (or 5a,5b,5c)")
    p.add_argument("--budget_s", type=float, default=None,
                   help="overall time budget in seconds (default 470 on the GPU, 720 for --cpu_smoke)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in STEPS:
        return STEPS[argv[0]](argv[1:]) or 0
    args = parse_args(argv)
    profile = CPU_SMOKE if args.cpu_smoke else GPU
    if args.budget_s is None:
        args.budget_s = 720 if args.cpu_smoke else 470
    if args.gpus < 1:
        raise SystemExit(f"error: -g must be at least 1, got {args.gpus}")
    if args.stages:
        unknown = {s.strip() for s in args.stages.split(",")} - {"0", "1", "2", "c", "3", "4", "5", "5a", "5b", "5c"}
        if unknown:
            raise SystemExit(f"error: unknown stages {', '.join(sorted(unknown))}: expected 0,1,2,c,3,4,5a,5b,5c")
    made_work = args.work is None
    if made_work:
        args.work = str(Path(tempfile.gettempdir()) / f"ltssl_gpu_check_{os.getpid()}") if args.dry_run else \
            tempfile.mkdtemp(prefix="ltssl_gpu_check_")
    out = Path(args.out)
    if not args.dry_run:
        if (out / "gpu_check.json").exists() and not args.overwrite:
            raise SystemExit(f"error: {out} already holds a report: pass --overwrite, or another --out")
        if not args.cpu_smoke:
            gpus = visible_gpus()
            if gpus == 0:
                raise SystemExit("error: torch sees no CUDA device: run on a GPU machine, or pass --cpu_smoke or "
                                 "--dry_run")
            if gpus is not None and args.gpus > gpus:
                raise SystemExit(f"error: -g {args.gpus}: only {gpus} GPU(s) visible")
    check = Check(args, profile)

    def stop(signum, frame):
        check.aborted = True
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        return check.main()
    finally:
        if made_work and not args.keep_work and not args.dry_run:
            shutil.rmtree(args.work, ignore_errors=True)


def visible_gpus() -> int | None:
    """CUDA devices torch sees, asked in a child process (this one never imports torch); None if unknown."""
    try:
        found = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.device_count())"],
                               capture_output=True, text=True, timeout=120)
        return int(found.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return None


if __name__ == "__main__":
    sys.exit(main())
