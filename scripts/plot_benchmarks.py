#!/usr/bin/env python3
"""Plots Vakt's benchmark outputs as PNG files (for docs/benchmarks.md).

Usage:
    python3 scripts/plot_benchmarks.py [--out docs/img] [--prefix bench-] DIR|FILE...

Reads every file given, and every *.json, *.txt and *.out file in each
directory given, and recognises three kinds of output:

  * Google Benchmark JSON: what `--benchmark_format=json` prints or
    `--benchmark_out=FILE --benchmark_out_format=json` writes (bench_vm,
    bench_compiler, bench_fapi, bench_schema, bench_relation, bench_cert).
    One PNG per file, `PREFIX<file stem>.png` (bench_vm.json:
    bench-vm.png): a horizontal bar per
    benchmark (real time; the median aggregate when run with repetitions).
    Families that measure the same cases (`BM_Vm/get_record` and
    `BM_Reference/get_record`) are drawn side by side per case.
  * bench/agent_swap `--json` summaries (a line with `base_p50_us`): one PNG,
    `PREFIXagent-swap.png`, p50 and p99 decision latency without and with a
    bundle swap every second, per run.
  * bench/http_load `--json` lines (a line with `kind` and `p50_us`): one
    PNG, `PREFIXagent-http.png`, p50, p90 and p99 per kind (healthz is the
    no-decision baseline).
  * bench/extauthz_load `--json` summaries (a line with
    `"bench":"extauthz_load"`): one PNG, `PREFIXextauthz-load.png`, p50, p90
    and p99 latency per run, with the achieved requests per second.

Summary lines may be mixed with other text (the first lines agent_swap
prints without --json); several runs may be in one file or in several.

Producing the inputs, for example:

    mkdir -p out/bench
    build/bench/bench_vm --benchmark_out=out/bench/bench_vm.json --benchmark_out_format=json
    build/bench/bench_fapi --benchmark_format=json > out/bench/bench_fapi.json
    build/bench/agent_swap --seconds 5 --json > out/bench/agent_swap.txt
    build/bench/extauthz_load --json ... >> out/bench/extauthz_load.txt
    python3 scripts/plot_benchmarks.py out/bench          # PNGs into docs/img/

Needs matplotlib (Debian: `apt-get install python3-matplotlib`). When the
running interpreter lacks it but Debian's /usr/bin/python3 has it (a version
manager's python3 first on PATH), the script re-runs itself with that one;
otherwise it says what to install and exits with status 2. Exit status 1:
no recognised benchmark output in the inputs.
"""

import argparse
import json
import math
import os
import statistics
import sys

SYSTEM_PYTHON = "/usr/bin/python3"


def import_matplotlib():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt
    except ImportError:
        pass
    if (os.path.realpath(sys.executable) != os.path.realpath(SYSTEM_PYTHON)
            and os.access(SYSTEM_PYTHON, os.X_OK)
            and not os.environ.get("VAKT_PLOT_REEXEC")):
        os.environ["VAKT_PLOT_REEXEC"] = "1"
        os.execv(SYSTEM_PYTHON, [SYSTEM_PYTHON, os.path.abspath(__file__)] + sys.argv[1:])
    sys.stderr.write(
        "plot_benchmarks.py: matplotlib is not installed for %s.\n"
        "  Debian/Ubuntu: apt-get install python3-matplotlib (then run with /usr/bin/python3)\n"
        "  elsewhere:     python3 -m pip install matplotlib\n" % sys.executable)
    sys.exit(2)


# ---- reading ---------------------------------------------------------------

def json_documents(text):
    """Every top-level JSON object in `text`: the whole text if it is one,
    else each one that starts a line (summary lines amid other output)."""
    try:
        doc = json.loads(text)
        return doc if isinstance(doc, list) else [doc]
    except ValueError:
        pass
    decoder = json.JSONDecoder()
    docs, pos = [], 0
    while True:
        start = text.find("{", pos)
        if start < 0:
            return docs
        if start > 0 and text[start - 1] != "\n":
            pos = start + 1
            continue
        try:
            doc, end = decoder.raw_decode(text, start)
            docs.append(doc)
            pos = end
        except ValueError:
            pos = start + 1


def inputs(paths):
    for p in paths:
        if os.path.isdir(p):
            for name in sorted(os.listdir(p)):
                if name.endswith((".json", ".txt", ".out")):
                    yield os.path.join(p, name)
        else:
            yield p


def read_all(paths):
    gbench, swaps, loads, https = [], [], [], []
    for path in inputs(paths):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError as e:
            sys.stderr.write("plot_benchmarks.py: %s\n" % e)
            continue
        for doc in json_documents(text):
            if not isinstance(doc, dict):
                continue
            if isinstance(doc.get("benchmarks"), list):
                gbench.append((path, doc))
            elif "base_p50_us" in doc:
                doc["_file"] = path
                swaps.append(doc)
            elif doc.get("bench") == "extauthz_load":
                doc["_file"] = path
                loads.append(doc)
            elif "kind" in doc and "p50_us" in doc:
                doc["_file"] = path
                https.append(doc)
    return gbench, swaps, loads, https


# ---- Google Benchmark --------------------------------------------------------

TO_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def gbench_times(doc):
    """{name: real time in ns}: the median aggregate if there is one, else the
    median of the iteration rows of that name. Error rows are skipped."""
    rows, medians = {}, {}
    for b in doc["benchmarks"]:
        if b.get("error_occurred") or "real_time" not in b:
            continue
        ns = float(b["real_time"]) * TO_NS.get(b.get("time_unit", "ns"), 1.0)
        name = b.get("run_name") or b["name"]
        for suffix in ("/min_time:", "/real_time", "/iterations:"):
            if suffix in name:
                name = name[:name.index(suffix)]
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                medians[name] = ns
        else:
            rows.setdefault(name, []).append(ns)
    times = {n: statistics.median(v) for n, v in rows.items()}
    times.update(medians)
    return times


def fmt_ns(ns):
    if ns >= 1e9:
        return "%.2f s" % (ns / 1e9)
    if ns >= 1e6:
        return "%.2f ms" % (ns / 1e6)
    if ns >= 1e3:
        return "%.2f us" % (ns / 1e3)
    return "%.0f ns" % ns


def plot_gbench(plt, path, doc, out):
    times = gbench_times(doc)
    if not times:
        return None
    names = list(times)
    # Families measuring the same cases: name = FAMILY/CASE, >= 2 families
    # sharing >= 2 cases.
    split = {n: n.split("/", 1) for n in names if "/" in n}
    families = {}
    for n, (fam, case) in split.items():
        families.setdefault(fam, {})[case] = times[n]
    shared = None
    if len(families) >= 2:
        cases = set.intersection(*(set(c) for c in families.values()))
        if len(cases) >= 2:
            shared = [c for c in dict.fromkeys(case for _, case in split.values()) if c in cases]
    ctx = doc.get("context", {})
    title = "%s  (%s, %s CPUs @ %s MHz)" % (
        os.path.splitext(os.path.basename(path))[0], ctx.get("date", "")[:10],
        ctx.get("num_cpus", "?"), ctx.get("mhz_per_cpu", "?"))
    values = list(times.values())
    log = max(values) / max(min(values), 1e-9) > 100
    if shared:
        fams = list(families)
        fig, ax = plt.subplots(figsize=(9, 0.55 * len(shared) * max(1, len(fams) / 2) + 1.6))
        height = 0.8 / len(fams)
        for k, fam in enumerate(fams):
            ys = [i + k * height for i in range(len(shared))]
            xs = [families[fam].get(c, float("nan")) for c in shared]
            bars = ax.barh(ys, xs, height=height, label=fam)
            for bar, x in zip(bars, xs):
                if not math.isnan(x):
                    ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, " " + fmt_ns(x),
                            va="center", fontsize=7)
        ax.set_yticks([i + 0.4 - height / 2 for i in range(len(shared))])
        ax.set_yticklabels(shared, fontsize=8)
        ax.legend(fontsize=8, loc="best")
    else:
        fig, ax = plt.subplots(figsize=(9, 0.32 * len(names) + 1.6))
        bars = ax.barh(range(len(names)), values, color="#3d6fb6")
        for bar, x in zip(bars, values):
            ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, " " + fmt_ns(x),
                    va="center", fontsize=7)
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names, fontsize=8)
    ax.invert_yaxis()
    if log:
        ax.set_xscale("log")
    ax.set_xlabel("real time per iteration (ns%s)" % (", log scale" if log else ""))
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.margins(x=0.15)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


# ---- agent_swap, extauthz_load -----------------------------------------------

def plot_swaps(plt, runs, out):
    labels = ["%s routes\n(%s)" % (r.get("routes", "?"), os.path.basename(r["_file"])) for r in runs]
    series = [("p50, no swaps", "base_p50_us", "#9bb8e0"), ("p50, swap every 1 s", "swap_p50_us", "#3d6fb6"),
              ("p99, no swaps", "base_p99_us", "#f2b8a0"), ("p99, swap every 1 s", "swap_p99_us", "#c0502e")]
    fig, ax = plt.subplots(figsize=(max(6, 2.2 * len(runs) + 3), 4.2))
    width = 0.8 / len(series)
    for k, (label, key, color) in enumerate(series):
        xs = [i + k * width for i in range(len(runs))]
        ys = [float(r.get(key, float("nan"))) for r in runs]
        bars = ax.bar(xs, ys, width=width, label=label, color=color)
        for bar, y in zip(bars, ys):
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), "%.2f" % y,
                    ha="center", va="bottom", fontsize=7)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(runs))])
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("decision latency (us)")
    notes = ", ".join("%s swap(s), median %.1f ms each" % (r.get("swaps", "?"), float(r.get("swap_ms_median", 0)))
                      for r in runs)
    ax.set_title("agent_swap: decisions during signed bundle swaps\n(%s)" % notes, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_latency_bars(plt, runs, labels, title, out):
    """p50/p90/p99 bars per run (the runs' p50_us, p90_us, p99_us)."""
    series = [("p50", "p50_us", "#9bb8e0"), ("p90", "p90_us", "#3d6fb6"), ("p99", "p99_us", "#c0502e")]
    fig, ax = plt.subplots(figsize=(max(6, 1.9 * len(runs) + 3), 4.6))
    width = 0.8 / len(series)
    for k, (label, key, color) in enumerate(series):
        xs = [i + k * width for i in range(len(runs))]
        ys = [float(r.get(key, float("nan"))) for r in runs]
        bars = ax.bar(xs, ys, width=width, label=label, color=color)
        for bar, y in zip(bars, ys):
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), "%.0f" % y,
                    ha="center", va="bottom", fontsize=7)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(runs))])
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("latency (us)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_loads(plt, runs, out):
    labels = []
    for r in runs:
        who = "c=%s" % r.get("concurrency") if r.get("mode") == "closed" else \
              "rate %s/s" % r.get("target_rate") if r.get("mode") == "rate" else "direct"
        labels.append("%s, %s\n%s, %s\n%.0f req/s" % (r.get("auth", "?"), who, r.get("server", "?"),
                                                        r.get("mode", "?"), float(r.get("achieved_rps", 0))))
    errors = sum(int(r.get("errors", 0)) for r in runs)
    title = "extauthz_load: Envoy ext_authz checks%s" % ("" if not errors else " (%d rpc errors)" % errors)
    return plot_latency_bars(plt, runs, labels, title, out)


def plot_http(plt, runs, out):
    """bench/http_load --json lines: one bar group per kind (healthz is the baseline)."""
    labels = ["%s\n%.0f req/s" % (r.get("kind", "?"), float(r.get("achieved", 0))) for r in runs]
    rates = sorted({str(r.get("rate", "?")) for r in runs})
    errors = sum(int(r.get("errors", 0)) for r in runs)
    title = "http_load: the agent's HTTP interfaces at %s requests/s (open loop)%s" % (
        "/".join(rates), "" if not errors else " (%d errors)" % errors)
    return plot_latency_bars(plt, runs, labels, title, out)


def main():
    ap = argparse.ArgumentParser(description="Plot Vakt benchmark outputs as PNG files.")
    ap.add_argument("inputs", nargs="+", help="benchmark output files or directories")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "docs", "img"),
                    help="output directory (default: docs/img)")
    ap.add_argument("--prefix", default="bench-", help="file name prefix of the PNGs (default bench-)")
    args = ap.parse_args()

    gbench, swaps, loads, https = read_all(args.inputs)
    if not (gbench or swaps or loads or https):
        sys.stderr.write("plot_benchmarks.py: no benchmark output found in %s\n" % " ".join(args.inputs))
        return 1
    plt = import_matplotlib()
    os.makedirs(args.out, exist_ok=True)
    written = []
    for path, doc in gbench:
        stem = os.path.splitext(os.path.basename(path))[0]
        stem = stem[len("bench_"):] if stem.startswith("bench_") else stem
        stem = stem.replace("_", "-")
        out = plot_gbench(plt, path, doc, os.path.join(args.out, "%s%s.png" % (args.prefix, stem)))
        if out:
            written.append(out)
    if swaps:
        written.append(plot_swaps(plt, swaps, os.path.join(args.out, args.prefix + "agent-swap.png")))
    if loads:
        written.append(plot_loads(plt, loads, os.path.join(args.out, args.prefix + "extauthz-load.png")))
    if https:
        written.append(plot_http(plt, https, os.path.join(args.out, args.prefix + "agent-http.png")))
    for w in written:
        print("wrote %s" % os.path.normpath(w))
    return 0


if __name__ == "__main__":
    sys.exit(main())
