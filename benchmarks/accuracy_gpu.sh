#!/usr/bin/env bash
# The accuracy run for a GPU: the five official ESC-50 folds of one recipe trained side by side
# (`esc50 cv --jobs 5`, the decoded audio shared through one disk cache), stopped after LIMIT
# seconds at the latest, and its figures collected into one small folder: cv.json (when every
# fold finished), log.txt, and results.tar.gz holding each fold's history.csv, metrics.json and
# config.toml (no checkpoints). tests/test_accuracy_script.py runs it end to end on the CPU with a
# tiny configuration, so that no GPU minute is spent on a typo.
#
#   benchmarks/accuracy_gpu.sh prepare     # here, once: the wheels a bare GPU image lacks -> .whl/
#   benchmarks/accuracy_gpu.sh run OUT     # there: install from .whl/, train, collect into OUT
#
# Settings (environment): DATA (../shared/datasets/esc50), RECIPE (gpu), JOBS (5), DEVICE (cuda),
# LIMIT (540 s: 9 minutes), PYTHON (python3). Arguments after OUT go to `esc50 cv` as they are.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS="soundfile cffi pycparser librosa audioread soxr pooch decorator platformdirs"

case "${1:-}" in
prepare)
    mkdir -p .whl
    for name in $WHEELS; do
        "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
            --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
            --platform manylinux2014_x86_64 -d .whl "$name"
    done
    ls .whl
    exit 0 ;;
run)
    [ $# -ge 2 ] || { echo "usage: $0 run OUT [esc50 cv arguments]" >&2; exit 2; }
    out=$(realpath -m "$2"); shift 2 ;;
*)
    echo "usage: $0 prepare | run OUT [esc50 cv arguments]" >&2; exit 2 ;;
esac

mkdir -p "$out"
work=$(mktemp -d)
if ! "$PYTHON" -c "import esc50.commands.crossval" 2>/dev/null; then
    site="$work/site"
    if [ -d .whl ]; then
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$site" .whl/*.whl
    fi
    "$PYTHON" -m pip install -q --no-index --no-deps --no-build-isolation --target "$site" .
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
started=$(date +%s)
status=0
timeout --signal=INT "${LIMIT:-540}" "$PYTHON" -m esc50 cv --recipe "${RECIPE:-gpu}" \
    --data "${DATA:-../shared/datasets/esc50}" --device "${DEVICE:-cuda}" --jobs "${JOBS:-5}" \
    --name accuracy --output-dir "$work/runs" --set audio_cache="$work/audio" --no-progress \
    "$@" 2>&1 | tee "$out/log.txt" || status=$?
echo "esc50 cv exit status $status after $(( $(date +%s) - started )) s (limit ${LIMIT:-540} s)" \
    | tee -a "$out/log.txt"
runs="$work/runs/accuracy"
[ -f "$runs/cv.json" ] && cp "$runs/cv.json" "$out/cv.json"
files=$(cd "$runs" 2>/dev/null && ls -d fold-*/history.csv fold-*/metrics.json \
    fold-*/config.toml 2>/dev/null || true)
[ -n "$files" ] && (cd "$runs" && tar -czf "$out/results.tar.gz" $files)
rm -rf "$work"
exit "$status"
