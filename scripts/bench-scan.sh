#!/bin/sh
# Benchmark guard's secrets scan against ripgrep on a generated tree.
#
#   scripts/bench-scan.sh [DIR]      (default DIR: /tmp/guard-bench)
#
# Generates (once) a tree of $FILES files (default 100000): source code,
# configs, docs, some binary and some huge files, a few hundred secrets.
# Then times, side by side with hyperfine:
#   guard cold  `guard scan` with an empty cache (every file read and scanned)
#   guard warm  `guard scan` with the cache of the previous run
#   rg          ripgrep over the same files with the same patterns: hidden
#               and ignored files included (-uu), binary files skipped,
#               the same 2 MiB size limit, one regex per rule
# and prints the ratios. Targets: cold <= 1.5x rg, warm <= 50 ms.
# With GUARD_BEFORE=/path/to/another/guard, that build's warm scan runs in
# the same hyperfine session (with its own cache), for a before/after.
#
# Needs python3 (generator), hyperfine and ripgrep:
#   apt-get install -y hyperfine ripgrep
set -eu

DIR=${1:-/tmp/guard-bench}
FILES=${FILES:-100000}
GUARD=${GUARD:-$(dirname "$0")/../target/release/guard}
RUNS=${RUNS:-5}

for tool in python3 hyperfine rg; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "bench-scan: $tool is missing (apt-get install -y hyperfine ripgrep python3)" >&2
    exit 1
  }
done
[ -x "$GUARD" ] || {
  echo "bench-scan: $GUARD not found; run: cargo build --release" >&2
  exit 1
}
GUARD=$(realpath "$GUARD")

if [ ! -f "$DIR/.generated-$FILES" ]; then
  echo "generating $FILES files under $DIR ..."
  rm -rf "$DIR"
  mkdir -p "$DIR"
  python3 - "$DIR" "$FILES" <<'PY'
import os, random, sys, uuid

root, total = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
words = ("let const self value config parse token request response error result "
         "user name path file buffer index count len map list auth handler client "
         "server session password_hash secret_store key cache retry timeout async "
         "await return match struct impl fn def class import from export module").split()

def code_line():
    w = rnd.sample(words, 4)
    forms = [
        f"    let {w[0]}_{w[1]} = {w[2]}.{w[3]}(&{w[0]})?;",
        f"    {w[0]} = {w[1]}_{w[2]}({w[3]}, timeout=30)",
        f"  const {w[0]}{w[1].title()} = await {w[2]}.{w[3]}();",
        f"    // {' '.join(rnd.sample(words, 8))}",
        f"    if {w[0]}.{w[1]} == {w[2]} {{ return Err({w[3]}); }}",
        f"{w[0]}_{w[1]}: {rnd.randint(1, 9999)}",
        f"    \"{w[0]}\": \"{w[1]} {w[2]}\",",
        "",
    ]
    return rnd.choice(forms)

def text(size):
    out, n = [], 0
    while n < size:
        l = code_line()
        out.append(l)
        n += len(l) + 1
    return "\n".join(out) + "\n"

def rand_alnum(n):
    return "".join(rnd.choice("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(n))

# Secret shapes, assembled so this script holds no literal token.
def secret_line():
    kind = rnd.randrange(4)
    if kind == 0:
        return "RAILWAY" + "_TOKEN=" + str(uuid.UUID(int=rnd.getrandbits(128)))
    if kind == 1:
        return "GITHUB = \"" + "gh" + "p_" + rand_alnum(36) + "\""
    if kind == 2:
        return "  pass" + "word: \"" + rand_alnum(20) + "\""
    return "api" + "_key = '" + rand_alnum(32) + "'"

exts = [".rs"] * 6 + [".py"] * 5 + [".js"] * 5 + [".ts"] * 4 + [".go"] * 3 + \
       [".md"] * 3 + [".json"] * 2 + [".yaml"] * 2 + [".toml", ".txt", ".sh", ".html", ".css"]
per_dir = 100
for i in range(total):
    d = os.path.join(root, f"pkg{i // 10000:02d}", f"mod{(i // per_dir) % 100:02d}")
    if i % per_dir == 0:
        os.makedirs(d, exist_ok=True)
    r = rnd.random()
    if r < 0.03:  # binary (images, archives)
        path = os.path.join(d, f"asset{i}.png")
        with open(path, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n\x00" + os.urandom(rnd.randint(500, 60000)))
        continue
    if r < 0.0303:  # huge logs and dumps: skipped by size
        path = os.path.join(d, f"dump{i}.log")
        with open(path, "w") as f:
            f.write(text(3 << 20))
        continue
    size = int(min(rnd.lognormvariate(8.0, 1.0), 400000))  # median ~3 KiB
    body = text(size)
    if rnd.random() < 0.003:
        lines = body.split("\n")
        lines.insert(rnd.randrange(len(lines)), secret_line())
        body = "\n".join(lines)
    path = os.path.join(d, f"file{i}{rnd.choice(exts)}")
    with open(path, "w") as f:
        f.write(body)
    if rnd.random() < 0.0005:
        with open(os.path.join(d, ".env"), "w") as f:
            f.write("DATABASE" + "_URL=postgres://app:" + rand_alnum(16) + "@db/app\n")
PY
  touch "$DIR/.generated-$FILES"
  # The scan does not cache files changed in the last 2 s.
  sleep 3
fi

nfiles=$(find "$DIR" -type f | wc -l)
mb=$(du -sm "$DIR" | cut -f1)
echo "tree: $DIR, $nfiles files, ${mb} MiB; $(nproc) CPUs"

# rg gets one regex per content rule, from guard itself, so the two search
# for the same things.
PATTERNS=$(mktemp)
trap 'rm -f "$PATTERNS"' EXIT
"$GUARD" scan --rules --json | python3 -c '
import json, re, sys
for r in json.load(sys.stdin)["content_rules"]:
    # rg joins the patterns into one regex: group names must not repeat.
    print(re.sub(r"\(\?P<[a-z]+>", "(?:", r["grep"]))' >"$PATTERNS"

CACHE=$(mktemp -d)
export XDG_CACHE_HOME="$CACHE"
OUT=$(mktemp)
set --
if [ -n "${GUARD_BEFORE:-}" ]; then
  BEFORE_CACHE=$(mktemp -d)
  set -- --command-name "guard warm (before)" \
    --prepare "env XDG_CACHE_HOME=$BEFORE_CACHE $GUARD_BEFORE scan $DIR" \
    "env XDG_CACHE_HOME=$BEFORE_CACHE $GUARD_BEFORE scan $DIR"
fi
# One --prepare per command (a single one would apply to all of them).
hyperfine --warmup 1 --runs "$RUNS" --output=pipe --export-json "$OUT" \
  --command-name "guard cold" --prepare "rm -rf $CACHE/guard" "$GUARD scan $DIR" \
  --command-name "guard warm" --prepare "$GUARD scan $DIR" "$GUARD scan $DIR" \
  "$@" \
  --command-name "rg" --prepare true "rg -uu --no-messages --max-filesize 2M -n -f $PATTERNS $DIR"
python3 - "$OUT" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
r = {x["command"]: x["mean"] for x in results}
# CPU time (user + system) is steadier than wall time on a shared machine.
cpu = {x["command"]: x["user"] + x["system"] for x in results}
cold, warm, rg = r["guard cold"], r["guard warm"], r["rg"]
print(f"\nguard cold: {cold*1000:8.1f} ms   ({cold/rg:.2f}x rg; target <= 1.5x)")
print(f"guard warm: {warm*1000:8.1f} ms   ({warm/rg:.3f}x rg; {rg/warm:.0f}x faster; target <= 50 ms; cpu {cpu['guard warm']*1000:.1f} ms)")
if "guard warm (before)" in r:
    before = r["guard warm (before)"]
    b_cpu = cpu["guard warm (before)"]
    print(f"  before:   {before*1000:8.1f} ms   (now {warm/before:.2f}x of it; cpu {b_cpu*1000:.1f} ms, now {cpu['guard warm']/b_cpu:.2f}x)")
print(f"rg:         {rg*1000:8.1f} ms")
PY
"$GUARD" scan "$DIR" | tail -1
rm -rf "$CACHE" "$OUT" ${BEFORE_CACHE:+"$BEFORE_CACHE"}
