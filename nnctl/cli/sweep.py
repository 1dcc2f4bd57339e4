"""`nnctl sweep`: train one experiment under a grid of settings or random draws, over seeds, and compare."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from nnctl.cli.app import app, fail, user_errors
from nnctl.cli.options import DATA_DIR_HELP


@app.command()
def sweep(
    config: Optional[Path] = typer.Argument(None, help="Experiment YAML file every trial starts from."),
    grid: list[str] = typer.Option([], "--grid", help="KEY=V1,V2,... (repeatable: every combination is a "
                                   "setting). Values are YAML, as with --set; commas inside [..] or {..} stay."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key in every trial, e.g. "
                                   "`--set train.epochs=3` (repeatable; YAML, as with nnctl train)."),
    case: list[str] = typer.Option([], "--case", help="One setting, listed as it is: 'KEY=V KEY=V' (repeatable; "
                                   "an ablation turns one technique off per --case). Multiplied by any --grid."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Train each setting once per seed, e.g. 1,2,3."),
    sample: list[str] = typer.Option([], "--sample", help="Random search: KEY=log:LOW:HIGH, "
                                     "KEY=uniform:LOW:HIGH or KEY=choice:A,B (repeatable)."),
    trials: Optional[int] = typer.Option(None, "--trials", help="With --sample: how many random settings "
                                         "(default 10)."),
    sweep_seed: int = typer.Option(0, "--sweep-seed", help="Seed of the random search's draws."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Trials at once, each a process with "
                                       "cores/JOBS threads (default 1; resuming: as the sweep was started)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Finish a sweep folder: resume its interrupted "
                                          "trials exactly and start the ones that never ran."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where the sweep folder is made "
                                  "(`runs/<name>/sweeps/<stamp>/`)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print one `nnctl train` command per trial and "
                                 "run nothing (for a Slurm job array or GNU parallel)."),
):
    """Train an experiment under several settings and seeds, then rank the settings.

    Each trial is an ordinary run folder inside `runs/<name>/sweeps/<stamp>/`, whose
    sweep.yaml lists every trial's overrides, seed, run folder and state. At the end (and
    with `nnctl runs SWEEP_DIR`) one row per setting gives the mean ± standard deviation
    over seeds of the best validation metric and the test metric, best first;
    `nnctl plot SWEEP_DIR -o curves.png` draws each setting's mean curve with a band.

    Example: `nnctl sweep configs/mlp_fashion_mnist.yaml --grid optimizer.lr=0.1,0.01 --seeds 1,2 --jobs 2`

    Random search: `nnctl sweep CONFIG --sample optimizer.lr=log:1e-4:1e-1 --trials 20`

    Ctrl-C stops every trial cleanly; `nnctl sweep --resume runs/<name>/sweeps/<stamp>` finishes it.
    """
    from nnctl import sweep as sweep_mod

    with user_errors():
        if jobs is not None and jobs < 1:
            fail(f"--jobs {jobs}: give at least 1 (trials at once)", 2)
        if resume is not None:
            if config is not None or grid or case or sample or seeds or set_ or trials is not None or dry_run:
                fail("--resume SWEEP_DIR continues a sweep as it was planned; give no CONFIG, --grid, --case, "
                     "--sample, --seeds, --set, --trials or --dry-run with it", 2)
            plan = sweep_mod.Sweep.open(resume)
            jobs = plan.jobs = jobs or plan.jobs
            data = str(data_dir) if data_dir else plan.data_dir
        else:
            jobs = jobs or 1
            plan, data = _plan(config, set_, grid, case, seeds, sample, trials, sweep_seed, jobs, runs_dir,
                               data_dir, dry_run)
            if plan is None:
                return
        total = len(plan.trials)
        print(f"sweep: {total} trials, {min(jobs, total)} at a time with "
              f"{sweep_mod.threads_per_trial(jobs)} BLAS thread(s) each -> {plan.path}", flush=True)
        done = [sum(t.state == sweep_mod.FINISHED for t in plan.trials)]

        def on_event(what: str, trial) -> None:
            seed = f" seed={trial.seed}" if trial.seed is not None else ""
            if what == "start":
                print(f"  start    {trial.name}  {trial.label}{seed}", flush=True)
                return
            done[0] += what == sweep_mod.FINISHED
            print(f"  {what:<8} {trial.name}  {trial.label}{seed}  [{done[0]}/{total} finished]", flush=True)

        completed = sweep_mod.run_trials(plan, jobs, data, on_event)
        print_settings(plan)
        if not completed:
            print(f"interrupted: resume with: nnctl sweep --resume {plan.path}", flush=True)
            raise typer.Exit(130)
        failed = [t for t in plan.trials if t.state == sweep_mod.FAILED]
        for trial in failed:
            print(f"{trial.name} failed: {sweep_mod.describe_failure(plan, trial)} (all it printed: "
                  f"{plan.log_path(trial)}; to try it again, delete {plan.path / trial.name} and resume)",
                  file=sys.stderr)
        if failed:
            raise typer.Exit(1)


def _plan(config, fixed, grid, case, seeds, sample, trials, sweep_seed, jobs, runs_dir, data_dir, dry_run):
    """Parse and check the whole plan, then make the sweep folder (or, dry, print its commands)."""
    from nnctl import sweep as sweep_mod

    if config is None:
        fail("missing CONFIG: give an experiment file (e.g. configs/mlp_fashion_mnist.yaml) or "
             "--resume SWEEP_DIR", 2)
    if not (grid or case or sample or seeds):
        fail("nothing to sweep: give --grid KEY=V1,V2, --case 'KEY=V ...', --sample KEY=log:LOW:HIGH "
             "or --seeds 1,2,3", 2)
    if trials is not None and not sample:
        fail(f"--trials {trials}: counts random draws, so it needs --sample KEY=...", 2)
    if trials is not None and trials < 1:
        fail(f"--trials {trials}: give at least 1", 2)
    parsed_grid = [sweep_mod.parse_grid(text) for text in grid]
    parsed_sample = [sweep_mod.parse_sample(text) for text in sample]
    seed_list = sweep_mod.parse_seeds(seeds) if seeds is not None else None
    cases = [sweep_mod.parse_case(text) for text in case]
    planned = sweep_mod.plan_trials(parsed_grid, parsed_sample, trials or 10, seed_list, sweep_seed, fixed, cases)
    cfg = sweep_mod.check_trials(config, planned)  # every trial's config resolves, or one line
    if dry_run:
        for line in sweep_mod.dry_run_commands(config, planned, str(data_dir) if data_dir else None):
            print(line)
        return None, None
    data = str(data_dir.resolve()) if data_dir else None  # a resume may start from another folder
    plan = sweep_mod.Sweep.create(runs_dir, cfg["name"], config.resolve(), planned, data_dir=data, jobs=jobs)
    return plan, data


def print_settings(plan, target: float | None = None) -> None:
    """One row per setting: finished seeds; the last training, best validation and test metric as
    mean ± std, best validation first; with a target, the steps the validation metric took to reach it."""
    from nnctl.console import print_table
    from nnctl.metrics import format_value
    from nnctl.sweep import compare_settings, mean_std

    results = compare_settings(plan)
    if not results:
        return
    metric = next((r.metric for r in results if r.runs), results[0].metric)

    def text(mean, std, fmt) -> str:
        return "-" if mean is None else fmt(mean) + (f" ± {fmt(std)}" if std is not None else "")

    def value(v) -> str:
        return format_value(metric, v)

    def steps(result) -> str:
        reached = [s for s in result.steps_to(target) if s is not None]
        never = len(result.runs) - len(reached)
        if not reached:
            return "never" if result.runs else "-"
        return text(*mean_std(reached), lambda v: f"{v:,.0f}") + (f" ({never} never)" if never else "")

    columns = ["setting", "runs", f"train {metric}", f"best valid {metric}", f"test {metric}"]
    short = ["setting", "runs", "train", "best valid", "test"]  # when the table is too wide: two lines a row
    rows = [[r.label, f"{len(r.runs)}/{r.trials}", text(*r.mean_std("train"), value),
             text(*r.mean_std("valid"), value), text(*r.mean_std("test"), value)] for r in results]
    if target is not None:
        columns.append(f"steps to valid {value(target)}")
        short.append(f"steps to {value(target)}")
        for row, result in zip(rows, results):
            row.append(steps(result))
    print_table(f"{plan.path}: {metric}, mean ± std over seeds (train: the last epoch's running value), best first",
                columns, rows, stacked=short)
