#!/usr/bin/env bash
# Build guard and install it into ~/.local/bin (or $PREFIX/bin), then check
# that this machine can build the full sandbox.
#
#   ./install.sh                 # user install
#   PREFIX=/usr/local ./install.sh
#   GUARD_APPARMOR=yes ./install.sh   # install the AppArmor profile without asking
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v cargo >/dev/null; then
  echo "install.sh: cargo not found. Install Rust from your distribution or https://rustup.rs, then rerun." >&2
  exit 1
fi

prefix=${PREFIX:-$HOME/.local}
bindir=$prefix/bin
echo "==> building guard (release)"
cargo build --release --locked
mkdir -p "$bindir"
install -m 0755 target/release/guard "$bindir/guard.tmp"
mv -f "$bindir/guard.tmp" "$bindir/guard"
echo "==> installed $bindir/guard"
case ":$PATH:" in
  *":$bindir:"*) ;;
  *) echo "    note: $bindir is not on your PATH; add it, e.g. echo 'export PATH=\"$bindir:\$PATH\"' >> ~/.bashrc" ;;
esac

# Ubuntu 23.10+ restricts unprivileged user namespaces with AppArmor. Rather
# than switching that off for the whole system, allow them for guard only.
restrict=/proc/sys/kernel/apparmor_restrict_unprivileged_userns
if [ -r "$restrict" ] && [ "$(cat "$restrict")" = 1 ]; then
  profile=/etc/apparmor.d/guard
  echo
  echo "==> this system restricts unprivileged user namespaces (AppArmor)."
  echo "    guard needs them. It can install an AppArmor profile that allows them"
  echo "    for $bindir/guard only (needs sudo): $profile"
  answer=${GUARD_APPARMOR:-}
  if [ -z "$answer" ] && [ -t 0 ]; then
    read -r -p "    install it now? [y/N] " answer
  fi
  case $answer in
    y|Y|yes)
      sudo tee "$profile" >/dev/null <<PROFILE
# Allow guard to create user namespaces (its sandbox). Installed by guard's install.sh.
abi <abi/4.0>,
include <tunables/global>

profile guard $bindir/guard flags=(unconfined) {
  userns,
  include if exists <local/guard>
}
PROFILE
      sudo apparmor_parser -r "$profile"
      echo "    installed and loaded $profile" ;;
    *)
      echo "    skipped. To install it later: GUARD_APPARMOR=yes ./install.sh" ;;
  esac
fi

echo
echo "==> guard check"
if "$bindir/guard" check; then
  echo
  echo "Ready. Try it in a project directory:  guard run -- bash"
else
  echo
  echo "guard cannot build its full sandbox on this machine; the lines marked MISSING above say how to fix each layer."
  exit 1
fi
