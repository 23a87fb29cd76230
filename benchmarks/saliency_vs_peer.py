#!/usr/bin/env python3
"""CT anomaly saliency (Grad-CAM) per 512 x 512 slice: `attnvision saliency` against the same model and method in
plain PyTorch, measured in one run, plus the agreement of the two sides' maps.

    /usr/bin/python3 benchmarks/saliency_vs_peer.py [--weights CKPT] [--series 6] [--rounds 3] [--agree 12]
    /usr/bin/python3 benchmarks/saliency_vs_peer.py --peer-only --rounds 1     # the peer half alone

Data: `attnvision synth phantoms --out WORK/phantoms --series S --seed SEED --size 512` (6 series: ~100 slices of
512 x 512 CT, about half with lesions; lesions.json gives their centres). Weights: --weights, by default
models/pretrained/phantom_anomaly.safetensors, else runs/phantom_anomaly/best.safetensors; copied into the work
folder first (a training run may rewrite it meanwhile), and both sides read that copy.

attnvision: `attnvision saliency SLICES... --weights W --method gradcam --json --no-outputs --threads CORES`
(p(lesion), the map on the source grid, its peak and regions per slice; no files written).
Peer: benchmarks/py_saliency_peer.py, the same checkpoint, the same CT input (HU on the model's grid, lung + abdomen
windows, normalisation) and Grad-CAM at the model's saliency stage mapped back to the source grid, with
pydicom, OpenCV and PyTorch; tuned as PyTorch's CPU performance guide advises: tcmalloc preloaded
(LD_PRELOAD, the allocator attnvision links), torch threads = cores, torch.no_grad wherever no gradient is
needed (inference_mode cannot serve Grad-CAM), in five configurations: NCHW, channels-last, BatchNorm folded,
folded channels-last, and folded channels-last with glibc's heap in transparent huge pages instead of tcmalloc
(GLIBC_TUNABLES=glibc.malloc.hugetlb=1, as attnvision asks tcmalloc for its heap). The best configuration of each round is the peer's figure for that round. The peer runs
--batch slices per Grad-CAM pass (default 8, the saliency command's default batch).

Timing: every run is a whole process, start to exit, and every side does the same work per slice (DICOM read,
CT preprocessing, Grad-CAM, the map back on the source grid). Each side runs once on all N slices and once on
the first slice alone; its rate is (N - 1) / (wall(N) - wall(1)) slices/s: start-up, imports, model load and
the first pass's warm-up cancel, on both sides alike. The end-to-end rate N / wall(N) and each side's own
in-process figure (the peer's summary; attnvision's "ran N ... (R .../s)" stderr line, if it prints one) are
shown beside it. The sides alternate for --rounds rounds (odd rounds peer first, even rounds attnvision
first); reported: the medians over rounds and the ratio median(attnvision) / median(best peer of each round)
(target: >= 1.0), with the per-round ratios.
Each run also records the CPU other processes used meanwhile ("foreign", in cores; ~0 for a clean number).

Agreement (after the rounds): attnvision with --out on the first --agree slices (raw float32 TIFF maps at the
source grid) against the peer's maps of the same slices (NCHW): max |ours - peer| / max(map) per slice, |score
difference|, identical peaks; and each side against the peer's code run in float64 (py_saliency_peer.py
--float64) on the same slices, so that a gap between the two is put down to the side it comes from. Expected
~1e-5 relative or better (both float32). Sanity: on the slices with lesions, how often each side's map peaks
on a lesion (within half its diameter + 12 mm, one layer2 cell, of a lesions.json center_px); meaningful only
with a trained checkpoint.

A final JSON line carries the figures. Work files go to --work (default: a temporary folder, removed unless
--keep); each process's stdout/stderr under WORK/logs. Needs Debian's python3-torch, python3-pydicom,
python3-numpy, python3-opencv and python3-pil; the peer runs under --python (default /usr/bin/python3).
"""
import argparse
import glob
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
# (name, flags, allocator): "tcmalloc" preloaded, or "thp": glibc's heap in transparent huge pages.
PEER_CONFIGS = [("NCHW", [], "tcmalloc"), ("channels-last", ["--channels-last"], "tcmalloc"),
                ("folded", ["--fold"], "tcmalloc"), ("folded channels-last", ["--fold", "--channels-last"], "tcmalloc"),
                ("folded CL + THP", ["--fold", "--channels-last"], "thp")]
THP_ENV = {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1", "MALLOC_MMAP_THRESHOLD_": "17179869184",
           "MALLOC_TRIM_THRESHOLD_": "17179869184"}
TARGET = 1.0  # attnvision / best peer
LESION_TOLERANCE_MM = 12.0  # a layer2 cell and a half at 1 mm (stride 8); one cell at 1.5 mm


def cpu_busy_s():
    """Machine-wide busy CPU seconds (all cores) from /proc/stat, or None."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
    except Exception:
        return None


LOGS = None


def run(cmd, tag, env=None, check=True):
    """Runs cmd to completion (stdout/stderr to LOGS/tag.*): dict(rc, wall, cpu, foreign, stdout, stderr)."""
    out_path, err_path = os.path.join(LOGS, tag + ".out"), os.path.join(LOGS, tag + ".err")
    with open(out_path, "w") as fo, open(err_path, "w") as fe:
        busy0 = cpu_busy_s()
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        busy1 = cpu_busy_s()
    rc = os.waitstatus_to_exitcode(status)
    cpu = ru.ru_utime + ru.ru_stime
    foreign = None if busy0 is None else max(0.0, (busy1 - busy0) - cpu) / wall
    with open(out_path) as f:
        stdout = f.read()
    with open(err_path) as f:
        stderr = f.read()
    if check and rc != 0:
        sys.exit(f"failed ({rc}): {shlex.join(cmd)[:500]}\n{stderr[-2000:]}")
    return dict(rc=rc, wall=wall, cpu=cpu, foreign=foreign, stdout=stdout, stderr=stderr)


def json_lines(text):
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass
    return rows


def slice_rows(text):
    """Per-slice rows (those with a score), keyed by (real path, rank of the frame within its file): the same
    keys whether a side numbers frames from 0 or from 1."""
    by_path = {}
    for r in json_lines(text):
        if "score" in r and "path" in r:
            by_path.setdefault(os.path.realpath(r["path"]), []).append(r)
    return {(path, k): r for path, rows in by_path.items()
            for k, r in enumerate(sorted(rows, key=lambda r: r.get("frame") or 0))}


def machine_info():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k.strip() in ("model name", "Model", "Hardware") and v.strip():
                    return v.strip()
    except OSError:
        pass
    return "unknown"


def load_str():
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec=".2f", width=0):
    return f"{'-':>{width}}" if x is None else f"{x:{width}{spec}}"


def default_weights():
    for rel in ("models/pretrained/phantom_anomaly.safetensors", "runs/phantom_anomaly/best.safetensors"):
        path = os.path.join(ROOT, rel)
        if os.path.exists(path):
            return path
    return os.path.join(ROOT, "models/pretrained/phantom_anomaly.safetensors")


def ours_ready(binary):
    """(True, '') when `attnvision saliency` has the options this benchmark uses, else (False, why)."""
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        return False, f"{binary} is missing"
    try:
        text = subprocess.run([binary, "saliency", "--help"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)
    missing = [o for o in ("--no-outputs", "--json", "--weights", "--method", "--out", "--threads") if o not in text]
    return (not missing), ("`attnvision saliency` lacks " + " ".join(missing)) if missing else ""


def lesion_truth(phantoms):
    """real path -> (lesions, pixel spacing mm)."""
    with open(os.path.join(phantoms, "lesions.json")) as f:
        doc = json.load(f)
    truth = {}
    for s in doc["series"]:
        for sl in s["slices"]:
            truth[os.path.realpath(os.path.join(phantoms, sl["file"]))] = (sl["lesions"], s["pixel_spacing_mm"])
    return truth


def peaks_on_lesions(rows, truth, threshold=0.5):
    """On slices with lesions: maps whose peak lies within radius + tolerance of a lesion centre (all; those
    with score >= threshold), and the mean score on lesion and clean slices."""
    hit = n = hit_pos = n_pos = 0
    s_lesion, s_clean = [], []
    for (path, _), r in rows.items():
        lesions, spacing = truth.get(path, (None, None))
        if lesions is None:
            continue
        if not lesions:
            s_clean.append(r["score"])
            continue
        s_lesion.append(r["score"])
        x, y = r["peak_px"]
        on = any(math.hypot(x - l["center_px"][0], y - l["center_px"][1]) * spacing <=
                 l["diameter_mm"] / 2 + LESION_TOLERANCE_MM for l in lesions)
        n += 1
        hit += on
        if r["score"] >= threshold:
            n_pos += 1
            hit_pos += on
    return dict(lesion_slices=n, peak_on_lesion=hit, called_lesion=n_pos, peak_on_lesion_called=hit_pos,
                mean_score_lesion=statistics.mean(s_lesion) if s_lesion else None,
                mean_score_clean=statistics.mean(s_clean) if s_clean else None)


def tiff_maps(folder):
    """A row's raw map as attnvision --out writes it (float32 TIFF), as float64."""
    import numpy as np
    from PIL import Image
    return lambda row: np.array(Image.open(os.path.join(folder, row["map"])), dtype=np.float64)


def npy_maps(folder):
    """A row's raw map as the peer's --maps writes it (.npy, float32 or float64), as float64."""
    import numpy as np
    return lambda row: np.load(os.path.join(folder, row["map"])).astype(np.float64)


def agreement(ours_rows, ours_map, peer_rows, peer_map):
    """Maps and scores of two runs on the same slices; ours_map / peer_map read a row's map."""
    import numpy as np
    a = dict(matched=0, missing=0, shape_mismatch=0, max_rel_map_diff=0.0, median_rel_map_diff=None,
             max_score_diff=0.0, same_peak=0, peak_within_1px=0)
    rels = []
    for key, pr in peer_rows.items():
        orow = ours_rows.get(key)
        if orow is None or not orow.get("map") or not pr.get("map"):
            a["missing"] += 1
            continue
        mine, theirs = ours_map(orow), peer_map(pr)
        if mine.shape != theirs.shape:
            a["shape_mismatch"] += 1
            continue
        a["matched"] += 1
        top = max(float(mine.max()), float(theirs.max()))
        rel = float(np.abs(mine - theirs).max()) / top if top > 0 else 0.0
        rels.append(rel)
        a["max_rel_map_diff"] = max(a["max_rel_map_diff"], rel)
        a["max_score_diff"] = max(a["max_score_diff"], abs(orow["score"] - pr["score"]))
        a["same_peak"] += list(orow["peak_px"]) == list(pr["peak_px"])
        a["peak_within_1px"] += max(abs(u - v) for u, v in zip(orow["peak_px"], pr["peak_px"])) <= 1
    a["median_rel_map_diff"] = med(rels)
    return a


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/pipelines/cli/attnvision"))
    ap.add_argument("--weights", default=None, help="anomaly checkpoint (default: %s)" % os.path.relpath(
        default_weights(), ROOT))
    ap.add_argument("--series", type=int, default=6,
                    help="phantom series (8-24 slices each; ~100 slices keep the start-up subtraction's noise small)")
    ap.add_argument("--seed", type=int, default=11, help="phantom seed")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8, help="the peer's slices per Grad-CAM pass (attnvision's default)")
    ap.add_argument("--agree", type=int, default=12, help="slices for the map agreement check (0: none)")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="both sides' threads")
    ap.add_argument("--python", default="/usr/bin/python3", help="the peer's interpreter")
    ap.add_argument("--work", default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    ap.add_argument("--peer-only", action="store_true", help="skip attnvision (a binary without `saliency`)")
    args = ap.parse_args()

    global LOGS
    temporary = args.work is None
    work = os.path.abspath(args.work or tempfile.mkdtemp(prefix="attnvision_saliency_bench_"))
    LOGS = os.path.join(work, "logs")
    os.makedirs(LOGS, exist_ok=True)
    cores = args.threads
    base_env = {k: v for k, v in os.environ.items()
                if k not in ("LD_PRELOAD", "GLIBC_TUNABLES") and not k.startswith("MALLOC_")}
    peer_envs = {"tcmalloc": dict(base_env), "thp": {**base_env, **THP_ENV}}
    if os.path.exists(TCMALLOC):
        peer_envs["tcmalloc"]["LD_PRELOAD"] = TCMALLOC
    else:
        print(f"warning: {TCMALLOC} missing; the peer runs with glibc malloc", file=sys.stderr)
    peer_env = peer_envs["tcmalloc"]  # the agreement check's peer run

    ready, why = ours_ready(args.binary)
    ours_on = ready and not args.peer_only
    if not ours_on and not args.peer_only:
        print(f"attnvision side skipped: {why}; pass --peer-only to silence this", file=sys.stderr)

    # Weights: a private copy, so that a training run rewriting the file cannot change it between the sides.
    src = os.path.abspath(args.weights or default_weights())
    if not os.path.exists(src):
        sys.exit(f"no checkpoint at {src}; pass --weights")
    weights = os.path.join(work, "checkpoint.safetensors")
    shutil.copyfile(src, weights)
    with open(weights, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]

    phantoms = os.path.join(work, "phantoms")
    if not os.path.exists(os.path.join(phantoms, "lesions.json")):
        run([args.binary, "synth", "phantoms", "--out", phantoms, "--series", str(args.series), "--seed",
             str(args.seed), "--size", "512"], "synth")
    files = sorted(glob.glob(os.path.join(phantoms, "series_*", "*.dcm")))
    if len(files) < 2:
        sys.exit(f"{phantoms}: fewer than 2 slices")
    truth = lesion_truth(phantoms)
    for p in files + [weights]:  # nothing timed pays for the disk
        with open(p, "rb") as f:
            f.read()
    n = len(files)

    def ours_cmd(paths, extra):
        return [args.binary, "saliency", *paths, "--weights", weights, "--method", "gradcam", "--json",
                "--threads", str(cores)] + extra

    def peer_cmd(paths, flags, extra=()):
        return [args.python, os.path.join(HERE, "py_saliency_peer.py"), *paths, "--weights", weights,
                "--threads", str(cores), "--batch", str(args.batch)] + flags + list(extra)

    def shown(cmd, env_add=None):
        text = shlex.join(cmd).replace(shlex.join(files), f"{phantoms}/series_*/*.dcm ({n} files)")
        pre = " ".join(f"{k}={v}" for k, v in (env_add or {}).items())
        return (pre + " " if pre else "") + text

    load_before = load_str()
    print(f"machine: {cores} threads used, {len(os.sched_getaffinity(0))} cores usable (os.cpu_count "
          f"{os.cpu_count()}), CPU {machine_info()}; load average before {load_before}")
    print(f"data: {n} slices of 512 x 512 ({args.series} phantom series, seed {args.seed}) in {phantoms}")
    print(f"weights: {src} (sha256 {digest}), copied to {weights}")
    print("commands (each also run on the first slice alone):")
    if ours_on:
        print(f"  attnvision: {shown(ours_cmd(files, ['--no-outputs']))}")
    for name, flags, allocator in PEER_CONFIGS:
        added = {k: v for k, v in peer_envs[allocator].items() if base_env.get(k) != v}
        print(f"  peer {name}: {shown(peer_cmd(files, flags), added)}")

    rounds = []
    ours_rows = peer_rows = None
    for r in range(args.rounds):
        rec = {"peer": {}}

        def ours():
            nonlocal ours_rows
            full = run(ours_cmd(files, ["--no-outputs"]), f"ours_r{r + 1}_all", env=base_env)
            one = run(ours_cmd(files[:1], ["--no-outputs"]), f"ours_r{r + 1}_one", env=base_env)
            rows = slice_rows(full["stdout"])
            if len(rows) != n:
                sys.exit(f"attnvision saliency gave {len(rows)} slice rows for {n} slices (see {LOGS})")
            ours_rows = rows
            # Its own figure, if it prints one as `batch` does ("ran N inputs in S s (R inputs/s)").
            own = re.search(r"ran \d+ \w+ in [\d.]+ s \(([\d.]+) \w+/s\)", full["stderr"])
            rec["ours"] = dict(wall=full["wall"], wall_one=one["wall"], foreign=full["foreign"],
                               rate=(n - 1) / (full["wall"] - one["wall"]) if full["wall"] > one["wall"] else None,
                               e2e=n / full["wall"], own=float(own.group(1)) if own else None)

        def peer(name, flags, allocator):
            nonlocal peer_rows
            tag = name.replace(" ", "_")
            env = peer_envs[allocator]
            full = run(peer_cmd(files, flags), f"peer_{tag}_r{r + 1}_all", env=env)
            one = run(peer_cmd(files[:1], flags, ["--quiet"]), f"peer_{tag}_r{r + 1}_one", env=env)
            summary = json_lines(full["stdout"])[-1]
            rows = slice_rows(full["stdout"])
            if len(rows) != n:
                sys.exit(f"the peer gave {len(rows)} slice rows for {n} slices (see {LOGS})")
            if name == "NCHW":
                peer_rows = rows
            rec["peer"][name] = dict(wall=full["wall"], wall_one=one["wall"], foreign=full["foreign"],
                                     rate=(n - 1) / (full["wall"] - one["wall"]) if full["wall"] > one["wall"]
                                     else None, e2e=n / full["wall"], own=summary["slices_per_s"],
                                     summary=summary)

        steps = [lambda c=c: peer(*c) for c in PEER_CONFIGS]
        if ours_on:
            steps = steps + [ours] if r % 2 == 0 else [ours] + steps[::-1]
        for step in steps:
            step()
        best_name = max(rec["peer"], key=lambda k: rec["peer"][k]["rate"] or 0.0)
        rec["best"] = best_name
        rec["best_rate"] = rec["peer"][best_name]["rate"]
        if ours_on and rec["ours"]["rate"] and rec["best_rate"]:
            rec["ratio"] = rec["ours"]["rate"] / rec["best_rate"]
        rounds.append(rec)
        print(f"round {r + 1} ({'peer first' if r % 2 == 0 else 'attnvision first'}), slices/s "
              f"(start-up excluded | end to end | own):")
        for name in rec["peer"]:
            p = rec["peer"][name]
            s = p["summary"]
            print(f"  peer {name:22}{fmt(p['rate'], '.2f', 7)} |{p['e2e']:6.2f} |{p['own']:6.2f}   wall "
                  f"{p['wall']:.2f} s (1 slice {p['wall_one']:.2f} s); read {s['read_s']:.2f} s, preprocess "
                  f"{s['preprocess_s']:.2f} s, Grad-CAM {s['gradcam_s']:.2f} s, map {s['map_s']:.2f} s; foreign "
                  f"{fmt(p['foreign'])}")
        if ours_on:
            o = rec["ours"]
            print(f"  {'attnvision':27}{fmt(o['rate'], '.2f', 7)} |{o['e2e']:6.2f} |{fmt(o['own'], '.2f', 6)}   "
                  f"wall {o['wall']:.2f} s (1 slice {o['wall_one']:.2f} s); foreign {fmt(o['foreign'])}")
            print(f"  ratio attnvision / best peer ({best_name}): {fmt(rec.get('ratio'))}")

    # Agreement and sanity.
    agree = None
    if ours_on and args.agree > 0:
        subset = files[:args.agree]
        ours_out = os.path.join(work, "agree_ours")
        peer_maps = os.path.join(work, "agree_peer")
        shutil.rmtree(ours_out, ignore_errors=True)
        shutil.rmtree(peer_maps, ignore_errors=True)
        peer64_maps = os.path.join(work, "agree_peer_float64")
        shutil.rmtree(peer64_maps, ignore_errors=True)
        o = run(ours_cmd(subset, ["--out", ours_out]), "agree_ours", env=base_env)
        p = run(peer_cmd(subset, [], ["--maps", peer_maps]), "agree_peer", env=peer_env)
        p64 = run(peer_cmd(subset, [], ["--maps", peer64_maps, "--float64"]), "agree_peer_float64", env=peer_env)
        ours32, peer32, peer64 = slice_rows(o["stdout"]), slice_rows(p["stdout"]), slice_rows(p64["stdout"])
        agree = agreement(ours32, tiff_maps(ours_out), peer32, npy_maps(peer_maps))
        agree["slices"] = len(subset)
        # Both float32 sides against the peer's code in float64: which side a disagreement comes from.
        agree["float64_reference"] = {
            "attnvision": agreement(ours32, tiff_maps(ours_out), peer64, npy_maps(peer64_maps)),
            "peer": agreement(peer32, npy_maps(peer_maps), peer64, npy_maps(peer64_maps))}
    sanity = {"peer": peaks_on_lesions(peer_rows, truth)}
    if ours_on:
        sanity["attnvision"] = peaks_on_lesions(ours_rows, truth)

    ours_med = med(r["ours"]["rate"] for r in rounds) if ours_on else None
    best_med = med(r["best_rate"] for r in rounds)
    ratio = ours_med / best_med if ours_med and best_med else None
    torch_version = rounds[-1]["peer"]["NCHW"]["summary"]["torch"]
    print(f"\nmachine: {cores} threads, CPU {machine_info()}; torch {torch_version} (peer); load average before "
          f"{load_before}, after {load_str()}")
    print(f"medians of {args.rounds} round(s), {n} slices of 512 x 512, slices/s: start-up excluded "
          f"((N-1) / (wall(N) - wall(1))) | end to end (N / wall(N)) | each side's own in-process figure (where it "
          f"prints one)")
    if ours_on:
        print(f"  {'attnvision':27}{fmt(ours_med, '.2f', 7)} |{fmt(med(r['ours']['e2e'] for r in rounds), '.2f', 6)} |"
              f"{fmt(med(r['ours']['own'] for r in rounds), '.2f', 6)}")
    for name, _, _ in PEER_CONFIGS:
        print(f"  peer {name:22}{fmt(med(r['peer'][name]['rate'] for r in rounds), '.2f', 7)} |"
              f"{fmt(med(r['peer'][name]['e2e'] for r in rounds), '.2f', 6)} |"
              f"{fmt(med(r['peer'][name]['own'] for r in rounds), '.2f', 6)}")
    print(f"  {'peer best per round':27}{fmt(best_med, '.2f', 7)}   ({', '.join(r['best'] for r in rounds)})")
    if ours_on:
        verdict = "" if ratio is None else (" ok" if ratio >= TARGET else " MISS")
        print(f"ratio attnvision / best peer: {fmt(ratio)}x (target >= {TARGET:.1f}{verdict}); per round "
              f"{', '.join(fmt(r.get('ratio')) for r in rounds)}")
    else:
        print("ratio: - (attnvision side not run)")
    if agree:
        print(f"agreement on {agree['slices']} slices (attnvision --out TIFF vs peer NCHW): {agree['matched']} matched "
              f"({agree['missing']} missing, {agree['shape_mismatch']} of another shape); max |map diff| / map max "
              f"{agree['max_rel_map_diff']:.2e} (median {fmt(agree['median_rel_map_diff'], '.2e')}), max |score diff| "
              f"{agree['max_score_diff']:.2e}, identical peaks {agree['same_peak']}/{agree['matched']} (within 1 px "
              f"{agree['peak_within_1px']})")
        for side, ref in agree["float64_reference"].items():
            print(f"  {side} against the peer's code in float64: max |map diff| / map max {ref['max_rel_map_diff']:.2e} "
                  f"(median {fmt(ref['median_rel_map_diff'], '.2e')}), max |score diff| {ref['max_score_diff']:.2e}")
    for side, s in sanity.items():
        print(f"sanity, {side}: map peaks on a lesion on {s['peak_on_lesion']}/{s['lesion_slices']} lesion slices "
              f"({s['peak_on_lesion_called']}/{s['called_lesion']} of those with p(lesion) >= 0.5); mean p(lesion) "
              f"{fmt(s['mean_score_lesion'], '.3f')} on lesion slices, {fmt(s['mean_score_clean'], '.3f')} on clean")
    result = {
        "benchmark": "saliency_vs_peer", "method": "gradcam", "slices": n, "size": 512, "rounds": args.rounds,
        "threads": cores, "cpu": machine_info(), "torch": torch_version, "weights": src, "weights_sha256": digest,
        "attnvision_slices_per_s": ours_med, "peer_best_slices_per_s": best_med,
        "peer_slices_per_s": {name: med(r["peer"][name]["rate"] for r in rounds) for name, _, _ in PEER_CONFIGS},
        "attnvision_end_to_end_slices_per_s": med(r["ours"]["e2e"] for r in rounds) if ours_on else None,
        "attnvision_own_slices_per_s": med(r["ours"]["own"] for r in rounds) if ours_on else None,
        "peer_end_to_end_slices_per_s": {name: med(r["peer"][name]["e2e"] for r in rounds) for name, _, _ in PEER_CONFIGS},
        "ratio": ratio, "target": TARGET, "agreement": agree, "sanity": sanity,
        "foreign_cores_max": max((x for r in rounds for x in [r.get("ours", {}).get("foreign")] +
                                  [p["foreign"] for p in r["peer"].values()] if x is not None), default=None),
    }
    if temporary and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"work: {work}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
