"""Sphinx extension: the benchmark results file as tables.

    ```{benchmark-results} _data/benchmarks-cpu.json
    ```

renders the file ``python -m benchmarks`` wrote (path relative to the page):
the machine, then one table per comparison with the ratio of ours to each
reference, the correctness checks, and the chapters' times. On a CPU the
tables quote ratios only (the machine is shared, and its absolute speed
moves from run to run and between machines); the results of a GPU run quote
absolute figures as well.

A ratio is ours' speed over the reference's, from the same round of the
interleaved repeats (harness.time_interleaved), so ``2.0x`` means ours did
the same work in half the time; its range is over the rounds.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from docutils import nodes
from sphinx.util.docutils import SphinxDirective


def speed_ratios(ours: dict, theirs: dict, higher_is_better: bool) -> list[float]:
    """Ours' speed over theirs, round by round."""
    pairs = zip(ours["values"], theirs["values"])
    if higher_is_better:  # rates: images/s, tokens/s
        return [a / b for a, b in pairs]
    return [b / a for a, b in pairs]  # times: theirs over ours


def ratio_text(ratios: list[float]) -> str:
    """The median ratio, its range, and a verdict that says when the rounds
    disagree (the range reaches past 1 on the other side of the median)."""
    median = statistics.median(ratios)
    verdict = "faster" if median > 1.05 else "slower" if median < 0.95 else "even"
    if verdict != "even" and min(ratios) < 1 < max(ratios):
        verdict += " at the median, not in every round"
    spread = f" ({min(ratios):.2f}–{max(ratios):.2f})" if len(ratios) > 1 else ""
    return f"{median:.2f}×{spread}, " + (
        "about even" if verdict == "even" else f"ours {verdict}"
    )


def figure_text(figure: dict) -> str:
    value = figure["median"]
    digits = 0 if value >= 100 else 1 if value >= 10 else 2
    spread = ""
    if figure["repeats"] > 1:
        spread = f" ({figure['min']:,.{digits}f}–{figure['max']:,.{digits}f})"
    return f"{value:,.{digits}f}{spread}"


def comparison_rows(comparison: dict, absolute: bool) -> tuple[tuple, list[tuple]]:
    """Header and rows of one comparison's table; the parameter and memory
    columns only where some row has a figure for them."""
    rows = comparison["rows"]
    ours = rows[0]
    columns = [
        ("parameters", "parameters", lambda v: f"{v:,}"),
        ("memory_mb", "peak memory added", lambda v: f"{v:,.0f} MiB"),
    ]
    columns = [c for c in columns if any(row.get(c[0]) for row in rows)]
    header = ["implementation"]
    if absolute:
        header.append(f"{comparison['unit']}, median (range)")
    header += ["ours against it"] + [title for _, title, _ in columns]
    table = []
    for row in rows:
        cells = [row["implementation"]]
        if row["figure"] is None:
            cells += ["—"] * (len(header) - 2) + [f"did not run: {row['note']}"]
            table.append(tuple(cells))
            continue
        if absolute:
            cells.append(figure_text(row["figure"]))
        if row is ours:
            cells.append("—")
        elif ours["figure"] is None:
            cells.append("?")
        else:
            ratios = speed_ratios(
                ours["figure"], row["figure"], comparison["higher_is_better"]
            )
            cells.append(ratio_text(ratios))
        for key, _, shown in columns:
            cells.append(shown(row[key]) if row.get(key) is not None else "")
        table.append(tuple(cells))
    return tuple(header), table


def with_code(text: str) -> list[nodes.Node]:
    """Plain text with `backticked` parts set as code."""
    parts = text.split("`")
    return [
        nodes.literal(text=part) if i % 2 else nodes.Text(part)
        for i, part in enumerate(parts)
        if part
    ]


def paragraph(text: str) -> nodes.paragraph:
    node = nodes.paragraph()
    node.extend(with_code(text))
    return node


def machine_text(results: dict) -> str:
    m = results["machine"]
    where = m["gpu"] or f"{m['processor']}, {m['threads']} torch threads"
    installed = ", ".join(
        f"{name} {version}" if version else f"{name} (not installed)"
        for name, version in results["references"].items()
    )
    options = results["options"]
    fast = (
        "bf16 autocast, torch.compile and channels-last on both sides"
        if options["fast"]
        else "float32, eager"
    )
    return (
        f"Measured on {where} ({m['platform']}), Python {m['python']}, torch "
        f"{m['torch']}, {m['date']}, up to {options['repeats']} timed rounds after a "
        f"warm-up (each comparison says how many), {fast}. References: {installed}. The whole run took "
        f"{results['seconds']:.0f} s."
    )


def _table(header: tuple, rows: list[tuple]) -> nodes.table:
    from time_budget import _table as table  # book/_ext is on the path

    return table(rows, header, classes=("benchmark-table",))


def render(results: dict) -> list[nodes.Node]:
    absolute = results["machine"]["device"] == "cuda"
    out: list[nodes.Node] = [nodes.paragraph(text=machine_text(results))]
    if results.get("errors"):
        warning = nodes.warning()
        warning += nodes.paragraph(
            text="These comparisons broke off with an error: "
            + "; ".join(results["errors"])
        )
        out.append(warning)
    previous_note = None
    for comparison in results["comparisons"]:
        rounds = comparison["rows"][0]["figure"]["repeats"]
        title = nodes.paragraph()
        title += nodes.strong(text=comparison["title"])
        title += nodes.Text(". ")
        title.extend(with_code(comparison["configuration"]))
        title += nodes.Text(f"; {rounds} timed round{'s' * (rounds > 1)}.")
        out.append(title)
        out.append(_table(*comparison_rows(comparison, absolute)))
        if comparison["checks"]:
            checks = nodes.bullet_list()
            for check in comparison["checks"]:
                checks += nodes.list_item("", paragraph(f"Check: {check}."))
            out.append(checks)
        if comparison["note"] and comparison["note"] != previous_note:
            out.append(paragraph(comparison["note"]))
        previous_note = comparison["note"]
    return out


class BenchmarkResults(SphinxDirective):
    required_arguments = 1

    def run(self):
        path = (Path(self.env.srcdir) / self.env.docname).parent / self.arguments[0]
        self.env.note_dependency(str(path))
        if not path.exists():
            missing = nodes.paragraph(text=f"No results yet ({self.arguments[0]} ")
            missing += nodes.Text("does not exist): ")
            missing += nodes.literal(text="python -m benchmarks")
            missing += nodes.Text(" writes it.")
            return [missing]
        return render(json.loads(path.read_text()))


def setup(app):
    app.add_directive("benchmark-results", BenchmarkResults)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
