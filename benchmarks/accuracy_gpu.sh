#!/usr/bin/env bash
# The accuracy run for a GPU: the five official ESC-50 folds of one recipe trained side by side
# (`esc50 cv --jobs 5`, the decoded audio shared through one disk cache), stopped after LIMIT
# seconds at the latest, and its figures collected into one small folder: cv.json (when every
# fold finished), log.txt, and results.tar.gz holding each fold's history.csv, metrics.json and
# config.toml (no checkpoints). tests/test_accuracy_script.py runs it end to end on the CPU with a
# tiny configuration, so that no GPU minute is spent on a typo.
#
#   benchmarks/accuracy_gpu.sh prepare     # here, once: the data -> .data/esc50/ and the wheels
#                                          # a bare GPU image lacks -> .whl/ (both git-ignored)
#   benchmarks/accuracy_gpu.sh run OUT     # there: install from .whl/, train, collect into OUT
#
# `prepare` copies the dataset (about 54 MiB) into the checkout, since ../shared does not travel
# to a GPU machine, and downloads each wheel at the version installed here (the versions the
# tests ran with: an unpinned download takes librosa 1.0 for Python 3.12), so that both travel
# with the checkout (`carry: [".data", ".whl"]`).
# Settings (environment): DATA (.data/esc50 when prepared, else ../shared/datasets/esc50),
# SOURCE (what prepare copies: ../shared/datasets/esc50), WHEELS (the packages prepare downloads),
# RECIPE (gpu), JOBS (5), DEVICE (cuda), LIMIT (540 s: 9 minutes), PYTHON (python3). Arguments
# after OUT go to `esc50 cv` as they are.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS-soundfile cffi pycparser librosa audioread soxr pooch decorator platformdirs}
LOCAL_DATA=.data/esc50

case "${1:-}" in
prepare)
    if [ ! -f "$LOCAL_DATA/meta/esc50.csv" ]; then
        mkdir -p "$(dirname "$LOCAL_DATA")"
        cp -r "${SOURCE:-../shared/datasets/esc50}" "$LOCAL_DATA.part"
        mv "$LOCAL_DATA.part" "$LOCAL_DATA"
    fi
    echo "data: $LOCAL_DATA ($(du -sh "$LOCAL_DATA" | cut -f1))"
    mkdir -p .whl
    for name in $WHEELS; do
        version=$("$PYTHON" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" \
            "$name")
        "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
            --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
            --platform manylinux2014_x86_64 -d .whl "$name==$version"
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
default_data=../shared/datasets/esc50
[ -f "$LOCAL_DATA/meta/esc50.csv" ] && default_data=$LOCAL_DATA
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
    --data "${DATA:-$default_data}" --device "${DEVICE:-cuda}" --jobs "${JOBS:-5}" \
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
