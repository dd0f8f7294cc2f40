"""The benchmark suite (benchmarks/): its arithmetic, its checks, the page's
tables, and the committed results file. The references are not installed
here (`make bench` installs them apart from the book), so the suite itself
runs with ours alone and says why each reference did not run."""

import json
import statistics
import sys
from pathlib import Path

import pytest
import torch
from benchmarks.__main__ import failed_checks, parse, run
from benchmarks.cases import Options, compare_codes, to_taming_gpt
from benchmarks.harness import time_interleaved

from t2i.models.transformer import Transformer, TransformerConfig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
from bench_results import comparison_rows, figure_text, render, speed_ratios

CPU_RESULTS = ROOT / "book" / "_data" / "benchmarks-cpu.json"


def test_interleaving_alternates_the_order_each_round():
    order = []
    calls = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    timings = time_interleaved(calls, repeats=3, device=torch.device("cpu"), warmup=1)
    assert order == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert all(len(t.seconds) == 3 for t in timings.values())


def test_ratio_is_our_speed_over_theirs_round_by_round():
    ours, theirs = {"values": [2.0, 4.0]}, {"values": [1.0, 1.0]}
    assert speed_ratios(ours, theirs, higher_is_better=True) == [2.0, 4.0]  # rates
    assert speed_ratios(ours, theirs, higher_is_better=False) == [0.5, 0.25]  # times


def test_a_verdict_says_when_the_rounds_disagree():
    from bench_results import ratio_text

    assert ratio_text([1.3, 1.2, 0.9]) == (
        "1.20× (0.90–1.30), ours faster at the median, not in every round"
    )
    assert ratio_text([0.5, 0.6]) == "0.55× (0.50–0.60), ours slower"
    assert ratio_text([15.4]) == "15.40×, ours faster"
    assert ratio_text([1.02, 0.99]) == "1.00× (0.99–1.02), about even"


def test_codes_that_differ_count_as_ties_only_when_equally_near():
    codebook = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 5.0]])
    z = torch.tensor([[0.0, 0.0], [0.9, 0.0]]).T.reshape(1, 2, 1, 2)
    ours = torch.tensor([0, 0])
    # vector 0 sits halfway between codes 0 and 1: a tie; vector 1 is nearest 0
    assert compare_codes(z, codebook, ours, torch.tensor([1, 0])) == (1, 1, 0)
    assert compare_codes(z, codebook, ours, torch.tensor([0, 2])) == (1, 0, 1)


def test_our_weights_fill_every_parameter_of_a_taming_style_gpt():
    """to_taming_gpt against a module with taming's parameter names and shapes."""
    config = TransformerConfig(
        vocab_size=11, block_size=5, n_layer=2, n_head=2, n_embd=8
    )
    ours = Transformer(config)

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            d = config.n_embd
            self.ln1, self.ln2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
            self.attn = torch.nn.Module()
            for name in ("key", "query", "value", "proj"):
                setattr(self.attn, name, torch.nn.Linear(d, d))
            self.attn.register_buffer("mask", torch.ones(1, 1, 5, 5))
            self.mlp = torch.nn.Sequential(
                torch.nn.Linear(d, 4 * d), torch.nn.GELU(), torch.nn.Linear(4 * d, d)
            )

    gpt = torch.nn.Module()
    gpt.tok_emb = torch.nn.Embedding(11, 8)
    gpt.pos_emb = torch.nn.Parameter(torch.zeros(1, 5, 8))
    gpt.blocks = torch.nn.Sequential(Block(), Block())
    gpt.ln_f = torch.nn.LayerNorm(8)
    gpt.head = torch.nn.Linear(8, 11, bias=False)
    to_taming_gpt(ours, gpt)
    key_value = ours.blocks[1].attention.key_value.weight
    assert torch.equal(gpt.blocks[1].attn.key.weight, key_value[:8])
    assert torch.equal(gpt.blocks[1].attn.value.weight, key_value[8:])
    assert torch.equal(gpt.pos_emb[0], ours.position_embedding.weight)
    assert torch.equal(gpt.head.weight, ours.token_embedding.weight)  # tied in ours


@pytest.mark.slow
def test_the_quick_suite_runs_ours_and_says_why_a_reference_did_not(tmp_path):
    results = run(Options(quick=True, repeats=2), build=tmp_path)
    json.dumps(results)  # the results file is plain JSON
    keys = [c["key"] for c in results["comparisons"]]
    assert keys == [
        "vq-256-8-16",
        "vq-1024-256-256",
        "vqgan-step",
        "sampling-16",
        "sampling-32",
        "dvae-step",
    ]
    for comparison in results["comparisons"]:
        ours = comparison["rows"][0]
        assert ours["implementation"].startswith("ours"), comparison["key"]
        assert ours["figure"]["median"] > 0 and ours["figure"]["repeats"] == 2
        for row in comparison["rows"][1:]:
            assert row["figure"] is not None or "make bench" in row["note"]
    large_vq, vqgan = results["comparisons"][1], results["comparisons"][2]
    assert large_vq["rows"][0]["memory_mb"] > 0  # measured in a fresh process
    assert vqgan["rows"][0]["memory_mb"] > 0
    assert vqgan["rows"][0]["parameters"] > 0
    assert not failed_checks(results)
    render(results)  # the page can show it


def test_cpu_tables_quote_ratios_and_gpu_tables_absolute_figures_too():
    comparison = {
        "unit": "images/s",
        "higher_is_better": True,
        "rows": [
            {"implementation": "ours", "figure": _figure([10.0, 12.0])},
            {"implementation": "ref", "figure": _figure([5.0, 4.0]), "memory_mb": 3.0},
            {"implementation": "gone", "figure": None, "note": "not installed"},
        ],
    }
    header, rows = comparison_rows(comparison, absolute=False)
    # no row has a parameter count: no such column
    assert header == ("implementation", "ours against it", "peak memory added")
    assert rows[1][1] == "2.50× (2.00–3.00), ours faster"
    assert rows[0][2] == "" and rows[1][2] == "3 MiB"
    assert rows[2][-1] == "did not run: not installed"
    header, rows = comparison_rows(comparison, absolute=True)
    assert header[1] == "images/s, median (range)" and rows[0][1] == "11.0 (10.0–12.0)"
    assert figure_text(_figure([1599.0, 1834.0, 1700.0])) == "1,700 (1,599–1,834)"


def _figure(values):
    median = statistics.median(values)
    return {
        "values": values,
        "median": median,
        "min": min(values),
        "max": max(values),
        "repeats": len(values),
    }


def test_the_committed_cpu_results_ran_every_reference_and_held_every_check():
    """The results file the page shows must come from a full run in which
    every reference installed and every equivalence check held."""
    results = json.loads(CPU_RESULTS.read_text())
    assert results["machine"]["device"] == "cpu"
    assert not results["options"]["quick"] and not results["options"]["only"]
    assert all(results["references"].values()), results["references"]
    assert not failed_checks(results)
    checks = [c for comparison in results["comparisons"] for c in comparison["checks"]]
    assert sum("codes identical" in c for c in checks) == 4  # 2 sizes x 2 references
    assert any(c.startswith("LPIPS") for c in checks)
    assert sum(c.startswith("logits") for c in checks) == 2
    for comparison in results["comparisons"]:
        assert all(row["figure"] for row in comparison["rows"]), comparison["key"]
        assert len(comparison["rows"]) >= 2, comparison["key"]


def test_bad_arguments_are_refused_with_the_fix(capsys):
    with pytest.raises(SystemExit):
        parse(["--repeats", "0"])
    assert "--repeats must be at least 1" in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            parse(["--device", "cuda"])
        assert "torch sees no GPU" in capsys.readouterr().err
