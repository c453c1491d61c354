#!/usr/bin/env bash
# Distributed training on one node: bash tools/dist_train.sh CONFIG GPUS [train.py args]
# Several nodes: NNODES=2 NODE_RANK=0|1 MASTER_ADDR=host0 bash tools/dist_train.sh ...
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
TOOLS="$(cd "$(dirname "$0")" && pwd)"  # paths stay relative to where you run it
python -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" --master_port="$PORT" \
    "$TOOLS/train.py" "$CONFIG" --launcher pytorch "${@:3}"
