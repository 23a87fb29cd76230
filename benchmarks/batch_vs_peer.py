#!/usr/bin/env python3
"""End-to-end `attnvision batch --tasks classify` against the Python peer (torchvision + PIL), same weights,
same run, alternating rounds.

    /usr/bin/python3 benchmarks/batch_vs_peer.py [--models resnet50 resnet18] [--n 300] [--batch 16] [--rounds 2]
    /usr/bin/python3 benchmarks/batch_vs_peer.py --rss            # also peak RSS on 5,000 vs 1,000 small images
    /usr/bin/python3 benchmarks/batch_vs_peer.py --peer-only --n 8 --rounds 1 --models resnet18   # smoke test

Steps: make N JPEGs (640x480..1280x960, ../shared/peers/make_images.py --seed 0); per model, write one
random-init torchvision checkpoint (torch.manual_seed(0); timm, torchvision and attnvision share ResNet names)
that both sides load. Then per model, R rounds (round 1 peer first, round 2 ours first, ...):
  peer as-is   ../shared/peers/py_classify_folder.py with its defaults, plain environment
  peer tuned   the same with MALLOC_MMAP_THRESHOLD_=MALLOC_TRIM_THRESHOLD_=16 GiB (keep freed memory in the
               heap, as attnvision does for itself at start-up) and --threads = this machine's cores
  peer tuned CL  the tuned peer with its model and batches in channels-last (benchmarks/peer_channels_last.py),
               as PyTorch's CPU guide advises for CNNs
  peer tcmalloc CL  the channels-last peer with tcmalloc preloaded (LD_PRELOAD, Debian's libtcmalloc-minimal4),
               the allocator PyTorch's CPU guide recommends and the one attnvision's binary links;
  peer THP CL  the tuned channels-last peer with glibc's heap in transparent huge pages
               (GLIBC_TUNABLES=glibc.malloc.hugetlb=1), as attnvision asks tcmalloc for its heap;
               ratios are taken against the fastest tuned run per round ("peer best")
  attnvision   `attnvision batch IMAGES --out FRESH_DIR --tasks classify --set classify.model=M
               --set classify.weights=W --set classify.batch=B --set classify.topk=5`
  bench        `attnvision bench --model M --batch B --iters I --warmup W [--random-init] --json` (forward only)
Every side is timed by its process wall time, start to exit (images/s = N / wall); the peer's own in-loop
figure (its --summary, start-up excluded) is shown beside it. Each run also records its CPU seconds, peak
RSS (wait4) and the CPU other processes used meanwhile ("foreign", in cores; ~0 for a clean number).
Reported: per-round figures, medians, attnvision / peer ratios (targets: resnet50 >= 1.15x tuned, resnet18
>= 1.5x tuned), batch end to end as % of bench's forward-only images/s (target >= 85% for resnet50), and
agreement of attnvision's manifest top-1/top-5 with the tuned peer's predictions.
--fast: each round also runs `attnvision batch --decode fast` (JPEGs decoded at libjpeg's reduced scales, not
Pillow-exact) and reports it as its own row, with its top-1 / top-5 agreement against the exact run's manifest.
--rss: peak RSS of `attnvision batch` (resnet18) on 5,000 vs 1,000 small JPEGs (target: within 15%).
--peer-only runs only the peer half (for when the binary lacks `batch`). Work files go under --work; each
process's stdout/stderr under --work/logs. The peer needs Debian's python3-torch and python3-torchvision.
"""
import argparse
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

TUNED_ENV = {"MALLOC_MMAP_THRESHOLD_": "17179869184", "MALLOC_TRIM_THRESHOLD_": "17179869184"}
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
# The peer's runs: (key, label, environment added, channels-last wrapper). Every run but "asis" is tuned:
# --threads = the machine's cores, and counts towards "peer best".
PEER_RUNS = [("asis", "peer as-is", {}, False),
             ("tuned", "peer tuned", TUNED_ENV, False),
             ("tuned_cl", "peer tuned CL", TUNED_ENV, True),
             ("tcmalloc_cl", "peer tcmalloc CL", {"LD_PRELOAD": TCMALLOC}, True),
             ("thp_cl", "peer THP CL", {**TUNED_ENV, "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}, True)]
TARGET_VS_TUNED = {"resnet50": 1.15, "resnet18": 1.5}  # attnvision end to end / tuned peer end to end
TARGET_E2E_OF_FWD = {"resnet50": 0.85}                 # batch end to end / bench forward-only
TARGET_RSS_RATIO = 1.15                                # peak RSS, large set / small set

# Random-init checkpoint, written by the peer's interpreter (keeps torch out of this driver process).
CKPT = r"""
import os, sys
import torch, torchvision
sys.path.insert(0, sys.argv[3])
from safetensors_io import save_file
torch.manual_seed(0)
m = getattr(torchvision.models, sys.argv[1])(weights=None).eval()
save_file(m.state_dict(), sys.argv[2] + ".tmp")
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
"""

# Small JPEGs for --rss: gradient + noise, deterministic by index.
SMALL = r"""
import os, sys
import numpy as np
from PIL import Image
out, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(out, exist_ok=True)
yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
for i in range(n):
    rng = np.random.default_rng([1, i])
    c0, c1, a = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3), rng.uniform()
    t = (a * xx + (1 - a) * yy)[..., None]
    img = c0 * (1 - t) + c1 * t + rng.standard_normal((size, size, 3)) * 12
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(os.path.join(out, f"small_{i:05d}.jpg"), quality=90)
"""


def cpu_busy_s():
    """Machine-wide busy CPU seconds (all cores) from /proc/stat, or None."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
    except Exception:
        return None


LOGS = None  # set in main(): folder for each process's stdout/stderr


def run(cmd, tag, env=None, check=True):
    """Run cmd to completion; stdout/stderr go to LOGS/tag.{out,err}. Wall time covers fork to exit.
    Returns dict(rc, wall, cpu (user+sys s of the child and its threads), maxrss_mib, foreign (cores), stdout,
    stderr). The rusage comes from wait4 on this very child, so it is per run, not a max over all children."""
    out_path, err_path = os.path.join(LOGS, tag + ".out"), os.path.join(LOGS, tag + ".err")
    with open(out_path, "w") as fo, open(err_path, "w") as fe:
        busy0 = cpu_busy_s()
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        busy1 = cpu_busy_s()
    p.returncode = os.waitstatus_to_exitcode(status)
    cpu = ru.ru_utime + ru.ru_stime
    foreign = None if busy0 is None else max(0.0, (busy1 - busy0) - cpu) / wall
    with open(out_path) as f:
        stdout = f.read()
    with open(err_path) as f:
        stderr = f.read()
    res = dict(rc=p.returncode, wall=wall, cpu=cpu, maxrss_mib=ru.ru_maxrss / 1024.0, foreign=foreign,
               stdout=stdout, stderr=stderr)
    if check and p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {shlex.join(cmd)}\n{stderr[-2000:]}")
    return res


def show_cmd(cmd, env_extra=None):
    pre = " ".join(f"{k}={v}" for k, v in (env_extra or {}).items())
    print(f"    $ {pre + ' ' if pre else ''}{shlex.join(cmd)}")


def machine_info():
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k.strip() in ("model name", "Model", "Hardware") and v.strip():
                    model = v.strip()
                    break
    except OSError:
        pass
    return model or "unknown"


def load_str():
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def warm_cache(paths):
    """Read files once so that no timed run pays for the disk."""
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 20):
                pass


def ensure_images(args, peers, images):
    want = [f"img_{i:05d}.jpg" for i in range(args.n)]
    if os.path.isdir(images) and sorted(os.listdir(images)) == want:
        return
    shutil.rmtree(images, ignore_errors=True)
    tmp = images + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    run([args.python, os.path.join(peers, "make_images.py"), tmp, "--n", str(args.n), "--seed", "0"], "make_images")
    os.replace(tmp, images)


def ensure_weights(args, model):
    path = os.path.join(args.work, f"{model}_random.safetensors")
    if not os.path.exists(path):
        run([args.python, "-c", CKPT, model, path, os.path.join(args.shared, "fixtures", "parity")], f"ckpt_{model}")
    return path


def ensure_small(args, n):
    folder = os.path.join(args.work, f"small_{n}")
    if os.path.isdir(folder) and len(os.listdir(folder)) == n:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    run([args.python, "-c", SMALL, folder + ".tmp", str(n), str(args.rss_size)], f"small_{n}")
    os.replace(folder + ".tmp", folder)
    return folder


def binary_caps(binary):
    """(has `batch`, bench accepts --random-init); (False, False) if the binary is missing or does not run."""
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        return False, False
    try:
        top = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30).stdout
        bench = subprocess.run([binary, "bench", "--help"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False, False
    return bool(re.search(r"^\s+batch\s", top, re.M)), "--random-init" in bench


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def agreement(manifest, peer_out):
    """attnvision manifest rows vs the peer's lines, matched by file name."""
    peer = {r["file"]: r for r in read_jsonl(peer_out)}
    rows = read_jsonl(manifest)
    a = dict(rows=len(rows), ok=0, errors=0, matched=0, top1=0, top5=0, max_dscore=0.0, missing_in_ours=0)
    seen = set()
    for row in rows:
        name = os.path.basename(row["path"])
        seen.add(name)
        if row.get("status") != "ok":
            a["errors"] += 1
            continue
        a["ok"] += 1
        ref = peer.get(name)
        topk = ((row.get("outputs") or {}).get("classify") or {}).get("topk") or []
        if ref is None or not topk:
            continue
        a["matched"] += 1
        idx = [t["index"] for t in topk]
        a["top1"] += idx[0] == ref["top5"][0]
        a["top5"] += idx[:5] == ref["top5"]
        a["max_dscore"] = max(a["max_dscore"], max(abs(t["score"] - s) for t, s in zip(topk, ref["scores"])))
    a["peer_rows"] = len(peer)
    a["missing_in_ours"] = len(set(peer) - seen)
    return a


def manifest_vs_manifest(manifest_a, manifest_b):
    """Top-1 / top-5 agreement of two attnvision manifests over the inputs both classified."""
    def topk(path):
        return {row["path"]: row["outputs"]["classify"]["topk"] for row in read_jsonl(path) if row.get("status") == "ok"}
    a, b = topk(manifest_a), topk(manifest_b)
    both = [k for k in a if k in b]
    return dict(matched=len(both),
                top1=sum(a[k][0]["index"] == b[k][0]["index"] for k in both),
                top5=sum([t["index"] for t in a[k]] == [t["index"] for t in b[k]] for k in both),
                max_dscore=max((abs(x["score"] - y["score"]) for k in both for x, y in zip(a[k], b[k])), default=0.0))


def peer_vs_peer(out_a, out_b):
    a = {r["file"]: r for r in read_jsonl(out_a)}
    b = {r["file"]: r for r in read_jsonl(out_b)}
    same = sum(1 for k in a if k in b and a[k]["top5"] == b[k]["top5"])
    d = max((abs(x - y) for k in a if k in b for x, y in zip(a[k]["scores"], b[k]["scores"])), default=0.0)
    return same, len(a), d


def fmt(x, spec, width):
    return f"{'-':>{width}}" if x is None else f"{x:{width}{spec}}"


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["resnet50", "resnet18"],
                    help="names both torchvision and attnvision know")
    ap.add_argument("--n", type=int, default=300, help="JPEGs to classify")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2,
                    help="alternating rounds: 1st, 3rd, ... peer first; 2nd, 4th, ... attnvision first")
    ap.add_argument("--bench-iters", type=int, default=10, help="timed forwards of `attnvision bench`")
    ap.add_argument("--bench-warmup", type=int, default=2, help="untimed forwards of `attnvision bench`")
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "pipelines", "cli", "attnvision"))
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "bench_batch"))
    ap.add_argument("--python", default="/usr/bin/python3", help="interpreter for the peer (torch, torchvision, PIL)")
    ap.add_argument("--peer-only", action="store_true", help="skip the attnvision side (no batch, bench or --rss)")
    ap.add_argument("--fast", action="store_true",
                    help="also time `attnvision batch --decode fast` and its agreement with the exact decode")
    ap.add_argument("--rss", action="store_true",
                    help="also peak RSS of `attnvision batch` (resnet18) on --rss-large vs --rss-small small JPEGs")
    ap.add_argument("--rss-small", type=int, default=1000)
    ap.add_argument("--rss-large", type=int, default=5000)
    ap.add_argument("--rss-size", type=int, default=64, help="side of the square --rss JPEGs")
    args = ap.parse_args()

    global LOGS
    args.work = os.path.abspath(args.work)
    args.shared = os.path.abspath(args.shared)
    LOGS = os.path.join(args.work, "logs")
    os.makedirs(LOGS, exist_ok=True)
    peers = os.path.join(args.shared, "peers")
    peer_py = os.path.join(peers, "py_classify_folder.py")

    has_batch, bench_random_init = binary_caps(args.binary)
    if not args.peer_only and not has_batch:
        sys.exit(f"{args.binary}: missing or has no `batch` command; build it, or pass --peer-only")
    ours_on = not args.peer_only

    cores = len(os.sched_getaffinity(0))
    base_env = {k: v for k, v in os.environ.items()
                if not k.startswith("MALLOC_") and k not in ("LD_PRELOAD", "GLIBC_TUNABLES")}
    thread_vars = {k: v for k, v in base_env.items() if k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                               "MKL_NUM_THREADS")}

    load_before = load_str()
    print(f"machine: {cores} cores usable (os.cpu_count {os.cpu_count()}), CPU {machine_info()}; "
          f"load average before {load_before}")
    if thread_vars:
        print(f"note: environment sets {thread_vars} for every run")
    print(f"{args.n} JPEGs, batch {args.batch}, models {' '.join(args.models)}, {args.rounds} round(s); "
          f"work {args.work}")
    if not ours_on:
        print("attnvision side skipped (--peer-only)")

    images = os.path.join(args.work, f"images_{args.n}")
    ensure_images(args, peers, images)
    weights = {m: ensure_weights(args, m) for m in args.models}
    warm_cache([os.path.join(images, f) for f in sorted(os.listdir(images))] + list(weights.values()))

    results = {}  # model -> list of per-round dicts
    torch_version = None
    for model in args.models:
        w = weights[model]
        print(f"\n== {model} ==")
        rounds = []
        for r in range(args.rounds):
            first = r == 0  # print the commands once per model
            rec = {}

            def peer(key, label, env_add, channels_last):
                out = os.path.join(args.work, f"peer_{model}_{key}_r{r + 1}.jsonl")
                summ = os.path.join(args.work, f"peer_{model}_{key}_r{r + 1}_summary.json")
                wrapper = [os.path.join(HERE, "peer_channels_last.py")] if channels_last else []
                cmd = [args.python] + wrapper + [peer_py, images, "--model", model, "--weights", w, "--batch-size",
                                                 str(args.batch), "--out", out, "--summary", summ]
                if key != "asis":
                    cmd += ["--threads", str(cores)]
                if first:
                    show_cmd(cmd, env_add or None)
                res = run(cmd, f"peer_{model}_{key}_r{r + 1}", env=dict(base_env, **env_add))
                with open(summ) as f:
                    res["summary"] = json.load(f)
                res["out"] = out
                res["ips"] = args.n / res["wall"]
                res["label"] = label
                rec["peer_" + key] = res

            def ours(decode="exact"):
                key = "ours" if decode == "exact" else "ours_" + decode
                out_dir = os.path.join(args.work, f"out_{model}_{decode}_r{r + 1}")
                shutil.rmtree(out_dir, ignore_errors=True)  # a rerun with the same --out would resume
                cmd = [args.binary, "batch", images, "--out", out_dir, "--tasks", "classify",
                       "--set", f"classify.model={model}", "--set", f"classify.weights={w}",
                       "--set", f"classify.batch={args.batch}", "--set", "classify.topk=5", "--decode", decode]
                if first:
                    show_cmd(cmd)
                res = run(cmd, f"{key}_{model}_r{r + 1}", env=base_env)
                res["manifest"] = os.path.join(out_dir, "manifest.jsonl")
                res["ips"] = args.n / res["wall"]
                # Its own figure, like the peer's: the run's summary line, start-up and model load excluded.
                m = re.search(r"ran (\d+) inputs in ([\d.]+) s \(([\d.]+) inputs/s\)", res["stderr"])
                res["own_ips"] = float(m.group(3)) if m else None
                rec[key] = res

            def bench():
                cmd = [args.binary, "bench", "--model", model, "--batch", str(args.batch), "--iters",
                       str(args.bench_iters), "--warmup", str(args.bench_warmup), "--json"]
                if bench_random_init:
                    cmd.insert(4, "--random-init")
                if first:
                    show_cmd(cmd)
                res = run(cmd, f"bench_{model}_r{r + 1}", env=base_env)
                res["json"] = json.loads(res["stdout"].strip().splitlines()[-1])
                rec["bench"] = res

            peers_in_order = [lambda run_=run_: peer(*run_) for run_ in PEER_RUNS]
            ours_in_order = [ours] + ([lambda: ours("fast")] if args.fast else []) + [bench]
            if r % 2 == 0:
                order = peers_in_order + (ours_in_order if ours_on else [])
            else:
                order = (ours_in_order[::-1] if ours_on else []) + peers_in_order[::-1]
            for step in order:
                step()
            torch_version = rec["peer_tuned"]["summary"].get("torch")

            pa = rec["peer_asis"]
            # The peer at its best: the fastest of its tuned runs.
            pt = max((rec["peer_" + key] for key, *_ in PEER_RUNS if key != "asis"), key=lambda p: p["ips"])
            rec["peer_best"] = pt
            print(f"  round {r + 1} ({'peer first' if r % 2 == 0 else 'ours first'}):")
            for key, *_ in PEER_RUNS:
                p = rec["peer_" + key]
                s = p["summary"]
                print(f"    {p['label']:17}{p['wall']:8.2f} s = {p['ips']:7.2f} images/s end to end "
                      f"(own figure {s['images_per_s']:.2f} images/s, threads {s['threads']}, blas "
                      f"{s['blas_threads']}; decode+pre {s['decode_preprocess_s']:.1f} s, forward "
                      f"{s['forward_s']:.1f} s); cpu {p['cpu']:.1f} s, peak RSS {p['maxrss_mib']:.0f} MiB, "
                      f"foreign {fmt(p['foreign'], '.2f', 0)}")
            if ours_on:
                o, b = rec["ours"], rec["bench"]["json"]
                rec["ratio_tuned"] = o["ips"] / pt["ips"]
                rec["ratio_asis"] = o["ips"] / pa["ips"]
                rec["e2e_of_fwd"] = o["ips"] / b["images_per_s"]
                rec["own_of_fwd"] = o["own_ips"] / b["images_per_s"] if o["own_ips"] else None
                print(f"    {'attnvision':17}{o['wall']:8.2f} s = {o['ips']:7.2f} images/s end to end (own figure "
                      f"{fmt(o['own_ips'], '.2f', 0)} images/s, start-up excluded); cpu "
                      f"{o['cpu']:.1f} s, peak RSS {o['maxrss_mib']:.0f} MiB, foreign {fmt(o['foreign'], '.2f', 0)}")
                print(f"    {'bench':17}{b['images_per_s']:8.2f} images/s forward only ({b['achieved_gflop_s']:.1f} "
                      f"GFLOP/s of a {b['matmul_peak_gflop_s']:.1f} matmul peak, {b['gflops_per_image']:.2f} "
                      f"GFLOPs/image, torch threads {b['torch_threads']}); foreign "
                      f"{fmt(rec['bench']['foreign'], '.2f', 0)}")
                print(f"    ratios: attnvision/best tuned peer {rec['ratio_tuned']:.2f}, attnvision/as-is "
                      f"{rec['ratio_asis']:.2f}; batch end to end = {100 * rec['e2e_of_fwd']:.0f}% of forward only "
                      f"({fmt(None if rec['own_of_fwd'] is None else 100 * rec['own_of_fwd'], '.0f', 0)}% start-up "
                      f"excluded)")
                if args.fast:
                    f_ = rec["ours_fast"]
                    rec["fast_ratio_tuned"] = f_["ips"] / pt["ips"]
                    rec["fast_e2e_of_fwd"] = f_["ips"] / b["images_per_s"]
                    rec["fast_own_of_fwd"] = f_["own_ips"] / b["images_per_s"] if f_["own_ips"] else None
                    print(f"    {'attnvision fast':17}{f_['wall']:8.2f} s = {f_['ips']:7.2f} images/s end to end (own "
                          f"figure {fmt(f_['own_ips'], '.2f', 0)} images/s); cpu {f_['cpu']:.1f} s, peak RSS "
                          f"{f_['maxrss_mib']:.0f} MiB, foreign {fmt(f_['foreign'], '.2f', 0)}; /best tuned peer "
                          f"{rec['fast_ratio_tuned']:.2f}, {100 * rec['fast_e2e_of_fwd']:.0f}% of forward only "
                          f"({fmt(None if rec['fast_own_of_fwd'] is None else 100 * rec['fast_own_of_fwd'], '.0f', 0)}%"
                          f" start-up excluded)")
            rounds.append(rec)
        results[model] = rounds

        last = rounds[-1]
        same, tot, d = peer_vs_peer(last["peer_asis"]["out"], last["peer_tuned"]["out"])
        print(f"  peer as-is vs tuned (last round): identical top-5 {same}/{tot}, max |score diff| {d:.2e}")
        if ours_on:
            a = agreement(last["ours"]["manifest"], last["peer_tuned"]["out"])
            print(f"  agreement, attnvision manifest vs tuned peer (last round): {a['rows']} rows ({a['ok']} ok, "
                  f"{a['errors']} error), {a['matched']} matched of {a['peer_rows']} peer files "
                  f"({a['missing_in_ours']} missing in manifest); top-1 {a['top1']}/{a['matched']}, identical "
                  f"top-5 {a['top5']}/{a['matched']}, max |score diff| {a['max_dscore']:.2e}")
            if args.fast:
                f_ = manifest_vs_manifest(last["ours_fast"]["manifest"], last["ours"]["manifest"])
                print(f"  agreement, --decode fast vs exact (last round): {f_['matched']} inputs; top-1 "
                      f"{f_['top1']}/{f_['matched']}, identical top-5 {f_['top5']}/{f_['matched']}, max |score diff| "
                      f"{f_['max_dscore']:.2e}")

    rss = None
    if args.rss and ours_on:
        print(f"\n== peak RSS, attnvision batch, resnet18, {args.rss_size}x{args.rss_size} JPEGs ==")
        w18 = weights.get("resnet18") or ensure_weights(args, "resnet18")
        rss = {}
        for n in (args.rss_small, args.rss_large):
            folder = ensure_small(args, n)
            warm_cache([os.path.join(folder, f) for f in os.listdir(folder)])
            out_dir = os.path.join(args.work, f"out_rss_{n}")
            shutil.rmtree(out_dir, ignore_errors=True)
            cmd = [args.binary, "batch", folder, "--out", out_dir, "--tasks", "classify",
                   "--set", "classify.model=resnet18", "--set", f"classify.weights={w18}",
                   "--set", f"classify.batch={args.batch}", "--set", "classify.topk=5", "--quiet"]
            show_cmd(cmd)
            res = run(cmd, f"rss_{n}", env=base_env)
            rows = read_jsonl(os.path.join(out_dir, "manifest.jsonl"))
            ok = sum(1 for x in rows if x.get("status") == "ok")
            rss[n] = res
            print(f"    {n:6d} images: peak RSS {res['maxrss_mib']:.0f} MiB, {res['wall']:.1f} s = "
                  f"{n / res['wall']:.1f} images/s, {ok}/{len(rows)} rows ok")
        ratio = rss[args.rss_large]["maxrss_mib"] / rss[args.rss_small]["maxrss_mib"]
        print(f"    peak RSS {args.rss_large} / {args.rss_small} images: {ratio:.3f} "
              f"(target <= {TARGET_RSS_RATIO:.2f}: {'ok' if ratio <= TARGET_RSS_RATIO else 'MISS'})")
        rss["ratio"] = ratio
    elif args.rss:
        print("\n--rss skipped (--peer-only)")

    # Final table: medians over rounds (ratios: median of the per-round ratios).
    print(f"\nmachine: {cores} cores, {machine_info()}; torch {torch_version} (peer); load average before "
          f"{load_before}, after {load_str()}")
    print(f"medians over {args.rounds} round(s), {args.n} JPEGs, batch {args.batch}, images/s end to end "
          f"(process wall, start-up included); peer own = its in-loop figure")
    hdr = (f"{'model':10}{'attnvision':>11}{'(own)':>8}{'peer best':>11}{'(own)':>8}{'peer as-is':>11}{'(own)':>8}"
           f"{'ours/tuned':>11}{'target':>12}{'ours/as-is':>11}{'fwd only':>9}{'e2e/fwd':>8}{'target':>11}")
    print(hdr)
    print("-" * len(hdr))
    for model, rounds in results.items():
        ours_ips = med(r["ours"]["ips"] for r in rounds) if ours_on else None
        rt = med(r.get("ratio_tuned") for r in rounds)
        ra = med(r.get("ratio_asis") for r in rounds)
        fwd = med(r["bench"]["json"]["images_per_s"] for r in rounds) if ours_on else None
        pct = med(r.get("e2e_of_fwd") for r in rounds)
        t_r, t_p = TARGET_VS_TUNED.get(model), TARGET_E2E_OF_FWD.get(model)
        t_r_s = "-" if t_r is None else f">={t_r:.2f}" + ("" if rt is None else (" ok" if rt >= t_r else " MISS"))
        t_p_s = "-" if t_p is None else f">={100 * t_p:.0f}%" + ("" if pct is None else
                                                                  (" ok" if pct >= t_p else " MISS"))
        own = med(r["ours"].get("own_ips") for r in rounds) if ours_on else None
        print(f"{model:10}{fmt(ours_ips, '.2f', 11)}{fmt(own, '.2f', 8)}"
              f"{med(r['peer_best']['ips'] for r in rounds):11.2f}"
              f"{med(r['peer_best']['summary']['images_per_s'] for r in rounds):8.2f}"
              f"{med(r['peer_asis']['ips'] for r in rounds):11.2f}"
              f"{med(r['peer_asis']['summary']['images_per_s'] for r in rounds):8.2f}"
              f"{fmt(rt, '.2f', 11)}{t_r_s:>12}{fmt(ra, '.2f', 11)}{fmt(fwd, '.2f', 9)}"
              f"{('-' if pct is None else f'{100 * pct:.0f}%'):>8}{t_p_s:>11}")
        if args.fast and ours_on:
            f_ips = med(r["ours_fast"]["ips"] for r in rounds)
            f_own = med(r["ours_fast"].get("own_ips") for r in rounds)
            f_rt = med(r.get("fast_ratio_tuned") for r in rounds)
            f_pct = med(r.get("fast_e2e_of_fwd") for r in rounds)
            print(f"{'  fast':10}{fmt(f_ips, '.2f', 11)}{fmt(f_own, '.2f', 8)}{'':38}{fmt(f_rt, '.2f', 11)}{'':23}"
                  f"{fmt(fwd, '.2f', 9)}{('-' if f_pct is None else f'{100 * f_pct:.0f}%'):>8}")
    print("(own): each side's in-loop figure, start-up and model load excluded; peer best: the fastest tuned peer run "
          "(NCHW, channels-last, tcmalloc channels-last, huge-page channels-last), per round; "
          "e2e/fwd: attnvision end to end over bench's forward-only rate"
          + ("; fast: attnvision batch --decode fast (not Pillow-exact)" if args.fast else ""))
    if rss:
        print(f"peak RSS attnvision batch resnet18: {rss[args.rss_small]['maxrss_mib']:.0f} MiB ({args.rss_small} "
              f"images) -> {rss[args.rss_large]['maxrss_mib']:.0f} MiB ({args.rss_large}), ratio {rss['ratio']:.3f} "
              f"(target <= {TARGET_RSS_RATIO:.2f})")
    print(f"logs: {LOGS}")


if __name__ == "__main__":
    main()
