#!/usr/bin/env bash
# guard's benchmark report: every figure side by side with its baseline, in
# one run on one machine, printed as ratios (machines here are noisy; only
# ratios measured together are meaningful).
#
# usage: scripts/bench.sh [startup|scan|egress|all]   (default: all)
# Installs hyperfine/bubblewrap/ripgrep from Debian if missing (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}

need() {
  local missing=()
  for pkg in "$@"; do command -v "${pkg%%:*}" >/dev/null || missing+=("${pkg#*:}"); done
  if ((${#missing[@]})); then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
    else
      echo "missing: ${missing[*]} (apt-get install them)" >&2; exit 1
    fi
  fi
}

cargo build --release --quiet
GUARD=$PWD/target/release/guard
work=$(mktemp -d /tmp/guard-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/project"
REPORT=$work/report.tsv
: >"$REPORT"

# median of a hyperfine JSON export, in ms, for command number $2
median() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][int(sys.argv[2])]; print("%.3f" % (r["median"]*1000))' "$1" "$2"; }
row() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" >>"$REPORT"; }

bench_startup() {
  need hyperfine:hyperfine bwrap:bubblewrap
  local p=$work/project
  # bwrap with a configuration as strict as guard's default profile: all
  # namespaces, the same read-only system dirs and symlinks, the same hidden
  # files, private /tmp, /var/tmp and home, /proc with /proc/sys read-only,
  # /dev, /sys limited to CPU topology, a read-only root. (bwrap has no
  # Landlock and no seccomp here; guard applies both.)
  local bw=(bwrap --unshare-all --unshare-cgroup-try --die-with-parent
    --ro-bind /usr /usr --ro-bind /etc /etc --ro-bind-try /opt /opt)
  for l in bin sbin lib lib64 lib32 libx32; do
    [ -L /$l ] && bw+=(--symlink "$(readlink /$l)" /$l)
  done
  for f in /etc/shadow /etc/shadow- /etc/gshadow /etc/gshadow- /etc/security/opasswd /etc/ssh/ssh_host_*_key; do
    [ -e "$f" ] && bw+=(--ro-bind /dev/null "$f")
  done
  [ -d /etc/ssl/private ] && bw+=(--tmpfs /etc/ssl/private --remount-ro /etc/ssl/private)
  bw+=(--proc /proc --ro-bind /proc/sys /proc/sys
    --dev /dev --ro-bind /sys/devices/system/cpu /sys/devices/system/cpu
    --tmpfs /tmp --tmpfs /var/tmp --tmpfs "$HOME"
    --bind "$p" "$p" --remount-ro / --chdir "$p" true)
  (cd "$p" && hyperfine -N --warmup 20 --runs 300 --export-json "$work/startup.json" \
    -n bare true -n bwrap "${bw[*]}" -n guard "$GUARD run -- true" >/dev/null)
  local bare bwrap guard
  bare=$(median "$work/startup.json" 0); bwrap=$(median "$work/startup.json" 1); guard=$(median "$work/startup.json" 2)
  local who=user
  [ "$(id -u)" = 0 ] && who="root (also hides /etc's root-only files)"
  row "startup: run true, as $who" "$guard ms" "bwrap $bwrap ms" "$(python3 -c "print('%.2fx' % ($guard/$bwrap))")" "target <= 1.5x bwrap (bare true: $bare ms)"
  if [ "$(id -u)" = 0 ]; then
    # As root, also the way users run both tools: as an ordinary uid, with
    # its own home and project.
    local u=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    mkdir -p "$work/u/home" "$work/u/project"
    chown -R 65534:65534 "$work/u"
    chmod 755 "$work"
    local ubw=("${bw[@]}")
    ubw=("${ubw[@]/#$HOME/$work/u/home}")
    ubw=("${ubw[@]/#$p/$work/u/project}")
    (cd "$work/u/project" && hyperfine -N --warmup 20 --runs 300 --export-json "$work/startup-user.json" \
      -n bwrap "${u[*]} env HOME=$work/u/home ${ubw[*]}" \
      -n guard "${u[*]} env HOME=$work/u/home $GUARD run -- true" >/dev/null)
    bwrap=$(median "$work/startup-user.json" 0); guard=$(median "$work/startup-user.json" 1)
    row "startup: run true, as uid 65534" "$guard ms" "bwrap $bwrap ms" "$(python3 -c "print('%.2fx' % ($guard/$bwrap))")" "target <= 1.5x bwrap (both via setpriv)"
  fi

  # A fork/exec-heavy workload: 200 processes from a shell loop.
  local loop='i=0; while [ $i -lt 200 ]; do /bin/true; i=$((i+1)); done'
  (cd "$p" && hyperfine -N --warmup 3 --runs 20 --export-json "$work/forkexec.json" \
    -n bare "sh -c '$loop'" -n guard "$GUARD run -- sh -c '$loop'" >/dev/null)
  bare=$(median "$work/forkexec.json" 0); guard=$(median "$work/forkexec.json" 1)
  row "200 fork+exec" "$guard ms" "bare $bare ms" "$(python3 -c "print('%.2fx' % ($guard/$bare))")" "includes one guard start-up"
}

case $what in
  startup|all) bench_startup ;;
  scan|egress) ;;
  *) echo "usage: $0 [startup|scan|egress|all]" >&2; exit 2 ;;
esac

echo
echo "guard benchmark — $(date -u +%Y-%m-%d) — $(uname -r) — $(nproc) cores — $(id -un)"
echo
python3 - "$REPORT" <<'PY'
import sys
rows=[l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
hdr=["measure","guard","baseline","ratio","note"]
w=[max(len(r[i]) for r in rows+[hdr]) for i in range(5)]
print("| "+" | ".join(h.ljust(w[i]) for i,h in enumerate(hdr))+" |")
print("|"+"|".join("-"*(x+2) for x in w)+"|")
for r in rows: print("| "+" | ".join(c.ljust(w[i]) for i,c in enumerate(r))+" |")
PY

# The secrets scan (100k-file tree vs ripgrep) and egress (proxy vs direct)
# have their own harnesses; their tables follow.
if [ "$what" = scan ] || [ "$what" = all ]; then
  need hyperfine:hyperfine rg:ripgrep
  echo; echo "## secrets scan"; GUARD=$GUARD sh scripts/bench-scan.sh
fi
if [ "$what" = egress ] || [ "$what" = all ]; then
  echo; echo "## egress"; bash scripts/bench-egress.sh
fi
