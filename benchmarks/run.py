#!/usr/bin/env python3
"""nnctl benchmark suite: throughput, memory, matrix-product share and bound, peers side by side.

    python3 benchmarks/run.py --data-dir /work/shared/data [--only lm,cnn,cbow] [--quick]
                              [--repeat N] [--json out.json] [--peer-python /tmp/peers/bin/python]
    python3 benchmarks/run.py --data-dir /work/shared/data --busy     # one core kept busy meanwhile

Each workload runs in its own process (benchmarks/worker.py) so its peak resident memory
is its own; the peer (PyTorch, run with --peer-python as a subprocess) runs the same
work. Both are started and warmed up, then take turns: short timed slices, alternately
A B B A ..., so the machine's drift lands on both alike (benchmarks/turns.py). CBOW and
gensim train whole epochs, one after the other.
With --repeat N each (nnctl, peer) pair runs N times in a row; the table shows the round
whose training ratio is the median, and the spread of the ratios follows it.
With --busy a plain CPU-bound process keeps one core busy for the whole suite, and nnctl
pinned to one thread (OPENBLAS_NUM_THREADS=1) takes turns with nnctl and the peer (both at
their defaults): the small LM and the CNN unless --only says otherwise.
See benchmarks/README.md for what every figure means.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import profile_share  # noqa: E402
import turns  # noqa: E402

# The environment as the user gave it, taken before anything imports nnctl (whose import
# sets OpenBLAS's thread timeout for nnctl's own process): the peers run in this one.
USER_ENV = dict(os.environ)

DEFAULT_PEER_PYTHON = "/tmp/peers/bin/python"

# Reference figures of the book's NumPy code (Saito, "Deep Learning from Scratch" 1 and 2),
# measured on this kind of machine (/work/shared/bench/README.md); not re-run here.
BOOK = {"lm_book": 5393, "lm_small": 2553, "lm_medium": 556, "lm_medium_eval": 943, "cnn": 1100, "cbow": 1855}
# The peers' figures measured on that machine at the same time (same README). A machine
# slower today slows the book's NumPy code too; the book figure scaled by (peer today /
# peer then) estimates what the book's code would do in this run ("x book~").
PEER_THEN = {"lm_book": 16900, "lm_small": 10171, "lm_medium": 2756, "lm_medium_eval": 7999, "cnn": 10000,
             "cbow": 2_220_000}

# The figures to reach (peer ratio, in one run, 2 threads each).
TARGETS = {("lm_book", "train"): 1.2, ("lm_small", "train"): 0.9, ("lm_medium", "train"): 0.75,
           ("lm_gru", "train"): 1.0, ("lm_rnn", "train"): 1.0,
           ("lm_medium", "eval"): 0.75, ("cnn", "train"): 0.5, ("cbow", "train"): 0.1}
BOOK_TARGET = 3.0
# --busy (one core taken by another process): nnctl's defaults against the peer's, and
# against nnctl pinned to one thread (column "x 1thr").
BUSY_TARGETS = {("lm_small", "train"): 2.0}
PINNED_TARGET = 0.9
BUSY_DEFAULT = "lm_small,cnn"
BURNER = [sys.executable, "-c", "while True: pass"]  # a plain CPU-bound process: one core's worth
MEDIUM_RSS_LIMIT_MB = 1500

GROUPS = {"lm": ["lm_book", "lm_small", "lm_medium"], "cells": ["lm_gru", "lm_rnn"], "cnn": ["cnn"], "cbow": ["cbow"]}


def plan(quick: bool) -> dict[str, dict]:
    """Per-workload windows (seconds per tool, cut into `slices` turns); --quick keeps the
    whole suite near 2-3 minutes."""
    if quick:
        lm = {"warmup": 3, "seconds": 6, "slices": 3, "eval_seconds": 3, "eval_slices": 3, "profile_seconds": 3}
        return {"lm_book": lm, "lm_small": {**lm, "profile_seconds": 5}, "lm_medium": {**lm, "seconds": 8},
                "lm_gru": lm, "lm_rnn": lm,
                "cnn": {"warmup": 5, "seconds": 5, "slices": 3, "eval_seconds": 2, "eval_slices": 2,
                        "profile_seconds": 3},
                "cbow": {"epochs": 1, "eval_seconds": 2, "profile_seconds": 3}}
    lm = {"warmup": 10, "seconds": 25, "slices": 5, "eval_seconds": 8, "eval_slices": 4, "profile_seconds": 6}
    return {"lm_book": lm, "lm_small": {**lm, "profile_seconds": 15}, "lm_gru": lm, "lm_rnn": lm,
            "lm_medium": {**lm, "warmup": 5, "seconds": 40, "slices": 8, "eval_seconds": 15, "eval_slices": 5},
            "cnn": {"warmup": 20, "seconds": 20, "slices": 5, "eval_seconds": 5, "eval_slices": 3, "profile_seconds": 6},
            "cbow": {"epochs": 10, "eval_seconds": 5, "profile_seconds": 6}}


def peer_python(requested: str | None) -> tuple[str | None, dict[str, bool]]:
    """The interpreter for peers and which peers it can import (torch, gensim)."""
    exe = requested or (DEFAULT_PEER_PYTHON if os.path.exists(DEFAULT_PEER_PYTHON) else None)
    if exe is None:
        return None, {"torch": False, "gensim": False}
    has = {}
    for module in ("torch", "gensim"):
        try:
            has[module] = subprocess.run([exe, "-c", f"import {module}"], capture_output=True,
                                         timeout=120).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            has[module] = False
    return exe, has


class Child:
    """One benchmark process: nnctl's worker or a peer.

    Its stdout is read line by line: py-spy is attached between its PROFILE_START and
    PROFILE_END lines, "WORKLOAD {json}" and "RESULT {json}" are kept. Its stdin carries
    the slice requests of turns.py. stderr goes to a file (a pipe nobody reads could fill
    up and stall the child) and its tail is logged if the child fails.
    """

    def __init__(self, cmd: list[str], log, profile_to: Path | None = None, profile_seconds: float = 0,
                 timeout: float = 1800, env: dict[str, str] | None = None):
        changed = {k: v for k, v in (env or {}).items() if USER_ENV.get(k) != v}
        log(f"  $ {''.join(f'{k}={v} ' for k, v in changed.items())}{' '.join(cmd)}")
        self.log, self.profile_to, self.profile_seconds = log, profile_to, profile_seconds
        self.deadline = time.monotonic() + timeout
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     text=True, cwd=ROOT, env=env or USER_ENV)
        self.spy, self.workload, self.result, self.alive = None, None, None, True
        self.slices: list[list] = []  # [phase, items, seconds] of each slice, for the JSON

    def _read_until(self, prefix: str | None) -> str | None:
        """Handle output lines until one starts with `prefix` (returned); None at the end of output."""
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            if line == "PROFILE_START" and self.profile_to is not None:
                self.spy = subprocess.Popen(
                    ["py-spy", "record", "--pid", str(self.proc.pid), "--native", "--threads", "--rate", "100",
                     "--duration", str(max(int(self.profile_seconds) - 1, 1)), "--format", "raw",
                     "-o", str(self.profile_to)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            elif line == "PROFILE_END" and self.spy is not None:
                _, err = self.spy.communicate(timeout=120)
                if self.spy.returncode != 0:
                    self.log(f"  py-spy failed: {err.strip().splitlines()[-1] if err.strip() else self.spy.returncode}")
            elif line.startswith("WORKLOAD "):
                self.workload = json.loads(line[len("WORKLOAD "):])
            elif line.startswith("RESULT "):
                self.result = json.loads(line[len("RESULT "):])
            if time.monotonic() > self.deadline:
                self.proc.kill()
                self.log("  timed out")
            if prefix is not None and line.startswith(prefix):
                return line
        self.alive = False
        return None

    def ready(self) -> bool:
        """Wait until the child has built and warmed up (its "READY" line)."""
        self.alive = self._read_until("READY") is not None
        return self.alive

    def run_slice(self, phase: str, seconds: float) -> None:
        """Ask for one timed slice and wait until it is done (the child keeps the totals)."""
        try:
            self.proc.stdin.write(f"{phase} {seconds:.3f}\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            self.alive = False
            return
        line = self._read_until("SLICE ")
        self.alive = line is not None
        if line is not None:
            _, done_phase, items, took = line.split()
            self.slices.append([done_phase, int(items), float(took)])

    def finish(self) -> dict | None:
        """Say "end" (a child not taking turns ignores it), read to the end: its RESULT, or None."""
        try:
            self.proc.stdin.write("end\n")
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        self._read_until(None)
        self.proc.wait()
        if self.proc.returncode != 0:
            self.stderr.seek(0)
            self.log(f"  failed (exit {self.proc.returncode}): {self.stderr.read().strip()[-800:]}")
            return None
        return self.result


def take_turns(children: list[Child], p: dict, settle: float = 0.2) -> None:
    """Training slices, then evaluation slices, in the order A B B A ... among the live children.

    Before each slice, `settle` seconds with nobody working: the last player's idle
    threads still spin for a moment (OpenBLAS's default is about 0.1 s after a product)
    and would otherwise take the cores from the next player's first steps.
    """
    for phase, seconds, slices in (("train", p["seconds"], p["slices"]), ("eval", p["eval_seconds"], p["eval_slices"])):
        for order in turns.slice_order(slices, len(children)):
            for i in order:
                if children[i].alive:
                    time.sleep(settle)
                    children[i].run_slice(phase, seconds / slices)


def lm_options(workload: dict, data_dir: Path) -> list[str]:
    """The LM workload as the LM peers' shared options (peers/common.py add_lm_arguments)."""
    cfg = workload["config"]
    m, d = cfg["model"], cfg["data"]
    options = ["--data", str(data_dir / "ptb"), "--emb", str(m["embed_dim"]), "--hidden", str(m["hidden_dim"]),
               "--layers", str(m["num_layers"]), "--dropout", str(m["dropout"]), "--batch-size", str(d["batch_size"]),
               "--bptt", str(d["bptt"]), "--eval-batch-size", str(workload["eval_batch_size"]),
               "--lr", str(cfg["optimizer"]["lr"]), "--clip", str(cfg["train"]["clip_grad_norm"]),
               "--cell", m.get("cell", "lstm")]
    return options + (["--tied"] if m["tie_weights"] else [])


def peer_command(name: str, workload: dict, exe: str, data_dir: Path, p: dict, vectors: Path) -> list[str]:
    """The peer's command line for the same work; `workload`: the worker's WORKLOAD line (or RESULT)."""
    cfg = workload["config"]
    if name.startswith("lm_"):
        return [exe, str(HERE / "peers" / "lm_torch.py"), *lm_options(workload, data_dir), "--warmup", str(p["warmup"]),
                "--seconds", str(p["seconds"]), "--eval-seconds", str(p["eval_seconds"])]
    if name == "cnn":
        return [exe, str(HERE / "peers" / "img_torch.py"), "--data", str(data_dir / "fashion-mnist"),
                "--batch", str(cfg["data"]["batch_size"]), "--eval-batch", str(workload["eval_batch_size"]),
                "--warmup", str(p["warmup"]), "--seconds", str(p["seconds"]), "--eval-seconds", str(p["eval_seconds"])]
    return [exe, str(HERE / "peers" / "w2v_gensim.py"), "--corpus", str(data_dir / "ptb" / "ptb.train.txt"),
            "--epochs", str(p["epochs"]), "--sample", str(cfg["data"]["subsample"]), "--vectors-out", str(vectors)]


def book_command(workload: dict, data_dir: Path) -> list[str]:
    """The re-created book LM (peers/book_lm.py) on the same work, with nnctl's interpreter, taking turns."""
    return [sys.executable, str(HERE / "peers" / "book_lm.py"), *lm_options(workload, data_dir),
            "--warmup", "2", "--turns"]


def word_quality(vectors_npy: str, data_dir: Path) -> dict:
    """Analogy accuracy and similarity rho with nnctl's evaluator (the same for both tools)."""
    import numpy as np

    from nnctl import wordvec
    from nnctl.data.text import Vocab

    vectors = np.load(vectors_npy)
    words = Path(vectors_npy).with_suffix(".txt").read_text(encoding="utf-8").split("\n")[: len(vectors)]
    vocab = Vocab(words)
    analogy = wordvec.evaluate_analogies(vectors, vocab, wordvec.eval_file("questions-words", str(data_dir)))
    ws = wordvec.evaluate_similarity(vectors, vocab, wordvec.eval_file("wordsim353", str(data_dir)))
    sl = wordvec.evaluate_similarity(vectors, vocab, wordvec.eval_file("simlex999", str(data_dir)))
    return {"analogy_acc": analogy.overall.accuracy, "analogy_covered": analogy.overall.covered,
            "wordsim353_rho": ws.spearman, "simlex999_rho": sl.spearman}


def rows_for(name: str, r: dict, busy: bool = False) -> list[dict]:
    """Table rows (train, eval) of one workload; `busy`: the targets of --busy."""
    nn, peer, book_here = r.get("nnctl") or {}, r.get("peer") or {}, r.get("book_here") or {}
    pinned = r.get("pinned") or {}
    rows = []
    for phase in ("train", "eval"):
        value = nn.get(f"{phase}_per_s")
        if value is None:
            continue
        other = peer.get(f"{phase}_per_s")
        gemm = nn.get(f"{phase}_gemm") or {}
        book_key = name if phase == "train" else f"{name}_eval"
        rows.append({
            "workload": name, "phase": phase, "unit": f"{nn['unit']}/s",
            "nnctl": value, "peer": other, "peer_name": peer.get("peer"),
            "ratio": value / other if other else None,
            "target": (BUSY_TARGETS if busy else TARGETS).get((name, phase)),
            "pinned": pinned.get(f"{phase}_per_s"),
            "x_pinned": value / pinned[f"{phase}_per_s"] if pinned.get(f"{phase}_per_s") else None,
            "threads": (nn.get("threads") or {}).get("count") if phase == "train" else None,
            "book": BOOK.get(book_key), "x_book": value / BOOK[book_key] if book_key in BOOK else None,
            "x_book_scaled": (value / (BOOK[book_key] * other / PEER_THEN[book_key])
                              if other and book_key in BOOK and book_key in PEER_THEN else None),
            "book_here": book_here.get(f"{phase}_per_s"),
            "x_book_here": value / book_here[f"{phase}_per_s"] if book_here.get(f"{phase}_per_s") else None,
            "bound": gemm.get("bound_per_s"), "fraction_of_bound": gemm.get("fraction"),
            "matmul_share": (r.get("profile") or {}).get("share", {}).get("dense matmul") if phase == "train" else None,
            "peak_rss_mb": nn.get("peak_rss_mb") if phase == "train" else None,
            "peer_peak_rss_mb": peer.get("peak_rss_mb") if phase == "train" else None,
        })
    return rows


def fmt(value, spec: str = ",.0f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def print_table(rows: list[dict], results: dict, log) -> None:
    pinned = any(row.get("pinned") for row in rows)  # --busy: nnctl pinned to one thread took turns too
    head = (f"{'workload':<10} {'phase':<5} {'unit':<9} {'nnctl':>9} {'peer':>9} {'ratio':>6} {'target':>7} "
            + (f"{'1 thread':>9} {'x 1thr':>7} {'thr':>3} " if pinned else "")
            + f"{'x book':>7} {'x book~':>7} {'x here':>7} {'bound':>9} {'of bnd':>6} {'matmul':>6} {'RSS MB':>7} "
            f"{'peerRSS':>7}")
    log("")
    log(head)
    log("-" * len(head))
    for row in rows:
        target = row["target"]
        mark = "" if target is None or row["ratio"] is None else (" ok" if row["ratio"] >= target else " !!")
        marks = {}
        for key in ("x_book", "x_book_scaled", "x_book_here"):
            if row["workload"].startswith("lm_") and row["phase"] == "train" and row[key] is not None:
                marks[key] = "" if row[key] >= BOOK_TARGET else "!"
        pinned_cells = ""
        if pinned:
            x = row["x_pinned"]
            x_mark = "" if x is None or row["phase"] != "train" else (" ok" if x >= PINNED_TARGET else " !!")
            pinned_cells = (f"{fmt(row['pinned']):>9} {fmt(x, '.2f') + x_mark:>7} "
                            f"{fmt(row['threads'], 'd'):>3} ")
        log(f"{row['workload']:<10} {row['phase']:<5} {row['unit']:<9} {fmt(row['nnctl']):>9} {fmt(row['peer']):>9} "
            f"{fmt(row['ratio'], '.2f'):>6} {(fmt(target, '.2f') + mark) if target else '-':>7} {pinned_cells}"
            f"{fmt(row['x_book'], '.1f') + marks.get('x_book', ''):>7} "
            f"{fmt(row['x_book_scaled'], '.1f') + marks.get('x_book_scaled', ''):>7} "
            f"{fmt(row['x_book_here'], '.1f') + marks.get('x_book_here', ''):>7} "
            f"{fmt(row['bound']):>9} {fmt(row['fraction_of_bound'], '.0%'):>6} "
            f"{fmt(row['matmul_share'], '.0%'):>6} {fmt(row['peak_rss_mb'], ',.0f'):>7} {fmt(row['peer_peak_rss_mb'], ',.0f'):>7}")
    spread = [(name, entry["rounds"]) for name, entry in results.items() if entry.get("rounds")]
    if spread:
        log("")
        log("Ratio over the rounds (min / median / max; the table shows the median round):")
        for name, rounds in spread:
            for phase, key, label in (("train", "train", ""), ("eval", "eval", ""),
                                      ("train", "train_x_1thr", "  (x 1 thread)"),
                                      ("eval", "eval_x_1thr", "  (x 1 thread)")):
                ratios = sorted(r[key] for r in rounds if r.get(key) is not None)
                if ratios:
                    mid = ratios[(len(ratios) - 1) // 2]
                    log(f"  {name:<10} {phase:<5} {ratios[0]:.2f} / {mid:.2f} / {ratios[-1]:.2f}   "
                        f"({', '.join(f'{r:.2f}' for r in ratios)}){label}")
    cbow = results.get("cbow") or {}
    if cbow.get("quality"):
        log("")
        log("CBOW quality (nnctl.wordvec evaluator for both; analogy acc over in-vocabulary questions):")
        for who, q in cbow["quality"].items():
            log(f"  {who:<7} analogy {fmt(q['analogy_acc'], '.2%')} ({q['analogy_covered']} q)  "
                f"WordSim-353 rho {fmt(q['wordsim353_rho'], '.3f')}  SimLex-999 rho {fmt(q['simlex999_rho'], '.3f')}")
    med = results.get("lm_medium", {}).get("nnctl") or {}
    if med.get("peak_rss_mb"):
        ok = med["peak_rss_mb"] <= MEDIUM_RSS_LIMIT_MB
        log(f"\nmedium LM peak RSS {med['peak_rss_mb']:,.0f} MB (limit {MEDIUM_RSS_LIMIT_MB:,} MB): {'ok' if ok else '!!'}")
    prof = (results.get("lm_small") or {}).get("profile") or {}
    if prof.get("hot_lines"):
        log("\nHot spots, small LM training step (py-spy, innermost Python line; share of samples):")
        for h in prof["hot_lines"][:10]:
            log(f"  {h['share']:6.1%}  {h['where']:<40} {h['function']:<24} [{h['kind']}]")


def run_pair(name: str, p: dict, data_dir: Path, exe: str | None, has: dict, spy: str | None,
             tmp: Path, log, book: bool = True, busy: bool = False) -> dict:
    """One round of a workload: nnctl's worker (profiled when `spy`) and its peer, taking turns;
    for an LM with `book`, the re-created book code too; with `busy`, nnctl pinned to one thread too."""
    tmp.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(HERE / "worker.py"), name, "--data-dir", str(data_dir),
           "--eval-seconds", str(p["eval_seconds"])]
    cmd += ["--epochs", str(p["epochs"])] if "epochs" in p else ["--warmup", str(p["warmup"]), "--turns"]
    unprofiled = list(cmd)
    if spy:
        cmd += ["--profile-seconds", str(p["profile_seconds"])]
    if name == "cbow":
        cmd += ["--vectors-out", str(tmp / "nnctl_vectors")]
    profile_to = tmp / f"{name}.prof" if spy else None
    peer_kind = "gensim" if name == "cbow" else "torch"
    with_peer = bool(exe and has.get(peer_kind))
    if not with_peer:
        log(f"  peer skipped: no {peer_kind} (give --peer-python)")
    entry = {}
    if "epochs" in p:  # gensim trains its epochs in one call: no turns, one after the other
        entry["nnctl"] = Child(cmd, log, profile_to, p["profile_seconds"]).finish()
        if entry["nnctl"] is not None and with_peer:
            entry["peer"] = Child(peer_command(name, entry["nnctl"], exe, data_dir, p, tmp / "gensim_vectors"),
                                  log).finish()
    else:
        players = {"nnctl": Child(cmd, log, profile_to, p["profile_seconds"])}
        if players["nnctl"].ready():
            workload = players["nnctl"].workload
            others = {"peer": (lambda: peer_command(name, workload, exe, data_dir, p, tmp) + ["--turns"])
                      if with_peer else None,
                      "book_here": (lambda: book_command(workload, data_dir))
                      if book and name.startswith("lm_") and workload["config"]["model"].get("cell", "lstm") == "lstm"
                      else None,
                      "pinned": (lambda: unprofiled) if busy else None}
            envs = {"pinned": {**USER_ENV, "OPENBLAS_NUM_THREADS": "1"}}  # nnctl's pool follows it (threads.py)
            for who, command in others.items():
                if command is not None:
                    child = Child(command(), log, env=envs.get(who))
                    if child.ready():
                        players[who] = child
                    else:
                        entry[who] = child.finish()  # logs why it failed
            take_turns(list(players.values()), p)
        for who, child in players.items():  # nnctl's profile window runs in its finish(), the others idle
            entry[who] = child.finish()
        entry["slices"] = {who: child.slices for who, child in players.items()}
    if entry["nnctl"] is None:
        return entry
    if spy and (tmp / f"{name}.prof").exists():
        entry["profile"] = profile_share.summarise(tmp / f"{name}.prof")
    for row in rows_for(name, entry, busy):
        here = f", book re-created {fmt(row['book_here'])} (x {fmt(row['x_book_here'], '.2f')})" if row["book_here"] else ""
        pinned = f", nnctl on 1 thread {fmt(row['pinned'])} (x {fmt(row['x_pinned'], '.2f')})" if row["pinned"] else ""
        log(f"  {row['phase']}: nnctl {fmt(row['nnctl'])} {row['unit']}, peer {fmt(row['peer'])}, "
            f"ratio {fmt(row['ratio'], '.2f')}{here}{pinned}")
    threads = entry["nnctl"].get("threads") or {}
    if threads.get("tuning"):
        log(f"  nnctl's threads: {threads['count']} at the end; switches (step, count): {threads['switches']}")
    return entry


def median_round(name: str, rounds: list[dict], busy: bool = False) -> dict:
    """The round whose training ratio is the median (the lower middle one for an even count),
    so every figure in the table comes from one real round; the first round's profile is kept.
    Without a peer, rounds are ranked by nnctl's own training speed."""
    def train_ratio(entry: dict) -> float:
        row = next((r for r in rows_for(name, entry, busy) if r["phase"] == "train"), None)
        return 0.0 if row is None else row["ratio"] or row["nnctl"]

    ranked = sorted(rounds, key=train_ratio)
    chosen = dict(ranked[(len(ranked) - 1) // 2])
    if "profile" in rounds[0]:
        chosen["profile"] = rounds[0]["profile"]
    return chosen


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=os.environ.get("NNCTL_DATA"),
                    help="folder with ptb/, fashion-mnist/, word-eval/ (default: $NNCTL_DATA, else nnctl's default)")
    ap.add_argument("--only", default=None,
                    help="comma list of groups (lm, cells, cnn, cbow) or workloads (lm_book, lm_small, lm_medium, "
                         f"lm_gru, lm_rnn); default lm,cnn,cbow ({BUSY_DEFAULT} with --busy)")
    ap.add_argument("--quick", action="store_true", help="short windows: ~2-3 minutes for the whole suite")
    ap.add_argument("--json", default=None, help="write every figure here (default: benchmarks/results/<date>.json)")
    ap.add_argument("--peer-python", default=None,
                    help=f"interpreter with torch / gensim for the peers (default: {DEFAULT_PEER_PYTHON} if present)")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--no-profile", action="store_true", help="skip the py-spy pass (matmul share, hot spots)")
    ap.add_argument("--no-book", action="store_true",
                    help="skip the re-created book LM (peers/book_lm.py) that the 'x here' column divides by")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run each (nnctl, peer) pair N times; report the median round and the spread")
    ap.add_argument("--busy", action="store_true",
                    help="keep one core busy with a CPU-bound process meanwhile, and time nnctl pinned to one "
                         "thread in the same turns (column x 1thr); skips the book LM")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error(f"--repeat: need at least 1 round, got {args.repeat}")

    from nnctl.data.download import default_data_dir

    data_dir = default_data_dir(args.data_dir)
    names = []
    if args.only is None:
        args.only = BUSY_DEFAULT if args.busy else "lm,cnn,cbow"
    for part in args.only.split(","):
        part = part.strip()
        if part in GROUPS:
            names += GROUPS[part]
        elif any(part in g for g in GROUPS.values()):
            names.append(part)
        elif part:
            ap.error(f"--only: unknown {part!r}; choose from {', '.join(list(GROUPS) + sum(GROUPS.values(), []))}")
    exe, has = (None, {"torch": False, "gensim": False}) if args.no_peers else peer_python(args.peer_python)
    spy = None if args.no_profile else shutil.which("py-spy")

    def log(text: str) -> None:
        print(text, flush=True)

    import numpy as np

    env = {"date": dt.datetime.now().isoformat(timespec="seconds"), "python": platform.python_version(),
           "numpy": np.__version__, "cpus": os.cpu_count(), "load_avg_start": os.getloadavg(),
           "command": " ".join([Path(sys.executable).name, *sys.argv]), "quick": args.quick,
           "peer_python": exe, "peers": has, "py_spy": spy,
           "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
           "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
           "busy": " ".join(BURNER) if args.busy else None}
    log(f"nnctl benchmarks | python {env['python']} numpy {env['numpy']} | {env['cpus']} cpus | "
        f"load {env['load_avg_start'][0]:.1f} | peers: {exe or 'none'} {has} | py-spy: {spy or 'none'}")
    p_all = plan(args.quick)
    tmp = Path(tempfile.mkdtemp(prefix="nnctl-bench-"))
    t_suite = time.perf_counter()
    burner = start_burner(log) if args.busy else None
    try:
        results = run_all(names, p_all, data_dir, exe, has, spy, tmp, log, args)
    finally:
        if burner is not None:
            burner.kill()
            burner.wait()
    shutil.rmtree(tmp, ignore_errors=True)

    rows = [row for name in names if name in results for row in rows_for(name, results[name], args.busy)]
    env["load_avg_end"] = os.getloadavg()
    env["suite_s"] = round(time.perf_counter() - t_suite, 1)
    print_table(rows, results, log)
    suffix = ("-quick" if args.quick else "") + ("-busy" if args.busy else "")
    out = Path(args.json) if args.json else HERE / "results" / f"{dt.date.today().isoformat()}{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"env": env, "table": rows, "results": results}, indent=1, default=str) + "\n")
    log(f"\nsuite {env['suite_s']:.0f} s, load {env['load_avg_end'][0]:.1f} at the end; JSON: {out}")
    return 0


def start_burner(log) -> subprocess.Popen:
    """--busy: one plain CPU-bound process for the whole suite, started before any workload."""
    proc = subprocess.Popen(BURNER, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log(f"busy: one core kept busy by `{' '.join(BURNER)}` (pid {proc.pid})")
    time.sleep(1.0)  # running before the first worker starts, so its warm-up sees the load
    return proc


def run_all(names: list[str], p_all: dict, data_dir: Path, exe: str | None, has: dict, spy: str | None,
            tmp: Path, log, args) -> dict[str, dict]:
    """Every workload's rounds: {name: the median round, with the spread over rounds}."""
    results: dict[str, dict] = {}
    for name in names:
        p = p_all[name]
        if args.busy and "warmup" in p:  # nnctl's first choice of threads is made in warm-up (thread_tuner.py)
            p = {**p, "warmup": max(p["warmup"], 25)}
        rounds = []
        for round_no in range(args.repeat):
            log(f"\n== {name}" + (f" (round {round_no + 1} of {args.repeat})" if args.repeat > 1 else ""))
            rounds.append(run_pair(name, p, data_dir, exe, has, spy if round_no == 0 else None,
                                   tmp / f"round{round_no}", log, book=not (args.no_book or args.busy),
                                   busy=args.busy))
        entry = median_round(name, rounds, args.busy)
        if name == "cbow":
            entry["quality"] = {}
            for who, part in (("nnctl", entry["nnctl"]), ("gensim", entry.get("peer"))):
                if part and part.get("vectors"):
                    entry["quality"][who] = word_quality(part["vectors"], data_dir)
        if len(rounds) > 1:
            entry["rounds"] = [{row["phase"]: row["ratio"] for row in rows_for(name, r, args.busy)} for r in rounds]
            if args.busy:  # and nnctl / nnctl on one thread, per round
                for summary, r in zip(entry["rounds"], rounds):
                    summary.update({f"{row['phase']}_x_1thr": row["x_pinned"] for row in rows_for(name, r, True)})
        results[name] = entry
    return results


if __name__ == "__main__":
    sys.exit(main())
