"""Whole chapters: each one's latest execution time at tiny, read from the
book build's records (jupyter-cache), with what its run-info footer glued:
how many models it trained and loaded, and how long the loaded ones took to
train. A *cached* run loads every model; a *cold* one trains every model;
a run that loaded some is turned into a cold estimate by adding their
training time, as the chapter-budget table on the benchmarks page does."""

from __future__ import annotations

from pathlib import Path

from t2i.viz import read_run_info


def chapter_times(build: Path) -> list[dict]:
    """One entry per executed chapter; empty when there is no build."""
    cache = build / ".jupyter_cache"
    if not cache.exists():
        return []
    from jupyter_cache import get_cache

    latest: dict[str, tuple] = {}
    for record in get_cache(str(cache)).list_cache_records():
        path = Path(record.uri)
        if path.parent.name != "chapters":
            continue
        if path.stem not in latest or record.created > latest[path.stem][0]:
            latest[path.stem] = (record.created, record.data.get("execution_seconds"))
    rows = []
    for stem, (created, seconds) in sorted(latest.items()):
        run = read_run_info(
            build / "jupyter_execute" / "chapters" / f"{stem}.glue.json"
        )
        if seconds is None or run is None:
            continue
        loaded, trained = int(run["models_loaded"]), int(run["models_trained"])
        kind = "cached" if trained == 0 else "cold" if loaded == 0 else "partly cached"
        rows.append(
            {
                "chapter": stem,
                "executed_s": seconds,
                "run": kind,
                "models": loaded + trained,
                "cold_s": seconds + run["cached_training_seconds"],
                "cold_is_estimate": loaded > 0,
                "date": created.strftime("%Y-%m-%d %H:%M"),
            }
        )
    return rows
