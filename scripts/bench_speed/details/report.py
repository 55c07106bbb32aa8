"""speed_details.md and speed_details.json from the sections' results.

Each section returns ``common.section_result``: a table, notes, raw data and optionally
``targets`` and ``extra_tables``; the report puts the targets of all sections first, then
each section, then the findings (``findings.py``) written from the measurements.
"""

from scripts.bench_speed.details.common import met
from scripts.bench_speed.harness import median, write_json


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def write_report(out_dir, meta, results):
    targets = [t for r in results.values() for t in r.get("targets", [])]
    lines = ["# Speed and memory of domain-tune", "",
             f"Date {meta['date']}; total run time {meta['total_seconds'] / 60:.1f} min; "
             f"sections: {', '.join(results)}{' (--quick)' if meta['quick'] else ''}.", "",
             f"Command: `{meta['command']}`", "",
             f"Machine: {meta['machine']['cores']} cores, {meta['machine']['cpu_model']}, "
             f"{meta['machine']['memory_gb']} GiB memory, {meta['machine']['machine']}, "
             f"Python {meta['machine']['python']}, no GPU. Load average (1 min) at start "
             f"{meta['load_start'][0]:.2f}, at end {meta['load_end'][0]:.2f}: the machine is shared "
             "with other work, which is why every figure is timed beside its reference in the "
             "same run.", "",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
             + f"; domain-tune at commit {meta['library']['commit']}"
             + (" with local changes in domain_tune/" if meta["library"]["domain_tune_modified"]
                else "")
             + (" (**the library changed during the run**)"
                if meta["library"].get("changed_during_run") else "") + ".", ""]
    if targets:
        lines += ["## Targets", ""]
        lines += table(["target", "wanted", "measured", "status"],
                       [[t["name"], t["target"], t["measured"],
                         "not measured" if t["met"] is None else met(t["met"])] for t in targets])
        lines.append("")
    for r in results.values():
        lines += [f"## {r['title']}", ""] + table(r["header"], r["rows"]) + [""]
        lines += [f"- {n}" for n in r["notes"]]
        if "load" in r:
            bg = r.get("background_cores") or []
            lines.append(
                f"- Section run time {r['seconds']:.0f} s; load average (1 min) "
                f"{r['load'][0]:.2f} at its start, {r['load'][1]:.2f} at its end"
                + (f"; cores used by other processes, sampled for 1 s before each repetition "
                   f"(after waiting up to {meta['settings']['quiet_wait']} s for them to drop "
                   f"below 0.3): median {median(bg):.2f}, max {max(bg):.2f}"
                   if bg else "") + ".")
        lines.append("")
        for t in r.get("extra_tables", []):
            lines += [f"### {t['title']}", ""] + table(t["header"], t["rows"]) + [""]
            lines += [f"- {n}" for n in t["notes"]] + [""]
    if meta.get("findings"):
        lines += ["## Where the time goes, and recommendations", ""] + meta["findings"] + [""]
    (out_dir / "speed_details.md").write_text("\n".join(lines), encoding="utf-8")
    payload = {"meta": meta, "targets": targets,
               "sections": {k: {"title": v["title"], "header": v["header"], "rows": v["rows"],
                                "notes": v["notes"], "extra_tables": v.get("extra_tables", []),
                                "load": v.get("load"), "seconds": v.get("seconds"),
                                "background_cores": v.get("background_cores"),
                                "data": v["data"]}
                            for k, v in results.items()}}
    write_json(out_dir / "speed_details.json", payload, default=float)
