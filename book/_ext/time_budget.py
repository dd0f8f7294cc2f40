"""Sphinx extension: each chapter's execution time against its time budget.

The design gives every chapter a budget at the tiny scale (2 CPU cores, empty
weight cache): 180 s for chapters 1-4 and 240 s for chapters 5-8. Machines
differ by 1.5x or more, so a budget is not a test that can fail a build; it
is reported here, on the benchmarks page, with a warning line when a chapter
ran over. The ``{chapter-budgets}`` directive leaves a placeholder that is
filled once every notebook has executed (as myst-nb does for its own
``nb-exec-table``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from docutils import nodes
from myst_nb.sphinx_ import NbMetadataCollector
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

LOGGER = logging.getLogger(__name__)
FLAG = "has_chapter_budgets"


def budget_seconds(docname: str) -> int | None:
    """The tiny-scale budget of a chapter page, None for other pages."""
    match = re.match(r"chapters/(\d+)_", docname)
    if match is None:
        return None
    return 180 if int(match.group(1)) <= 4 else 240


class BudgetNode(nodes.General, nodes.Element):
    """Placeholder, replaced by the table after execution."""


class ChapterBudgets(SphinxDirective):
    def run(self):
        NbMetadataCollector.set_doc_data(self.env, self.env.docname, FLAG, True)
        return [BudgetNode()]


def _pages_to_refresh(app, env):
    """A re-executed chapter refreshes the page that holds the table."""
    if not NbMetadataCollector.new_exec_data(env):
        return None
    return [
        name
        for name, data in NbMetadataCollector.get_doc_data(env).items()
        if data.get(FLAG)
    ]


def _paragraph(text: str) -> nodes.paragraph:
    return nodes.paragraph(text=text)


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> nodes.table:
    table = nodes.table(classes=["colwidths-auto"])
    group = nodes.tgroup(cols=len(header))
    table += group
    group.extend(nodes.colspec(colwidth=1) for _ in header)
    head, body = nodes.thead(), nodes.tbody()
    group += head
    group += body
    head += nodes.row("", *(nodes.entry("", _paragraph(h)) for h in header))
    for row in rows:
        body += nodes.row("", *(nodes.entry("", _paragraph(c)) for c in row))
    return table


def models_trained(app, docname: str) -> tuple[int, int] | None:
    """(trained, loaded) models of a chapter's last run, from its run-info footer
    (glued by ``t2i.viz.run_info``), or None if the page recorded none."""
    glued = Path(app.outdir).parent / "jupyter_execute" / f"{docname}.glue.json"
    if not glued.exists():
        return None
    data = json.loads(glued.read_text())
    try:
        return tuple(
            int(data[key]["data"]["text/plain"])
            for key in ("run_models_trained", "run_models_loaded")
        )
    except (KeyError, ValueError):
        return None


class BudgetTransform(SphinxPostTransform):
    default_priority = 8

    def run(self, **kwargs) -> None:
        for node in self.document.findall(BudgetNode):
            rows, over = [], []
            for docname, data in sorted(
                NbMetadataCollector.get_doc_data(self.env).items()
            ):
                budget, run = budget_seconds(docname), data.get("exec_data")
                if budget is None or not run or run.get("runtime") is None:
                    continue
                seconds = run["runtime"]
                models = models_trained(self.app, docname)
                if models is None or models[1] > 0:  # some weights came from the cache
                    kind = "warm" if models else "unknown"
                    verdict = "not a cold run: no verdict"
                else:
                    kind = "cold"
                    verdict = "within budget" if seconds <= budget else "OVER BUDGET"
                    if seconds > budget:
                        over.append(
                            f"{docname} took {seconds:.0f} s (budget {budget} s)"
                        )
                trained = "?" if models is None else f"{models[0]} of {sum(models)}"
                rows.append(
                    (docname, f"{seconds:.0f}", kind, trained, str(budget), verdict)
                )
            header = (
                "chapter",
                "executed in (s)",
                "run",
                "models trained",
                "budget (s)",
                "",
            )
            replacement = [_table(rows, header)]
            if over:
                warning = nodes.warning()
                warning += _paragraph(
                    "Over the tiny-scale time budget: " + "; ".join(over) + "."
                )
                replacement.insert(0, warning)
                LOGGER.info("[time budget] " + "; ".join(over))
            node.replace_self(replacement)


def setup(app):
    app.add_node(BudgetNode)
    app.add_directive("chapter-budgets", ChapterBudgets)
    app.connect("env-updated", _pages_to_refresh)
    app.add_post_transform(BudgetTransform)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
