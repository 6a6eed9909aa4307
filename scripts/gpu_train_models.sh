#!/usr/bin/env bash
# Stage 1 (restorer and fixed-depth CNN) of the shipped models on a CUDA machine, with each
# model's models/<family>/train.yaml; stage 2 (the policy) then runs on the CPU (docs/gpu.md).
#
#   OUT=DIR scripts/gpu_train_models.sh [FAMILY[=RECIPE.yaml] ...]   (default: ct-lowdose mr-rician gaussian)
#
# FAMILY alone trains models/FAMILY/train.yaml in runs/gpu-FAMILY; FAMILY=RECIPE another recipe
# of that family in runs/gpu-<recipe file's stem> (scripts/recipes/ holds the ones tried).
#
# Needs torch, the repository, datasets/corpus (`durr corpus build`) and the project's other
# packages: installed, or as wheels in .whl/ (a torch-only machine; docs/gpu.md says which).
# Trains them in parallel on the one device. Writes DIR/stage1-<name>.tar.gz (the two stage-1
# checkpoints and CSV logs, to unpack under runs/) as each finishes, DIR/train.log (a line per
# stage) and DIR/train-<name>.log (each one's output); <name> is the family or the recipe's stem.
# Environment: DURR_DEVICE (default cuda), DURR_ITERATIONS (override, for a smoke test),
# DURR_STAGE_TIMEOUT (seconds per stage; a stage cut short leaves a checkpoint that
# `durr train all` resumes), DURR_STAGES (default "restorer baseline"; "restorer" alone for a
# trial whose fixed CNN would be the shipped one's), PYTHON (default python3).
set -uo pipefail
out="${OUT:-gpu_out}"
mkdir -p "$out"
log="$out/train.log"
py="${PYTHON:-python3}"
if compgen -G ".whl/*.whl" >/dev/null; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/durr-site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/durr-site:$PWD"
else
    export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1
device="${DURR_DEVICE:-cuda}"
extra=()
[ -n "${DURR_ITERATIONS:-}" ] && extra+=(--iterations "$DURR_ITERATIONS")
[ $# -gt 0 ] || set -- ct-lowdose mr-rician gaussian
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else '')" | tee -a "$log"
train_family() {  # FAMILY[=RECIPE]: restorer, then baseline, then the archive; non-zero on any failure
    local family=${1%%=*} recipe="models/${1%%=*}/train.yaml" name=${1%%=*} status=0
    if [[ $1 == *=* ]]; then recipe=${1#*=}; name=$(basename "$recipe" .yaml); fi
    local work="runs/gpu-$name" flog="$out/train-$name.log"
    for stage in ${DURR_STAGES:-restorer baseline}; do
        start=$(date +%s)
        if timeout "${DURR_STAGE_TIMEOUT:-0}" "$py" -m durr train "$stage" --family "$family" --config "$recipe" \
                --work-dir "$work" --device "$device" "${extra[@]}" >>"$flog" 2>&1; then
            echo "$name $stage: done in $(( $(date +%s) - start )) s" | tee -a "$log"
        else
            echo "$name $stage: FAILED after $(( $(date +%s) - start )) s (see $flog)" | tee -a "$log"
            status=1
        fi
    done
    local parts=()
    for part in restorer fixed_cnn; do [ -d "runs/gpu-$name/$part" ] && parts+=("gpu-$name/$part"); done
    tar czf "$out/stage1-$name.tar.gz" -C runs --exclude='*.tmp' "${parts[@]}" \
        2>>"$flog" || status=1
    return $status
}
# The families train side by side: one small restorer leaves an H200 mostly idle (kernel launches
# bound it), so four at once took 207 s where one alone takes about 100 s (docs/gpu.md).
pids=()
for family in "$@"; do
    train_family "$family" &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
