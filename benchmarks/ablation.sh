#!/usr/bin/env bash
# The README's attention ablations: a recipe family as it stands, with attention none / SE / ECA / CBAM and its
# ViT counterpart, every run cut to the same number of epochs (and 1 warm-up epoch) so that they share one
# budget; then the table. Each run writes runs/ablation[_scenes]/<name>/ and its log beside it.
#   benchmarks/ablation.sh [EPOCHS [BINARY [FAMILY]]]
#     FAMILY fmnist (default): configs/train/fmnist_resnet.yaml + fmnist_vit.yaml, Fashion-MNIST accuracy
#            (EPOCHS default 6: about 30 minutes on a 2-core machine)
#     FAMILY scenes: configs/train/scenes_detect.yaml + scenes_detect_vit.yaml, COCO mAP on the scenes (make
#            data/scenes_train and data/scenes_test first, as the recipe's header says; 2 epochs take about
#            12 minutes a run here)
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-6}
bin=${2:-build/pipelines/cli/attnvision}
family=${3:-fmnist}
case "$family" in
  fmnist) resnet=configs/train/fmnist_resnet.yaml vit=configs/train/fmnist_vit.yaml out=runs/ablation ;;
  scenes) resnet=configs/train/scenes_detect.yaml vit=configs/train/scenes_detect_vit.yaml out=runs/ablation_scenes ;;
  *) echo "ablation.sh: FAMILY is fmnist or scenes, not '$family'" >&2; exit 2 ;;
esac
mkdir -p "$out"
for attn in none se eca cbam; do
  "$bin" train "$resnet" --set model.attn=$attn --set schedule.epochs=$epochs \
    --set schedule.warmup_epochs=1 --set output=$out/$attn > $out/$attn.json 2> $out/$attn.log
done
"$bin" train "$vit" --set schedule.epochs=$epochs --set schedule.warmup_epochs=1 \
  --set output=$out/vit > $out/vit.json 2> $out/vit.log
/usr/bin/python3 benchmarks/ablation_table.py "$out"
