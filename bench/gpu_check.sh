#!/usr/bin/env bash
# The GPU checks of the CUDA engine in one run, for a machine with an NVIDIA GPU, numba-cuda, pytest and
# torch: the CUDA tests on the GPU itself, the benchmark table of the README's CUDA section, the tiled path's
# tile sizes, and which path wins where.
#
#   bash bench/gpu_check.sh                 # from the repository root; results in ./gpu_check/
#   OUT=/some/dir DEADLINE=300 FROM=5 bash bench/gpu_check.sh
#
# Stages run in order of importance, each under its own time limit and all within DEADLINE seconds (default
# 540), so that a run cut short still leaves the first ones; FROM=n starts at stage n (to finish a cut run).
# Results: $OUT/check.log (every stage's command, output and exit status), $OUT/bench.jsonl (one
# `fastmlp bench --json` list per line) and $OUT/tiles.jsonl (one timed run of the tiled path per line). The
# stages after the tile sweep on the wide workload use its fastest shape (FASTMLP_CUDA_TILES, in the log).
set -u
out=${OUT:-gpu_check}
mkdir -p "$out"
log=$out/check.log
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
deadline=$((SECONDS + ${DEADLINE:-540}))
from=${FROM:-1}
n=0

# stage LIMIT COMMAND...: run COMMAND (its output to the log) for at most LIMIT seconds and what is left
stage() {
    local limit=$1 left=$((deadline - SECONDS)) t0=$SECONDS
    shift
    n=$((n + 1))
    ((n < from)) && return
    ((left < limit)) && limit=$left
    if ((limit < 20)); then
        echo "== stage $n skipped (time is up): $*" >> "$log"
        return
    fi
    echo "== stage $n: $* (limit ${limit} s)" >> "$log"
    timeout "$limit" "$@" >> "$log" 2>&1
    echo "== stage $n: exit $? after $((SECONDS - t0)) s" >> "$log"
}
# bench LIMIT OPTIONS...: one `fastmlp bench --backend cuda --json` run; its rows to bench.jsonl
bench() {
    local limit=$1
    shift
    stage "$limit" bash -c "$py -m fastmlp.cli bench --backend cuda --json $* >> '$out/bench.jsonl'"
}
# tiles LIMIT WORKLOAD NETWORKS STEPS SHAPES...: the tiled path with each tile shape; lines to tiles.jsonl
tiles() {
    local limit=$1
    shift
    stage "$limit" bash -c "$py bench/cuda_tiles.py $* >> '$out/tiles.jsonl'"
}

((from == 1)) && : > "$log" && : > "$out/bench.jsonl" && : > "$out/tiles.jsonl"
stage 30 nvidia-smi --query-gpu=name,clocks.max.sm,clocks.sm,memory.total,driver_version --format=csv
stage 60 "$py" -m fastmlp.cli info
# 3-4: the comparisons with the NumPy reference and between the paths, on the GPU (not in the simulator)
stage 180 "$py" -m pytest -q -p no:cacheprovider -m cuda
stage 60 "$py" -m pytest -q -p no:cacheprovider tests/test_peers.py -k "cuda or gpu"
# 5: the first floor: W1 at 16384 networks against torch on the GPU (loop and batched)
bench 120 --workload w1 --dtype float32 --networks 16384 --reference-networks 64 \
    --peers torch:loop,torch:vmap,torch:bmm
# 6-7: the tiled path's tile shapes (TM,TN,TK,RM,RN) on the wide workload (results do not depend on them, the
# speed does), then the second floor, the wide workload's % of peak, with the fastest shape
tiles 100 wide 64 20 64,64,16,4,4 64,64,8,8,8 128,64,8,8,8 64,32,16,4,4 32,64,16,4,4 64,64,16,8,4
best=$("$py" -c "import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
rows = [r for r in rows if r.get('workload') == 'wide' and r.get('nets_per_s')]
print(max(rows, key=lambda r: r['nets_per_s'])['tiles'] if rows else '')" "$out/tiles.jsonl" 2>/dev/null)
[ -n "$best" ] && export FASTMLP_CUDA_TILES=$best && echo "== tiles from here on: $best" >> "$log"
bench 150 --workload wide --dtype float32 --cuda-path tiled --peers torch:loop,torch:bmm
# 8: the tile shapes on W2
tiles 80 w2 512 50 64,64,16,4,4 64,64,8,8,8 64,32,16,4,4 32,64,16,4,4
# 9-13: which path wins where
bench 120 --workload w1 --dtype float32 --networks 16384 --cuda-path all --peers none
bench 90 --workload wide --dtype float32 --steps 20 --cuda-path all --peers none
bench 90 --workload w2 --dtype float32 --networks 512 --cuda-path all --peers torch:bmm
bench 60 --workload w1 --dtype float32 --networks 512 --cuda-path all --peers torch:vmap,torch:bmm
bench 150 --workload w2 --dtype float32 --networks 16384 --steps 50 --cuda-path all --peers torch:bmm
echo "== done after $SECONDS s" >> "$log"
