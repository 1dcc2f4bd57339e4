#!/usr/bin/env python
"""nnctl word vectors (cbow, ppmi_svd) against gensim's CBOW on Penn Treebank, in one session.

    python3 benchmarks/w2v_compare.py --data-dir ~/data \
        --gensim-python /tmp/peers/bin/python --bench-dir ../shared/bench

1. gensim: runs <bench-dir>/w2v_gensim.py (2 workers, sample 1e-3, the cbow_ptb sizes) with
   the given interpreter (a venv with gensim), and reads its summary;
2. nnctl: `python3 -m nnctl train configs/cbow_ptb.yaml` and `configs/ppmi_svd_ptb.yaml`;
3. every set of vectors is scored by <bench-dir>/word_eval.py, exactly as gensim's are.

Throughput is corpus words (no line ends) x epochs / seconds spent in training steps
(nnctl: the train records' elapsed minus the validation passes; gensim: its train() time).
Run it on a quiet machine, or at least compare the two in the same run: the ratio is the figure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_gensim(args, out_dir: Path) -> dict:
    out = out_dir / "gensim.json"
    cmd = [args.gensim_python, str(Path(args.bench_dir) / "w2v_gensim.py"), "--samples", "1e-3",
           "--repeats", str(args.repeats), "--workers", "2", "--epochs", "10", "--out", str(out)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    summary = json.loads(out.read_text())["by_sample"]["0.001"]
    runs = summary["runs"]
    best = sorted(runs, key=lambda r: r["train_s"])[len(runs) // 2]  # the median-time run
    return {"name": "gensim cbow (2 workers)", "train_s": best["train_s"],
            "words_per_s": best["raw_words_per_s"], "quality": best["quality"], "wall_s": best["wall_s"]}


def run_nnctl(config: str, args, out_dir: Path) -> dict:
    sys.path.insert(0, str(ROOT))
    from nnctl.open_run import open_run

    runs_dir = Path(args.runs_dir or out_dir) / Path(config).stem
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nnctl", "train", str(ROOT / config), "--data-dir", args.data_dir,
                    "--runs-dir", str(runs_dir), "-q"], check=True, cwd=ROOT)
    wall = time.perf_counter() - start
    run = max((p for p in runs_dir.glob("*/*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_s, previous = 0.0, 0.0
    for rec in records:  # training time = each train record's elapsed minus the evaluation before it
        if rec["split"] == "train":
            train_s += rec["elapsed"] - previous
        previous = rec["elapsed"]
    opened = open_run(run, needs="word vectors")
    ckpt, model = opened.checkpoint, opened.model
    import word_eval

    quality = word_eval.evaluate_all(ckpt.vocab.words, model.word_vectors())
    epochs = ckpt.meta["config"]["train"]["epochs"]
    corpus_words = sum(len(line.split()) for line in
                       (Path(args.data_dir) / "ptb" / "ptb.train.txt").read_text().splitlines())
    out = {"name": f"nnctl {ckpt.meta['model_type']}", "run": str(run), "wall_s": round(wall, 1), "quality": quality}
    if train_s > 0:
        out.update(train_s=round(train_s, 1), words_per_s=round(corpus_words * epochs / train_s))
    return out


def row(result: dict) -> str:
    q = result["quality"]
    an, ws, sl = q["analogy"], q["wordsim353"], q["simlex999"]
    speed = f"{result['words_per_s']:,}" if "words_per_s" in result else "-"
    return (f"| {result['name']} | {speed} | {result.get('train_s', '-')} | {result['wall_s']} | "
            f"{100 * an['accuracy']:.2f}% ({an['qualifying']}/{an['total_questions']}) | "
            f"{ws['spearman']:.3f} ({ws['covered']}/{ws['pairs']}) | {sl['spearman']:.3f} ({sl['covered']}/{sl['pairs']}) |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True, help="folder with ptb/ (and word-eval/ for the bench scripts)")
    ap.add_argument("--gensim-python", default=None, help="python of a venv with gensim; omit to skip gensim")
    ap.add_argument("--bench-dir", required=True, help="folder with the reference peers w2v_gensim.py and word_eval.py")
    ap.add_argument("--repeats", type=int, default=1, help="gensim runs (the median-time one is shown)")
    ap.add_argument("--configs", nargs="+", default=["configs/cbow_ptb.yaml", "configs/ppmi_svd_ptb.yaml"])
    ap.add_argument("--runs-dir", default=None, help="keep the nnctl runs here (default: a temporary folder)")
    ap.add_argument("--out", default=None, help="write all results as JSON here")
    args = ap.parse_args()
    sys.path.insert(0, args.bench_dir)

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.gensim_python:
            results.append(run_gensim(args, Path(tmp)))
        for config in args.configs:
            results.append(run_nnctl(config, args, Path(tmp)))
    print("| model | corpus words/s | train s | wall s | analogy acc. (covered/all) | WS-353 rho (covered) "
          "| SimLex-999 rho (covered) |")
    print("|---|---|---|---|---|---|---|")
    for result in results:
        print(row(result))
    if args.gensim_python and any("words_per_s" in r for r in results[1:]):
        base = results[0]["words_per_s"]
        for r in results[1:]:
            if "words_per_s" in r:
                print(f"{r['name']}: {r['words_per_s'] / base:.3f}x gensim's words/s")
    for r in results:
        print(r["name"], "neighbours:", json.dumps(r["quality"]["neighbours"]))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
