#!/usr/bin/env bash
# Run every fuzz target for SECONDS each (default 60), one at a time, with
# one libFuzzer job, on the stable toolchain (see README.md).
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Each target first replays its saved regressions (fuzz/regressions/<t>/),
# then fuzzes a scratch copy of its corpus (fuzz/corpus/<t>/, plus seeds
# built at run time by fuzz/seeds/<t>.sh) with its dictionary
# (fuzz/dicts/<t>.dict). Crashes are written to fuzz/artifacts/<t>/.
# Exit status: 0 when no target failed.
#
# Environment:
#   MERGE=1    minimize the grown corpus (at most CAP inputs, default 200,
#              keeping the most coverage) and write it back to
#              fuzz/corpus/<t>/ (after a long local run; commit it)
#   GUARD_FUZZ_ALLOW_UNFLAGGED_COPIES=1
#              secret_content: tolerate a flagged value that also occurs,
#              unflagged, elsewhere in the same file (see README.md)
#   GUARD_BIN  guard binary used to keep flagged inputs out of the plain
#              corpora on MERGE (default: ../target/release/guard)
#   NICE       niceness of the fuzzer (default 10)
set -euo pipefail

secs=${1:-60}
shift || true
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
all=(profile_toml http_head socks5 tls_sni dns_query secret_content)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi

export RUSTC_BOOTSTRAP=1 # cargo-fuzz passes -Z flags; the toolchain is stable
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run.sh: cargo-fuzz is missing: cargo install cargo-fuzz" >&2
    exit 2
fi
cargo fuzz build -O -a
host=$(rustc -vV | sed -n 's/^host: //p')
bindir=$here/target/$host/release

# Corpora of targets whose inputs are secret-shaped are stored as a tarball
# (binary: guard's own scanner and forges' secret scanners skip it).
unpack() { # SRC_DIR DEST_DIR
    mkdir -p "$2"
    [ -d "$1" ] || return 0
    local f
    for f in "$1"/*; do
        [ -f "$f" ] || continue
        case $f in
        *.tar.gz) tar -xzf "$f" -C "$2" ;;
        *.md) ;;
        *) cp "$f" "$2/" ;;
        esac
    done
}

failed=()
for t in "${targets[@]}"; do
    bin=$bindir/$t
    work=$here/target/fuzz-work/$t
    rm -rf "$work"
    mkdir -p "$work/corpus" "$work/regressions" "$here/artifacts/$t"
    echo "== $t: ${secs}s"

    unpack "regressions/$t" "$work/regressions"
    if [ -n "$(ls -A "$work/regressions")" ]; then
        if ! "$bin" "$work"/regressions/* >"$work/regressions.log" 2>&1; then
            echo "!! $t: a saved regression still fails:"
            grep -A2 -m1 'panicked at' "$work/regressions.log" || tail -5 "$work/regressions.log"
            failed+=("$t(regression)")
        fi
    fi

    unpack "corpus/$t" "$work/corpus"
    if [ -x "seeds/$t.sh" ]; then "seeds/$t.sh" "$work/corpus"; fi
    dict=()
    if [ -f "dicts/$t.dict" ]; then dict=("-dict=$here/dicts/$t.dict"); fi
    rc=0
    (cd "$work" && nice -n "${NICE:-10}" "$bin" corpus "${dict[@]}" \
        -max_total_time="$secs" -jobs=1 -workers=1 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$here/artifacts/$t/" \
        >"$work/run.log" 2>&1) || rc=$?
    log=$work/fuzz-0.log
    [ -f "$log" ] || log=$work/run.log
    grep -E '^stat::number_of_executed_units|^#[0-9]+ +DONE' "$log" || true
    if [ "$rc" -ne 0 ]; then
        echo "!! $t failed (exit $rc); log: $log"
        grep -A2 -m1 'panicked at' "$log" || tail -20 "$log"
        grep -m1 'Test unit written to' "$log" || true
        failed+=("$t")
        continue
    fi

    if [ "${MERGE:-0}" = 1 ]; then
        # Features per input (libFuzzer's merge pass), then at most CAP
        # inputs that keep the most of them (cap_corpus.py).
        rm -rf "$work/merged" "$work/null"
        mkdir -p "$work/merged" "$work/null"
        "$bin" -merge=1 -merge_control_file="$work/merge.ctl" "$work/null" "$work/corpus" \
            >"$work/merge.log" 2>&1
        scan=()
        tarball=0
        if [ -f "corpus/$t/corpus.tar.gz" ] || [ -x "seeds/$t.sh" ]; then tarball=1; fi
        guard_bin=${GUARD_BIN:-$here/../target/release/guard}
        [ -x "$guard_bin" ] || guard_bin=$here/../target/debug/guard
        if [ "$tarball" = 0 ] && [ -x "$guard_bin" ]; then
            # Plain corpora must scan clean: leave out what guard flags.
            "$guard_bin" scan --json "$work/corpus" >"$work/scan.json" 2>/dev/null || true
            scan=("$work/scan.json")
        elif [ "$tarball" = 0 ]; then
            echo "   (no guard binary: corpus/$t not checked with guard scan; cargo build --release)"
        fi
        python3 cap_corpus.py "$work/merge.ctl" "${CAP:-200}" "$work/merged" "${scan[@]}"
        if [ "$tarball" = 1 ]; then
            mkdir -p "corpus/$t"
            tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
                -C "$work/merged" -cf - . | gzip -n -9 >"corpus/$t/corpus.tar.gz"
        else
            rm -rf "corpus/$t"
            mkdir -p "corpus/$t"
            cp "$work"/merged/* "corpus/$t/"
        fi
        echo "   corpus/$t: $(ls "$work/merged" | wc -l) inputs, $(cat "$work"/merged/* | wc -c) bytes"
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
echo "all targets passed"
