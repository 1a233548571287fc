#!/usr/bin/env python3
"""Pick at most CAP inputs that keep as many libFuzzer features as possible.

usage: cap_corpus.py CONTROL_FILE CAP OUT_DIR [SCAN_JSON]

CONTROL_FILE is written by `<target> -merge=1 -merge_control_file=F ...`:
every input with the features ("FT" lines) it covers. Hand-written seeds
(names that are not libFuzzer's 40-hex-digit hashes) are kept first; then a
greedy set cover with a budget: repeatedly take the input adding the most
features not yet covered (the smaller one on ties), until CAP inputs or
nothing new. SCAN_JSON, the output of `guard scan --json` over the corpus:
inputs guard flags as holding a secret are never kept (guard's own tree
must scan clean).
"""
import json
import os
import re
import shutil
import sys


def main():
    ctl, cap, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    flagged = set()
    if len(sys.argv) > 4:
        with open(sys.argv[4]) as f:
            flagged = {os.path.basename(x["path"]) for x in json.load(f)["flagged"]}
    with open(ctl) as f:
        lines = f.read().splitlines()
    n = int(lines[0])
    files = lines[2 : 2 + n]
    feats, size = {}, {}
    for line in lines[2 + n :]:
        parts = line.split()
        if parts and parts[0] == "STARTED":
            size[int(parts[1])] = int(parts[2])
        elif parts and parts[0] == "FT":
            feats[int(parts[1])] = set(map(int, parts[2:]))
    total = set().union(*feats.values()) if feats else set()
    covered, chosen, dropped = set(), [], 0
    for i in list(feats):
        name = os.path.basename(files[i])
        if name in flagged:
            del feats[i]
            dropped += 1
        elif not re.fullmatch(r"[0-9a-f]{40}", name) and len(chosen) < cap:
            chosen.append(i)
            covered |= feats.pop(i)
    while len(chosen) < cap:
        best, gain = None, 0
        for i, fs in feats.items():
            g = len(fs - covered)
            if g > gain or (g == gain and g and size.get(i, 0) < size.get(best, 0)):
                best, gain = i, g
        if best is None:
            break
        chosen.append(best)
        covered |= feats.pop(best)
    os.makedirs(out, exist_ok=True)
    for i in chosen:
        shutil.copy(files[i], out)
    print(
        f"{len(chosen)} of {n} inputs keep {len(covered)} of {len(total)} features"
        f" ({dropped} flagged by guard scan left out)",
        file=sys.stderr,
    )


main()
