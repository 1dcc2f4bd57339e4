"""The GPU path, checked on a real GPU in one command (about 5 minutes, no network):

    python benchmarks/gpu_check.py --data-dir ~/data

1. tests: tests/test_device.py and tests/test_cupy_names.py with NNCTL_TEST_DEVICE=gpu, so
   the stand-in's tests (every tiny config trains, resumes and equals the CPU in float64;
   each layer against the CPU) run on the GPU itself;
2. losses: the small and the medium LM (configs/lstm_ptb_small.yaml, configs/lstm_ptb.yaml)
   train --steps steps with device gpu and with device cpu, float32, dropout 0 (the masks
   are the one thing the two devices draw differently), then score --eval-batches
   validation windows; every loss must agree within LOSS_RTOL (see there why);
3. speed: training and evaluation tokens/s (images/s for the CNN) of lm_small, lm_medium
   and the CNN on the GPU, and of the PyTorch peers (benchmarks/peers/lm_torch.py,
   img_torch.py with --device cuda) on the same GPU when torch sees it;
4. writes gpu_check.json (everything measured) and gpu_check.txt (the table) to --out.

Without CuPy or a usable GPU it prints one line saying which, and exits 2. `--device
strict` with `--tiny` (sizes cut down, for tests/test_gpu_check.py) runs the same steps on
the test suite's stand-in device, and `--peer-device cpu` the peers on the CPU.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

import numpy as np  # noqa: E402

from nnctl import backend, streams  # noqa: E402
from nnctl.run import build_trainer  # noqa: E402
from nnctl.trainer import Trainer  # noqa: E402

# float32 keeps ~7 digits, and a GPU sums products in another order than OpenBLAS: each
# step's loss differs in the 6th-7th digit, and SGD at lr 20 carries that into the weights,
# so after 20 steps differences near 1e-5 relative are expected. 1e-3 leaves room for that
# growth and still catches any real error (a wrong gate, mask or state is off by > 1e-2).
LOSS_RTOL = 1e-3
WORKLOADS = ("lm_small", "lm_medium", "cnn")
LOSS_WORKLOADS = ("lm_small", "lm_medium")
TINY = {"lm": ["model.embed_dim=16", "model.hidden_dim=16", "data.batch_size=4", "data.bptt=5",
               "train.eval_batch_size=2"],
        "cnn": ["data.batch_size=10", "data.validation=10", "train.eval_batch_size=10"]}


def load_config(name: str, device: str, tiny: bool, extra: list[str] = ()) -> dict:
    import worker  # benchmarks/worker.py: the standard configs of the benchmark suite

    spec = worker.WORKLOADS[name]
    sets = [*spec.get("set", []), f"device={device}", *(TINY["cnn" if name == "cnn" else "lm"] if tiny else []),
            *extra]
    from nnctl import config as nnconfig

    if isinstance(spec["config"], str):
        return nnconfig.load(ROOT / spec["config"], sets)
    raw = json.loads(json.dumps(spec["config"]))
    return nnconfig.resolve(nnconfig.apply_overrides(raw, sets), f"gpu_check:{name}")


def build(cfg: dict, data_dir: str) -> tuple:
    return build_trainer(cfg, data_dir)


def train_batches(trainer: Trainer, seed: int):
    """Training batches as Trainer.fit draws them, epoch after epoch."""
    epoch = 0
    while True:
        trainer.progress.epoch, trainer.state = epoch, None
        yield from trainer.data.batches("train", rng=streams.stream(seed, streams.EPOCH_ORDER, epoch))
        epoch += 1


def eval_batches(trainer: Trainer):
    """Validation (else test) batches at the eval batch size, over and over, on the model's device."""
    split = "valid" if "valid" in trainer.data.splits else "test"
    while True:
        for batch in trainer.data.batches(split, rng=None, batch_size=trainer.config.eval_batch_size):
            yield trainer.local(batch)


def items(batch) -> int:
    return int(np.prod(batch[1].shape))


# -- 1. the device tests ---------------------------------------------------------------------
def run_device_tests(device: str, seconds: float) -> dict:
    env = {**os.environ, "NNCTL_TEST_DEVICE": device}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_device.py",
               "tests/test_cupy_names.py"]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=seconds)
        tail, rc = (done.stdout + done.stderr).strip().splitlines()[-1:], done.returncode
    except subprocess.TimeoutExpired:
        tail, rc = [f"timed out after {seconds:.0f} s"], 124
    return {"command": " ".join(command), "env": f"NNCTL_TEST_DEVICE={device}", "returncode": rc,
            "summary": tail[0] if tail else "", "passed": rc == 0, "seconds": round(time.perf_counter() - t0, 1)}


# -- 2. the same steps on both devices -------------------------------------------------------
def step_losses(name: str, device: str, data_dir: str, steps: int, eval_count: int, tiny: bool) -> dict:
    cfg = load_config(name, device, tiny, ["model.dropout=0.0"])
    exp, trainer = build(cfg, data_dir)
    batches = train_batches(trainer, cfg["seed"])
    train = []
    for _ in range(steps):
        out = trainer.step(next(batches))
        train.append(float(out.loss_sum) / out.count)
    exp.model.eval()
    total, count, state = 0.0, 0, None
    stream = eval_batches(trainer)
    for _ in range(eval_count):
        out, state = exp.model.loss(next(stream), state)
        total, count = total + float(out.loss_sum), count + out.count
    exp.model.train()
    return {"train_losses": train, "eval_loss": total / max(count, 1)}


def compare_losses(name: str, device: str, data_dir: str, steps: int, eval_count: int, tiny: bool) -> dict:
    runs = {d: step_losses(name, d, data_dir, steps, eval_count, tiny) for d in (device, "cpu")}
    dev, cpu = runs[device], runs["cpu"]
    pairs = list(zip(dev["train_losses"] + [dev["eval_loss"]], cpu["train_losses"] + [cpu["eval_loss"]]))
    worst = max(abs(a - b) / max(abs(b), 1e-12) for a, b in pairs)
    return {"steps": steps, "eval_batches": eval_count, device: dev, "cpu": cpu, "max_rel_diff": worst,
            "rtol": LOSS_RTOL, "agree": worst <= LOSS_RTOL}


# -- 3. speed ----------------------------------------------------------------------------------
def timed(step, seconds: float) -> tuple[int, float]:
    done, t0 = 0, time.perf_counter()
    while True:
        done += step()  # every step ends in a float() of its loss: the device has finished it
        if time.perf_counter() - t0 >= seconds:
            return done, time.perf_counter() - t0


def nnctl_speed(name: str, device: str, data_dir: str, warmup: int, seconds: float, eval_seconds: float,
                tiny: bool) -> dict:
    cfg = load_config(name, device, tiny)
    exp, trainer = build(cfg, data_dir)
    batches = train_batches(trainer, cfg["seed"])

    def train_step():
        batch = next(batches)
        trainer.step(batch)
        return items(batch)

    stream, carried = eval_batches(trainer), {"state": None}

    def eval_step():
        batch = next(stream)
        out, carried["state"] = exp.model.loss(batch, carried["state"])
        float(out.loss_sum)
        return items(batch)

    for _ in range(warmup):
        train_step()
    train_items, train_s = timed(train_step, seconds)
    exp.model.eval()
    for _ in range(2):
        eval_step()
    eval_items, eval_s = timed(eval_step, eval_seconds)
    exp.model.train()
    return {"train_per_s": train_items / train_s, "eval_per_s": eval_items / eval_s, "train_items": train_items,
            "train_s": train_s, "eval_items": eval_items, "eval_s": eval_s,
            "batch_size": cfg["data"]["batch_size"], "eval_batch_size": exp.train.eval_batch_size, "config": cfg}


def torch_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None  # not imported here: the peer runs it


def peer_speed(name: str, cfg: dict, eval_batch_size: int, data_dir: Path, peer_device: str, warmup: int,
               seconds: float, eval_seconds: float, timeout: float) -> dict:
    """The PyTorch peer on the same work, on `peer_device`; {"skipped": why} if it cannot run."""
    if not torch_installed():
        return {"skipped": "PyTorch is not installed"}  # a torch without CUDA fails in the peer, and says so
    import run  # benchmarks/run.py: the peers' command lines

    workload = {"config": cfg, "eval_batch_size": eval_batch_size}
    p = {"warmup": warmup, "seconds": seconds, "eval_seconds": eval_seconds}
    command = run.peer_command(name, workload, sys.executable, data_dir, p, Path(os.devnull)) + [
        "--device", peer_device]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"skipped": f"the peer ran past {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        last = (done.stderr.strip().splitlines() or [""])[-1]
        return {"skipped": f"the peer failed (exit {done.returncode}): {last}"}
    return json.loads(lines[-1][len("RESULT "):])


# -- 4. the report ---------------------------------------------------------------------------
def fmt(value, spec=",.0f") -> str:
    return "-" if value is None else format(value, spec)


def table(report: dict) -> str:
    lines = [f"nnctl GPU check, {report['date']}, {report['device_name']} ({report['device']})", ""]
    tests = report.get("tests")
    if tests:
        lines.append(f"device tests ({tests['env']}): {'PASSED' if tests['passed'] else 'FAILED'}  {tests['summary']}")
    for name, c in report.get("losses", {}).items():
        lines.append(f"losses {name}: {c['steps']} steps + {c['eval_batches']} eval batches, float32, dropout 0: "
                     f"max relative difference {c['max_rel_diff']:.2e} (tolerance {c['rtol']:.0e}) "
                     f"{'AGREE' if c['agree'] else 'DIFFER'}")
    lines += ["", f"{'workload':<10} {'unit':<7} {'nnctl train/s':>14} {'torch train/s':>14} {'x torch':>8} "
                  f"{'nnctl eval/s':>13} {'torch eval/s':>13} {'x torch':>8}"]
    for name, s in report.get("speed", {}).items():
        n, t = s["nnctl"], s["torch"]
        tt, te = t.get("train_per_s"), t.get("eval_per_s")
        lines.append(f"{name:<10} {s['unit']:<7} {fmt(n['train_per_s']):>14} {fmt(tt):>14} "
                     f"{fmt(n['train_per_s'] / tt if tt else None, '.2f'):>8} {fmt(n['eval_per_s']):>13} "
                     f"{fmt(te):>13} {fmt(n['eval_per_s'] / te if te else None, '.2f'):>8}")
        if "skipped" in t:
            lines.append(f"{'':<10} torch: {t['skipped']}")
    for note in report["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"


def device_name(device: str) -> str:
    if device != "gpu":
        return f"stand-in '{device}' on {platform.processor() or platform.machine()}"
    import cupy  # present: gpu_problem() said so

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return f"{name}, CuPy {cupy.__version__}, CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True, help="folder holding ptb/ and fashion-mnist/")
    ap.add_argument("--out", default=None, help="folder for gpu_check.json and .txt "
                                                "(default benchmarks/results/<date>-gpu-check)")
    ap.add_argument("--device", default="gpu", help="gpu; strict only inside the test suite")
    ap.add_argument("--peer-device", default="cuda", help="where the PyTorch peers run (cuda, or cpu)")
    ap.add_argument("--steps", type=int, default=20, help="training steps compared on both devices")
    ap.add_argument("--eval-batches", type=int, default=20, help="validation windows compared")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps before the clock starts")
    ap.add_argument("--seconds", type=float, default=15.0, help="timed training per workload and tool")
    ap.add_argument("--eval-seconds", type=float, default=5.0, help="timed evaluation per workload and tool")
    ap.add_argument("--only", default=",".join(WORKLOADS), help="workloads to time, of " + ", ".join(WORKLOADS))
    ap.add_argument("--skip-tests", action="store_true", help="leave out the device tests")
    ap.add_argument("--no-peers", action="store_true", help="leave out the PyTorch peers")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes for every workload (the smoke test)")
    ap.add_argument("--budget", type=float, default=450.0,
                    help="seconds for the whole check: the timed windows shrink to stay within it")
    args = ap.parse_args(argv)

    if args.device == "gpu":
        problem = backend.gpu_problem()
        if problem:
            print(f"gpu_check: {problem}", flush=True)
            return 2
    elif args.device not in backend.devices():
        print(f"gpu_check: --device {args.device!r} is not a device here; use gpu", flush=True)
        return 2
    only = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = [w for w in only if w not in WORKLOADS]
    if unknown:
        print(f"gpu_check: --only {unknown[0]!r} is not a workload; choose from {', '.join(WORKLOADS)}")
        return 2
    started = time.perf_counter()
    report = {"date": dt.datetime.now().isoformat(timespec="seconds"), "device": args.device,
              "device_name": device_name(args.device), "python": platform.python_version(),
              "numpy": np.__version__, "argv": sys.argv[1:] if argv is None else list(argv),
              "notes": ["losses compare the GPU and the CPU with dropout 0; with dropout the masks differ "
                        "(each device draws its own), so only the same device reproduces a run"]}
    data_dir = Path(args.data_dir)

    if not args.skip_tests:
        print("gpu_check: device tests ...", flush=True)
        report["tests"] = run_device_tests(args.device, seconds=0.45 * args.budget)
    report["losses"] = {}
    for name in LOSS_WORKLOADS:
        print(f"gpu_check: losses {name} on {args.device} and cpu ...", flush=True)
        report["losses"][name] = compare_losses(name, args.device, str(data_dir), args.steps, args.eval_batches,
                                                args.tiny)
    report["speed"] = {}
    for index, name in enumerate(only):
        # what is left of the budget, shared by the runs still to come; ~30 s each to build and warm up
        runs_left = (len(only) - index) * (1 if args.no_peers else 2)
        share = (args.budget - (time.perf_counter() - started)) / runs_left - 30
        scale = min(1.0, max(share, 2.0) / (args.seconds + args.eval_seconds))
        seconds, eval_seconds = args.seconds * scale, args.eval_seconds * scale
        print(f"gpu_check: speed {name} ({seconds:.1f} s + {eval_seconds:.1f} s each) ...", flush=True)
        n = nnctl_speed(name, args.device, str(data_dir), args.warmup, seconds, eval_seconds, args.tiny)
        t = {"skipped": "--no-peers"} if args.no_peers else peer_speed(
            name, n["config"], n["eval_batch_size"], data_dir, args.peer_device, args.warmup, seconds,
            eval_seconds, timeout=seconds + eval_seconds + 120)
        report["speed"][name] = {"unit": "images" if name == "cnn" else "tokens", "nnctl": n, "torch": t}
    report["seconds"] = round(time.perf_counter() - started, 1)

    out = Path(args.out) if args.out else HERE / "results" / f"{dt.date.today().isoformat()}-gpu-check"
    out.mkdir(parents=True, exist_ok=True)
    text = table(report)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (out / "gpu_check.txt").write_text(text)
    print(text + f"written: {out / 'gpu_check.json'}, {out / 'gpu_check.txt'} ({report['seconds']:.0f} s)")
    ok = report.get("tests", {"passed": True})["passed"] and all(c["agree"] for c in report["losses"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
