#!/usr/bin/env bash
# The README's attention comparison on the CT phantoms, under one budget: the anomaly ResNet of
# configs/train/phantom_anomaly.yaml with attention none / SE / CBAM, and the ViT of
# configs/train/phantom_anomaly_vit.yaml; every run cut to the same epochs on the same first LIMIT training
# slices, from scratch. Each best checkpoint is then scored on the test phantoms: slice AUROC (the trainer's
# test pass over data.test), the pointing game and lesion sensitivity of each saliency method it offers (eval-saliency; the best method's are
# reported) and forward images/s (bench, batch 16, fp32).
#   benchmarks/anomaly_attention.sh [EPOCHS [LIMIT [BINARY]]]   (defaults 8, 6000)
# Make data/phantoms_train and data/phantoms_test first, as configs/train/phantom_anomaly.yaml's comments say.
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-8}
limit=${2:-6000}
bin=${3:-build/pipelines/cli/attnvision}
out=runs/ablation_anomaly
mkdir -p "$out"
run() {  # NAME RECIPE METHODS [--set ...]
  local name=$1 recipe=$2 methods=$3
  shift 3
  rm -rf "${out:?}/$name"
  "$bin" train "$recipe" "$@" --set schedule.epochs="$epochs" --set schedule.warmup_epochs=1 \
    --set data.limit="$limit" --set output="$out/$name" > "$out/$name.json" 2> "$out/$name.log"
  "$bin" eval-saliency --data data/phantoms_test --weights "$out/$name/best.safetensors" --methods "$methods" \
    --rise-steps 0 --json > "$out/$name.saliency.json" 2>> "$out/$name.log"
  "$bin" bench --weights "$out/$name/best.safetensors" --batch 16 --iters 10 --json \
    > "$out/$name.bench.json" 2>> "$out/$name.log"
}
run none configs/train/phantom_anomaly.yaml gradcam,gradcam++,layercam --set model.attn=none
run se configs/train/phantom_anomaly.yaml gradcam,gradcam++,layercam --set model.attn=se
run cbam configs/train/phantom_anomaly.yaml gradcam,gradcam++,layercam,cbam --set model.attn=cbam
run vit configs/train/phantom_anomaly_vit.yaml gradcam,gradcam++,layercam,rollout,grad-rollout
/usr/bin/python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
print("| backbone | parameters | train min | slice AUROC | best method | pointing game | lesion sensitivity | false regions / slice | images/s |")
print("|---|---|---|---|---|---|---|---|---|")
names = {"none": "ResNet, no attention", "se": "ResNet + SE", "cbam": "ResNet + CBAM", "vit": "ViT (16 px patches)"}
for name, label in names.items():
    summary = json.load(open(os.path.join(out, name + ".json")))
    params = json.load(open(os.path.join(out, name, "summary.json")))["parameters"]
    sal = json.load(open(os.path.join(out, name + ".saliency.json")))
    bench = json.load(open(os.path.join(out, name + ".bench.json")))
    methods = sal["methods"]
    best = max(methods, key=lambda m: methods[m]["pointing_game"])
    b = methods[best]
    print(f"| {label} | {params / 1e6:.2f}M | {summary['train_seconds'] / 60:.1f} | {summary['test_accuracy']:.3f} | {best} | "
          f"{100 * b['pointing_game']:.1f}% | {100 * b['sensitivity']:.1f}% | {b['false_regions_per_slice']:.2f} | "
          f"{bench['images_per_s']:.1f} |")
PY
