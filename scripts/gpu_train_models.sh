#!/usr/bin/env bash
# Stage 1 (restorer and fixed-depth CNN) of the shipped models on a CUDA machine, with each
# model's models/<family>/train.yaml; stage 2 (the policy) then runs on the CPU (docs/gpu.md).
#
#   OUT=DIR scripts/gpu_train_models.sh [FAMILY ...]     (default: ct-lowdose mr-rician gaussian)
#
# Needs torch, the repository, datasets/corpus (`durr corpus build`) and the project's other
# packages: installed, or as wheels in .whl/ (a torch-only machine; docs/gpu.md says which).
# Writes DIR/stage1-<family>.tar.gz (the two stage-1 checkpoints and CSV logs, to unpack under
# runs/) as each family finishes, and DIR/train.log. Environment: DURR_DEVICE (default cuda),
# DURR_ITERATIONS (override, for a smoke test), DURR_STAGE_TIMEOUT (seconds per stage; a stage
# cut short leaves a checkpoint that `durr train all` resumes), PYTHON (default python3).
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
status=0
for family in "$@"; do
    work="runs/gpu-$family"
    for stage in restorer baseline; do
        start=$(date +%s)
        if timeout "${DURR_STAGE_TIMEOUT:-0}" "$py" -m durr train "$stage" --family "$family" --config "models/$family/train.yaml" \
                --work-dir "$work" --device "$device" "${extra[@]}" >>"$log" 2>&1; then
            echo "$family $stage: done in $(( $(date +%s) - start )) s" | tee -a "$log"
        else
            echo "$family $stage: FAILED after $(( $(date +%s) - start )) s (see $log)" | tee -a "$log"
            status=1
        fi
    done
    tar czf "$out/stage1-$family.tar.gz" -C runs --exclude='*.tmp' "gpu-$family/restorer" "gpu-$family/fixed_cnn" \
        2>>"$log" || status=1
done
exit $status
