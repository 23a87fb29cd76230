#!/usr/bin/env bash
# The README's attention comparison on the CT phantoms, under one budget: the anomaly ResNet of
# configs/train/phantom_anomaly.yaml with attention none / SE / CBAM, and the ViT of
# configs/train/phantom_anomaly_vit.yaml; every run from scratch, cut to the same EPOCHS on the same first LIMIT
# training slices (0: all of them). Each best checkpoint is then scored on the test phantoms: slice AUROC (the
# trainer's test pass over data.test), the pointing game and lesion sensitivity of every saliency method it
# offers (eval-saliency; the best method's are shown) and forward images/s (bench, batch 16, fp32).
#   benchmarks/anomaly_attention.sh [EPOCHS [LIMIT [MODELS [BINARY]]]]   (defaults 12, 0, none,se,cbam,vit)
# The budget has to let a network start learning: the 20-epoch stride-32 recipe needed 7 epochs of the 18,220 training
# slices before its validation AUROC left 0.5, and 8 epochs of 6,000 left the ResNet without attention at
# chance (test AUROC 0.51). At the defaults a ResNet takes about 55 minutes here, so the four runs span
# sessions: MODELS picks which run now (a run a session's end cut short continues with --resume), and the
# table lists every model that has finished at this budget.
# Make data/phantoms_train (`attnvision synth phantoms --out data/phantoms_train --series 1200 --seed 1`: uniform
# lesion sizes, as the table was measured) and data/phantoms_test (`--out data/phantoms_test --series 60 --seed 2`) first.
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-12}
limit=${2:-0}
models=${3:-none,se,cbam,vit}
bin=${4:-build/pipelines/cli/attnvision}
out=runs/ablation_anomaly
budget="$epochs epochs, limit $limit"
mkdir -p "$out"
run() {  # NAME RECIPE METHODS [--set ...]
  local name=$1 recipe=$2 methods=$3
  shift 3
  local resume=()
  if [ -f "$out/$name/state.pt" ] && [ "$(cat "$out/$name.budget" 2>/dev/null)" = "$budget" ]; then
    resume=(--resume)
  else
    rm -rf "${out:?}/$name" "$out/$name".*
  fi
  echo "$budget" > "$out/$name.budget"
  "$bin" train "$recipe" "$@" "${resume[@]}" --set schedule.epochs="$epochs" --set schedule.warmup_epochs=1 \
    --set data.limit="$limit" --set output="$out/$name" > "$out/$name.json" 2>> "$out/$name.log"
  "$bin" eval-saliency --data data/phantoms_test --weights "$out/$name/best.safetensors" --methods "$methods" \
    --rise-steps 0 --json > "$out/$name.saliency.json" 2>> "$out/$name.log"
  "$bin" bench --weights "$out/$name/best.safetensors" --batch 16 --iters 10 --json \
    > "$out/$name.bench.json" 2>> "$out/$name.log"
}
# The ResNets as the comparison measured them: 1.5 mm pixels on a 256 x 256 grid (the ViT's input), the
# backbone's own stride-32 cells scored with the cross-entropy, not the shipped recipe's 1 mm grid, dilated
# stage, fine lesion map and focal loss, on whole slices of uniform lesion sizes, so that the table stays
# reproducible.
resnet=(--set model.ct_spacing_mm=1.5 --set "model.input_size=[2, 256, 256]" --set model.feature_stride=32
        --set model.lesion_map_stride=0 --set model.lesion_map_loss=bce --set augment.crop_size=0
        --set augment.foreground_crops=0 --set data.train=data/phantoms_train)
for name in ${models//,/ }; do
  case $name in
    none | se) run "$name" configs/train/phantom_anomaly.yaml gradcam,gradcam++,layercam "${resnet[@]}" --set model.attn="$name" ;;
    cbam) run cbam configs/train/phantom_anomaly.yaml gradcam,gradcam++,layercam,cbam "${resnet[@]}" --set model.attn=cbam ;;
    vit) run vit configs/train/phantom_anomaly_vit.yaml gradcam,gradcam++,layercam,rollout,grad-rollout ;;
    *) echo "anomaly_attention.sh: unknown model '$name' (none, se, cbam, vit)" >&2; exit 2 ;;
  esac
done
/usr/bin/python3 - "$out" "$budget" <<'PY'
import json, os, sys
out, budget = sys.argv[1], sys.argv[2]
print(f"budget: {budget} per run, from scratch")
print("| backbone | parameters | train min | slice AUROC | best method | pointing game | lesion sensitivity | false regions / slice | images/s |")
print("|---|---|---|---|---|---|---|---|---|")
names = {"none": "ResNet, no attention", "se": "ResNet + SE", "cbam": "ResNet + CBAM", "vit": "ViT (16 px patches)"}
for name, label in names.items():
    try:
        if open(os.path.join(out, name + ".budget")).read().strip() != budget:
            continue
        summary = json.load(open(os.path.join(out, name + ".json")))
        run = json.load(open(os.path.join(out, name, "summary.json")))  # train_seconds: every epoch, resumed or not
        params = run["parameters"]
        methods = json.load(open(os.path.join(out, name + ".saliency.json")))["methods"]
        bench = json.load(open(os.path.join(out, name + ".bench.json")))
    except (OSError, ValueError, KeyError):
        continue  # not run (or not finished) at this budget
    best = max(methods, key=lambda m: methods[m]["pointing_game"])
    b = methods[best]
    print(f"| {label} | {params / 1e6:.2f}M | {run['train_seconds'] / 60:.1f} | {summary['test_accuracy']:.3f} | {best} | "
          f"{100 * b['pointing_game']:.1f}% | {100 * b['sensitivity']:.1f}% | {b['false_regions_per_slice']:.2f} | "
          f"{bench['images_per_s']:.1f} |")
PY
