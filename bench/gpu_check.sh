#!/usr/bin/env bash
# The GPU checks of the CUDA engine in one run, for a machine with an NVIDIA GPU, numba-cuda, pytest and
# torch: the CUDA tests on the GPU itself, then the benchmark table of the README's CUDA section.
#
#   bash bench/gpu_check.sh                 # from the repository root; results in ./gpu_check/
#   OUT=/some/dir DEADLINE=300 bash bench/gpu_check.sh
#
# Stages run in order of importance, each under its own time limit and all within DEADLINE seconds (default
# 540), so that a run cut short still leaves the first ones. Results: $OUT/check.log (every stage's output
# and exit status) and $OUT/bench.jsonl (one `fastmlp bench --json` list per line).
set -u
out=${OUT:-gpu_check}
mkdir -p "$out"
log=$out/check.log
rows=$out/bench.jsonl
: > "$log"
: > "$rows"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
deadline=$((SECONDS + ${DEADLINE:-540}))

# stage LIMIT COMMAND...: run COMMAND (output to the log) for at most LIMIT seconds and what is left
stage() {
    local limit=$1 left=$((deadline - SECONDS)) t0=$SECONDS
    shift
    ((left < limit)) && limit=$left
    if ((limit < 20)); then
        echo "== skipped (time is up): $*" >> "$log"
        return
    fi
    echo "== $* (limit ${limit} s)" >> "$log"
    timeout "$limit" "$@" >> "$log" 2>&1
    echo "== exit $? after $((SECONDS - t0)) s" >> "$log"
}
# bench LIMIT OPTIONS...: one `fastmlp bench --backend cuda --json` run; its rows to bench.jsonl
bench() {
    local limit=$1
    shift
    stage "$limit" bash -c "$py -m fastmlp.cli bench --backend cuda --json $* >> '$rows'"
}

stage 30 nvidia-smi --query-gpu=name,clocks.max.sm,clocks.sm,memory.total,driver_version --format=csv
stage 60 "$py" -m fastmlp.cli info
# the comparisons with the NumPy reference and between the paths, on the GPU (not the simulator subprocess)
stage 200 "$py" -m pytest -q -p no:cacheprovider tests/test_cuda.py -k "not in_simulator"
stage 60 "$py" -m pytest -q -p no:cacheprovider tests/test_peers.py -k "cuda or gpu"
# the floors: W1 at 16384 networks against torch on the GPU (loop and batched); the wide workload's % of peak
bench 120 --workload w1 --dtype float32 --networks 16384 --reference-networks 64 --peers torch:loop,torch:vmap,torch:bmm
bench 150 --workload wide --dtype float32 --cuda-path tiled --peers torch:loop,torch:bmm
# which path wins where
bench 90 --workload wide --dtype float32 --steps 20 --cuda-path both --peers none
bench 90 --workload w2 --dtype float32 --networks 512 --cuda-path both --peers torch:bmm
bench 60 --workload w1 --dtype float32 --networks 512 --cuda-path both --peers torch:vmap,torch:bmm
bench 150 --workload w2 --dtype float32 --networks 16384 --steps 50 --cuda-path both --peers torch:bmm
echo "== done after $SECONDS s" >> "$log"
