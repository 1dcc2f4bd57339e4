"""The benchmark suite's own machinery: profile classification, the GEMM-bound shapes, and
the turn-taking between nnctl and its peer.

(The suite itself needs real data and minutes of CPU, so it is not run by pytest.)
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import gemm_bound  # noqa: E402
import generate_speed  # noqa: E402
import machine_check  # noqa: E402
import profile_share  # noqa: E402
import turns  # noqa: E402


def test_profile_share_classifies_samples_and_finds_the_hot_line(tmp_path):
    raw = tmp_path / "p.raw"
    raw.write_text(
        "<module> (run.py:1);forward (/x/nnctl/layers/recurrent.py:65);sgemm_kernel_HASWELL (libscipy_openblas64_.so) 6\n"
        "<module> (run.py:1);forward (/x/nnctl/layers/recurrent.py:67);FLOAT_tanh (_multiarray_umath.so) 3\n"
        "<module> (run.py:1);_matmul_multivector (/y/scipy/sparse/_compressed.py:488);"
        "csr_matvecs<long, float> (_sparsetools.so) 1\n")
    s = profile_share.summarise(raw)
    assert s["samples"] == 10
    assert s["share"] == pytest.approx({"dense matmul": 0.6, "sparse product": 0.1, "other": 0.3})
    top = s["hot_lines"][0]
    assert (top["where"], top["kind"], top["share"]) == ("nnctl/layers/recurrent.py:65", "dense matmul", 0.6)


def test_profile_share_counts_only_the_main_thread_of_a_threads_profile(tmp_path):
    raw = tmp_path / "p.raw"
    raw.write_text(
        "thread (7): MainThread;<module> (run.py:1);forward (/x/nnctl/layers/decoder_loss.py:70);"
        "sgemm_kernel_HASWELL (libscipy_openblas64_.so) 3\n"
        "thread (7): MainThread;<module> (run.py:1);exp_shifted (/x/nnctl/layers/decoder_loss.py:79) 1\n"
        "thread (9): nnctl-rows_0;_worker (/py/concurrent/futures/thread.py:81) 50\n")
    s = profile_share.summarise(raw)
    assert s["samples"] == 4
    assert s["share"]["dense matmul"] == pytest.approx(0.75)
    assert s["hot_lines"][0]["where"] == "nnctl/layers/decoder_loss.py:70"


def test_lstm_products_cover_every_matrix_product_of_a_window():
    N, T, E, H, L, V = 20, 35, 200, 200, 2, 10000
    train = gemm_bound.lstm_lm_products(N, T, E, H, L, V, training=True)
    flops = sum(2 * p.m * p.k * p.n * p.repeats for p in train)
    M = N * T
    # per layer: 3 forward-size products for x@Wx, h@Wh (all steps), and 3x that backward;
    # decoder: one forward and two backward (M, H, V) products
    per_layer = 2 * M * H * 4 * H * 2 * 3
    assert flops == L * per_layer + 3 * 2 * M * H * V
    evaluation = gemm_bound.lstm_lm_products(10, T, E, H, L, V, training=False)
    assert len(evaluation) == 2 * L + 1


def test_time_product_is_positive_and_layouts_agree_on_shape():
    for layout in ("nn", "tn", "nt"):
        seconds = gemm_bound.time_product(gemm_bound.Product("p", 8, 16, 4, layout), min_seconds=0.0)
        assert 0 < seconds < 1
    bound = gemm_bound.measure(gemm_bound.simple_convnet_products(4, training=False), min_seconds=0.0)
    assert len(bound["products"]) == 3 and bound["seconds_per_batch"] > 0
    assert np.isfinite([p["gflops"] for p in bound["products"]]).all()


def test_median_round_is_one_real_round_and_keeps_the_first_profile():
    import run

    def round_(mine, theirs, profile=None):
        entry = {"nnctl": {"train_per_s": mine, "unit": "tokens"}, "peer": {"train_per_s": theirs}}
        return {**entry, "profile": profile} if profile else entry

    rounds = [round_(120, 100, profile={"samples": 7}), round_(90, 100), round_(110, 100), round_(100, 100)]
    chosen = run.median_round("lm_book", rounds)
    assert chosen["nnctl"]["train_per_s"] == 100  # ratios 0.9, 1.0, 1.1, 1.2: the lower middle
    assert chosen["profile"] == {"samples": 7}
    assert run.median_round("lm_book", rounds[:1]) == rounds[0]


def test_repeat_needs_at_least_one_round(capsys):
    import run

    with pytest.raises(SystemExit) as stop:
        run.main(["--repeat", "0", "--no-peers", "--no-profile"])
    assert stop.value.code == 2 and "--repeat: need at least 1 round" in capsys.readouterr().err


def test_serve_answers_each_slice_and_sums_them():
    import io

    asked = []

    def train(seconds):
        asked.append(("train", seconds))
        return 10, seconds

    out = io.StringIO()
    totals = turns.serve({"train": train, "eval": lambda s: (3, s)},
                         io.StringIO("train 0.5\n\neval 2\ntrain 1.5\nend\ntrain 9\n"), out)
    assert asked == [("train", 0.5), ("train", 1.5)]  # nothing after "end"
    assert totals == {"train": [20, 2.0], "eval": [3, 2.0]}
    assert out.getvalue().splitlines() == ["READY", "SLICE train 10 0.500000", "SLICE eval 3 2.000000",
                                           "SLICE train 10 1.500000"]
    with pytest.raises(SystemExit, match="cannot read 'fly 2'"):
        turns.serve({"train": train}, io.StringIO("fly 2\n"), io.StringIO())


def test_slices_alternate_a_b_b_a():
    import run

    assert turns.slice_order(4) == [(0, 1), (1, 0), (0, 1), (1, 0)]
    calls = []

    class Fake:
        def __init__(self, name, alive=True):
            self.name, self.alive = name, alive

        def run_slice(self, phase, seconds):
            calls.append(f"{self.name}:{phase}:{seconds:g}")

    run.take_turns([Fake("A"), Fake("B")], {"seconds": 6, "slices": 3, "eval_seconds": 2, "eval_slices": 2},
                   settle=0)
    assert calls == ["A:train:2", "B:train:2", "B:train:2", "A:train:2", "A:train:2", "B:train:2",
                     "A:eval:1", "B:eval:1", "B:eval:1", "A:eval:1"]
    calls.clear()
    run.take_turns([Fake("A"), Fake("B", alive=False)], {"seconds": 1, "slices": 2, "eval_seconds": 1, "eval_slices": 1},
                   settle=0)
    assert calls == ["A:train:0.5", "A:train:0.5", "A:eval:1"]  # a dead peer is skipped, nnctl goes on alone
    calls.clear()
    assert turns.slice_order(3, players=3) == [(0, 1, 2), (2, 1, 0), (0, 1, 2)]
    run.take_turns([Fake("A"), Fake("B"), Fake("C")], {"seconds": 2, "slices": 2, "eval_seconds": 1, "eval_slices": 1},
                   settle=0)
    assert calls == ["A:train:1", "B:train:1", "C:train:1", "C:train:1", "B:train:1", "A:train:1",
                     "A:eval:1", "B:eval:1", "C:eval:1"]


def test_table_rows_divide_by_the_book_code_measured_in_the_same_run():
    import run

    entry = {"nnctl": {"train_per_s": 9000.0, "eval_per_s": 18000.0, "unit": "tokens"},
             "peer": {"train_per_s": 7500.0, "eval_per_s": 20000.0, "peer": "torch"},
             "book_here": {"train_per_s": 4000.0, "eval_per_s": 7200.0}}
    train, evaluation = run.rows_for("lm_book", entry)
    assert train["ratio"] == pytest.approx(1.2) and train["x_book_here"] == pytest.approx(2.25)
    assert train["x_book"] == pytest.approx(9000 / run.BOOK["lm_book"])
    assert evaluation["x_book_here"] == pytest.approx(2.5) and evaluation["book_here"] == 7200.0
    assert run.rows_for("lm_book", {"nnctl": entry["nnctl"]})[0]["x_book_here"] is None


FAKE_CHILD = """
import json, sys
sys.path.insert(0, {bench!r})
import turns
if sys.argv[1] == "crash":
    sys.exit("cannot find the data: give --data-dir")
print("WORKLOAD " + json.dumps({{"config": {{"name": "fake"}}, "eval_batch_size": 4}}), flush=True)
totals = turns.serve({{"train": lambda s: (7, s), "eval": lambda s: (2, s)}})
print("RESULT " + json.dumps(totals), flush=True)
"""


def test_child_takes_turns_over_its_stdin_and_reports(tmp_path):
    import run

    script = tmp_path / "fake_child.py"
    script.write_text(FAKE_CHILD.format(bench=str(Path(run.__file__).parent)))
    lines = []
    child = run.Child([sys.executable, str(script), "ok"], lines.append)
    assert child.ready() and child.workload == {"config": {"name": "fake"}, "eval_batch_size": 4}
    run.take_turns([child], {"seconds": 1, "slices": 2, "eval_seconds": 0.5, "eval_slices": 1}, settle=0)
    assert child.slices == [["train", 7, 0.5], ["train", 7, 0.5], ["eval", 2, 0.5]]
    assert child.finish() == {"train": [14, 1.0], "eval": [2, 0.5]}

    failing = run.Child([sys.executable, str(script), "crash"], lines.append)
    assert not failing.ready() and failing.finish() is None
    assert "failed (exit 1): cannot find the data: give --data-dir" in lines[-1]


@pytest.mark.parametrize("layers, dropout, tied", [(1, 0.0, False), (2, 0.2, True)], ids=["rnnlm", "better_rnnlm"])
def test_recreated_book_lm_learns_a_repeating_sequence(layers, dropout, tied):
    """The 'x here' column divides by peers/book_lm.py: it must do the real work, so it has to learn."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks" / "peers"))
    import book_lm

    np.random.seed(0)
    model = book_lm.BookLM(V=6, D=8, H=8, layers=layers, dropout=dropout, tied=tied)
    assert len(book_lm.remove_duplicate(model.params, model.grads)[0]) == len(model.params) - tied
    batches = book_lm.Batches(np.tile(np.arange(6), 40), batch_size=4, time_size=5)
    losses = []
    for _ in range(400):
        xs, ts = batches.next()
        losses.append(model.forward(xs, ts))
        model.backward()
        params, grads = book_lm.remove_duplicate(model.params, model.grads)
        book_lm.clip_grads(grads, 5.0)
        for param, grad in zip(params, grads):
            param -= 1.0 * grad
    assert all(p.dtype == np.float32 for p in model.params)
    assert np.mean(losses[-10:]) < 0.2 * np.mean(losses[:10])


def test_the_book_code_and_pytorch_get_the_same_lm_options(tmp_path):
    import run

    workload = {"config": {"model": {"embed_dim": 100, "hidden_dim": 100, "num_layers": 1, "dropout": 0.0,
                                     "tie_weights": False},
                           "data": {"batch_size": 20, "bptt": 35}, "optimizer": {"lr": 20.0},
                           "train": {"clip_grad_norm": 0.25}},
                "eval_batch_size": 10}
    plan = {"warmup": 3, "seconds": 6, "eval_seconds": 3}
    torch_cmd = run.peer_command("lm_book", workload, "/peers/python", tmp_path, plan, tmp_path / "v")
    book_cmd = run.book_command(workload, tmp_path)
    shared = run.lm_options(workload, tmp_path)
    assert torch_cmd[2:2 + len(shared)] == shared == book_cmd[2:2 + len(shared)]
    assert "--tied" not in shared and shared[shared.index("--eval-batch-size") + 1] == "10"
    assert book_cmd[-1] == "--turns" and book_cmd[1].endswith("book_lm.py")


def test_the_cell_workloads_pass_their_cell_to_the_peer(tmp_path):
    import run
    import worker

    for name, cell in (("lm_small", "lstm"), ("lm_gru", "gru"), ("lm_rnn", "rnn")):
        cfg = worker.load_config(name)
        assert cfg["model"]["cell"] == cell
        options = run.lm_options({"config": cfg, "eval_batch_size": 10}, tmp_path)
        assert options[options.index("--cell") + 1] == cell


def test_lr_trials_refuses_fewer_steps_than_its_means_need(capsys):
    import lr_trials

    with pytest.raises(SystemExit) as stop:
        lr_trials.main(["configs/tiny_lstm.yaml", "--lr", "1", "--steps", "10"])
    assert stop.value.code == 2 and "--steps must be at least 50" in capsys.readouterr().err


def test_machine_check_reads_the_product_in_slices_and_times_each_pass(capsys):
    readings = machine_check.product_slices(seconds=0.2, slice_seconds=0.05)
    assert len(readings) >= 2 and all(r > 0 for r in readings)
    timings = machine_check.elementwise_ns(size=1_000, repeats=3)
    assert set(timings) == {"exp", "add", "max", "sum"} and all(t > 0 for t in timings.values())
    assert machine_check.main(["--seconds", "0.1", "--slice", "0.05", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "BLAS threads [1]" in out and "exp / add" in out and "BLAS kernels:" in out


def test_decoder_vs_torch_times_the_same_loss_in_both_libraries(capsys):
    torch = pytest.importorskip("torch")
    import decoder_vs_torch

    fns = decoder_vs_torch.contenders(M=12, H=8, V=50, torch=torch)
    assert float(fns["nnctl decoder"]()) == pytest.approx(fns["torch decoder"](), rel=1e-5)
    np.testing.assert_allclose(fns["numpy product"](), fns["torch product"]().numpy(), rtol=1e-5, atol=1e-6)
    args = ["--tokens", "12", "--hidden", "8", "--vocab", "50", "--threads", "1", "--rounds", "2", "--seconds", "0.01"]
    assert decoder_vs_torch.main(args) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.split("|")[0].split() == ["1", "8"]]
    assert len(rows) == 1


def test_recurrent_vs_torch_times_the_same_layer_in_both_libraries(capsys):
    torch = pytest.importorskip("torch")
    import recurrent_vs_torch

    fns = recurrent_vs_torch.contenders(N=3, T=4, H=5, torch=torch)
    nnctl_y, torch_y = fns["nnctl layer"](), fns["torch layer"]().numpy()
    np.testing.assert_allclose(nnctl_y, torch_y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fns["nnctl step"](), fns["torch step"]().numpy(), rtol=1e-5, atol=1e-6)
    args = ["--rows", "3", "--steps", "4", "--hidden", "5", "--threads", "1", "--rounds", "2", "--seconds", "0.01"]
    assert recurrent_vs_torch.main(args) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.split("|")[0].split() == ["1", "3", "5"]]
    assert len(rows) == 1


@pytest.mark.parametrize("coretype", [None, "Haswell"])
def test_machine_check_says_whether_openblas_coretype_chose_the_kernels(capsys, monkeypatch, coretype):
    if coretype is None:
        monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    else:
        monkeypatch.setenv("OPENBLAS_CORETYPE", coretype)
    assert machine_check.main(["--seconds", "0.02", "--slice", "0.01", "--threads", "1"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    expected = "(chosen by the library for this CPU)" if coretype is None else "(OPENBLAS_CORETYPE=Haswell is set)"
    assert first.startswith("BLAS kernels:") and first.endswith(expected)


def test_small_products_times_each_form_of_each_product(capsys):
    import small_products

    for fns in (small_products.step_contenders(3, 5), small_products.gradient_contenders(40, 3, 4)):
        results = [fn() for fn in fns.values()]
        for other in results[1:]:
            np.testing.assert_allclose(other, results[0], rtol=1e-5, atol=1e-5)
    args = ["--steps", "3x5", "--gradients", "40x3x4", "--threads", "1", "--rounds", "1", "--seconds", "0.01"]
    assert small_products.main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any("step" in line and "groups" in line for line in lines)
    assert any("gradient" in line and "pieces" in line for line in lines)


def test_generate_speed_times_both_ways_and_they_sample_the_same_words(capsys):
    args = ["--hidden", "8", "--vocab", "30", "--words", "4", "--threads", "1", "--rounds", "1", "--seconds", "0.01"]
    assert generate_speed.main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("LSTM LM 2 x 8, vocabulary 30")
    assert lines[1].startswith("threads 1  kept") and "made every word" in lines[1]
