#!/bin/sh
# The four Caltech-101-10 runs of docs/results/finetune/README.md, one after another, at one budget, then their eval:
# resnet20 (CIFAR net) at 64 px, 600 iterations of batch 64, recipe finetune, on this repository's 2-core CPU.
# Usage (from the repository root): nice -n 10 sh docs/results/finetune/run_all.sh [RUNS_DIR]
set -e
DATA=../shared/data/caltech101-10
REF=../shared/data/reference-weights/akamaster-cifar10/resnet20-12fca82f.th
RUNS=${1:-runs/finetune}
LOGS=docs/results/finetune/logs
COMMON="--data folder --data-dir $DATA --recipe finetune --set image_size=64 --set iterations=600 --set eval_every=100 --no-tensorboard --overwrite"
resnet() { PYTHONPATH=$PWD/src ${PYTHON:-python} -m resnet "$@"; }
resnet train --model resnet20 $COMMON --set lr=0.1 --out $RUNS/scratch > $LOGS/scratch.log 2>&1
resnet train --init $REF $COMMON --out $RUNS/finetune > $LOGS/finetune.log 2>&1
resnet train --init $REF $COMMON --set freeze=all --set lr=0.1 --out $RUNS/probe > $LOGS/probe.log 2>&1
# The same initialisation at the from-scratch run's learning rate, backbone included (isolates the starting point).
resnet train --init $REF $COMMON --set lr=0.1 --set backbone_lr_scale=1 --out $RUNS/finetune-lr0.1 > $LOGS/finetune-lr0.1.log 2>&1
# Per-class accuracy of the four run folders on val/ (resize 73, center crop 64, as trained).
resnet eval $RUNS/scratch $RUNS/finetune $RUNS/probe $RUNS/finetune-lr0.1 --data imagenet --data-dir $DATA --split val > $LOGS/eval.txt 2>&1
