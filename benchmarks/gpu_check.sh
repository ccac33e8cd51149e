#!/usr/bin/env bash
# The first thing to run on a CUDA machine: are the CUDA paths of nas-llv ready, and how fast?
#
#   benchmarks/gpu_check.sh            (from the repository root, in its virtual environment)
#
# 1. installs nni and lpips from ./wheels (pip install --no-index --find-links wheels) where they
#    are not installed and the folder is there (a machine without network access);
# 2. runs the tests marked cuda (pytest -m cuda: the commands on the device, resume on CUDA,
#    data-parallel NCCL runs on one GPU and on two where present);
# 3. runs benchmarks/gpu_figures.py (a training step read every step and deferred; the search iteration eager, deferred, compiled and graphed, first order and finite
#    differences: seconds, kernel launches and peak memory per iteration, the projected
#    recipes/ruas_lol.yaml search time) and benchmarks/inference.py with --device cuda, few repeats,
#    and the README's session on the device: demo search (its wall time), latency cost table, train,
#    eval per engine;
# 4. prints one Markdown table: each check, passed or not, its time, then the figures of step 3;
#    the outputs are in $LOGS. Sized for at most 8 minutes on one H100/H200.
# Without CUDA, steps 2-3 print "skipped: no CUDA" rows (the script then takes seconds; CI runs it).
# Exit status: 0 when nothing failed. PYTHON picks the interpreter (default: python),
# GPU_CHECK_PACKAGES the packages of step 1 (default: nni lpips), CHECK_TIMEOUT the seconds one
# check may run before it is stopped and marked failed (default 600).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
PACKAGES=${GPU_CHECK_PACKAGES:-nni lpips}
CHECK_TIMEOUT=${CHECK_TIMEOUT:-600}
LOGS=${LOGS:-$(mktemp -d -t gpu_check.XXXXXX)}
mkdir -p "$LOGS"
ROWS=()
FAILED=0

# check NAME CMD...: run CMD, its output into $LOGS, one table row
check() {
    local name=$1 log status start end
    shift
    log="$LOGS/$(echo "$name" | tr -c 'A-Za-z0-9' '_').txt"
    start=$(date +%s.%N)
    if timeout "$CHECK_TIMEOUT" "$@" >"$log" 2>&1; then
        status=passed
    else
        status="FAILED (exit $?; see $log)"
        FAILED=1
        tail -n 20 "$log" >&2
    fi
    end=$(date +%s.%N)
    ROWS+=("| $name | $status | $(awk "BEGIN {printf \"%.1f\", $end - $start}") |")
}

skip() { ROWS+=("| $1 | skipped: $2 | 0.0 |"); }

# what is here, in one interpreter start: torch's version, the CUDA devices, the missing packages
INFO_PY='
import importlib.util, sys
import torch
cuda = torch.cuda.is_available()
print(torch.__version__)
print(", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) if cuda else "")
print(" ".join(p for p in sys.argv[1:] if importlib.util.find_spec(p) is None))
'
# shellcheck disable=SC2086  # PACKAGES is a list of words
if ! INFO=$("$PY" -c "$INFO_PY" $PACKAGES); then
    echo "gpu_check: $PY cannot import torch" >&2
    exit 1
fi
TORCH=$(sed -n 1p <<<"$INFO")
DEVICE=$(sed -n 2p <<<"$INFO")
MISSING=$(sed -n 3p <<<"$INFO")

# 1. the heavy dependencies, from local wheels when they are missing
for pkg in $PACKAGES; do
    if [[ " $MISSING " != *" $pkg "* ]]; then
        skip "install $pkg" "installed"
    elif [ -d wheels ]; then
        check "install $pkg" "$PY" -m pip install --no-index --find-links wheels "$pkg"
    else
        ROWS+=("| install $pkg | FAILED (not installed, no wheels/ folder) | 0.0 |")
        FAILED=1
    fi
done

if [ -n "$DEVICE" ]; then
    # 2. the tests marked cuda; 3. the two benchmarks on the device
    check "pytest -m cuda" "$PY" -m pytest -q -m cuda tests
    # at most FIGURES_TIMEOUT seconds (default 280): the eager figures come first and stay if it is stopped
    CHECK_TIMEOUT=${FIGURES_TIMEOUT:-280} check "gpu_figures.py --device cuda" "$PY" benchmarks/gpu_figures.py \
        --device cuda --iters 2 --warmup 2 --profile 1 --rows "$LOGS/figures.md"
    check "inference.py --device cuda" "$PY" benchmarks/inference.py --device cuda --repeats 3 --rounds 1
    # 3b. the README's session on the device: the demo search, the latency cost table, retraining,
    # evaluation with each engine (the runs go under $LOGS/runs; the cost table into $LOGS)
    RUNS="$LOGS/runs"
    check "search ruas_demo (cuda)" "$PY" -m nas_llv search recipes/ruas_demo.yaml device=cuda --output "$RUNS/demo"
    check "search, latency cost table (cuda)" "$PY" -m nas_llv search recipes/ruas_demo.yaml device=cuda \
        search.epochs=1 search.cost.type=latency --output "$RUNS/cost"
    cp "$RUNS"/cost/*/cost_table.csv "$LOGS/cost_table_cuda.csv" 2>/dev/null
    RUN=$(ls -d "$RUNS"/demo/*/ 2>/dev/null | head -n 1)
    if [ -n "$RUN" ]; then
        check "train ruas_demo_train (cuda)" "$PY" -m nas_llv train "$RUN" --recipe recipes/ruas_demo_train.yaml \
            device=cuda --output "$RUNS/train"
    fi
    MODEL=$(ls "$RUNS"/train/*/model.pt 2>/dev/null | head -n 1)
    if [ -n "$MODEL" ] && [ -d ../shared/data/mit5 ]; then
        for engine in torch fast compiled; do
            check "eval mit5 --engine $engine (cuda)" "$PY" -m nas_llv eval "$MODEL" --data ../shared/data/mit5 \
                --device cuda --engine "$engine" --lpips-net none -o "$LOGS/eval-$engine"
        done
    else
        skip "eval mit5 (cuda)" "no trained model or no ../shared/data/mit5"
    fi
else
    DEVICE="none (CPU only)"
    for name in "pytest -m cuda" "gpu_figures.py --device cuda" "inference.py --device cuda" "the session (cuda)"; do
        skip "$name" "no CUDA"
    done
fi

# 4. the table
echo "GPU check, $(date -u +%Y-%m-%dT%H:%MZ), torch $TORCH, CUDA devices: $DEVICE"
echo
echo "| check | result | seconds |"
echo "| --- | --- | --- |"
printf '%s\n' "${ROWS[@]}"
# the figures of gpu_figures.py, rows of the same table (| figure | value | seconds |)
[ -s "$LOGS/figures.md" ] && cat "$LOGS/figures.md"
echo
echo "outputs: $LOGS"
exit $FAILED
