#!/usr/bin/env bash
# Make Torque/PBS commands (qsub, qstat, qdel, pbsnodes) available for param_search's live
# Torque tests, using Slurm's Torque-compatible wrappers (Debian package slurm-wlm-torque)
# on top of the local Slurm cluster of scripts/start-slurm.sh.
#
#   scripts/start-torque.sh         # install/unpack if missing; last line of stdout: the bin dir
#   PATH="$(scripts/start-torque.sh | tail -n1):$PATH" qstat -f
#
# slurm-wlm-torque conflicts with gridengine-client (both own /usr/bin/qsub), so it is not
# installed: it is unpacked with `dpkg -x` into a private prefix, and only put first on PATH
# by whoever wants Torque commands. Its qsub runs sbatch (etc.) from its own folder, so the
# Slurm commands are linked next to it. Its Perl dependencies are installed normally.
#
# Idempotent. Exit codes: 0 ready, 2 cannot run here (not root or no apt-get/dpkg), 1 anything
# else failed. It does not start Slurm: run scripts/start-slurm.sh for that.
#
# Environment:
#   PS_TORQUE_DIR   the prefix (default /var/lib/param-search-torque)
set -euo pipefail

PREFIX=${PS_TORQUE_DIR:-/var/lib/param-search-torque}
BIN=$PREFIX/usr/bin
PERL_DEPS=(libslurm-perl libslurmdb-perl libswitch-perl)
TORQUE_COMMANDS=(qsub qstat qdel pbsnodes)
SLURM_COMMANDS=(sbatch squeue scancel scontrol sacct salloc srun sinfo)

die() { echo "start-torque: $*" >&2; exit 1; }
cannot() { echo "start-torque: cannot run here: $*" >&2; exit 2; }
log() { [[ -n ${PS_TORQUE_QUIET:-} ]] || echo "start-torque: $*" >&2; }

[[ $(id -u) -eq 0 ]] || cannot "must be run as root (it installs packages)"
command -v dpkg-query >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1 || cannot "dpkg not available"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

ready() {
    local c
    for c in "${TORQUE_COMMANDS[@]}" "${SLURM_COMMANDS[@]}"; do
        [[ -x $BIN/$c ]] || return 1
    done
    for c in "${PERL_DEPS[@]}"; do installed "$c" || return 1; done
    perl -c "$BIN/qstat" >/dev/null 2>&1
}

if ready; then
    echo "$BIN"
    exit 0
fi

mkdir -p "$PREFIX"
exec 9>"$PREFIX/.start.lock"
flock -w 120 9 || die "another start-torque.sh holds $PREFIX/.start.lock"

# ---------------------------------------------------------------- Perl dependencies
missing=()
for p in "${PERL_DEPS[@]}"; do installed "$p" || missing+=("$p"); done
if ((${#missing[@]})); then
    command -v apt-get >/dev/null 2>&1 || cannot "apt-get not available and packages missing: ${missing[*]}"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
        apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null || die "apt-get update failed"
        apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
            die "apt-get install ${missing[*]} failed"
    fi
fi

# ---------------------------------------------------------------- unpack slurm-wlm-torque
if [[ ! -x $BIN/qsub ]]; then
    command -v apt-get >/dev/null 2>&1 || cannot "apt-get not available to download slurm-wlm-torque"
    download=$(mktemp -d)
    trap 'rm -rf "$download"' EXIT
    log "downloading slurm-wlm-torque"
    if ! (cd "$download" && apt-get download -qq slurm-wlm-torque >/dev/null 2>&1); then
        apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null || die "apt-get update failed"
        (cd "$download" && apt-get download -qq slurm-wlm-torque >/dev/null) ||
            die "apt-get download slurm-wlm-torque failed"
    fi
    deb=$(ls "$download"/slurm-wlm-torque_*.deb 2>/dev/null | head -n1)
    [[ -n $deb ]] || die "apt-get download slurm-wlm-torque left no .deb"
    log "unpacking $(basename "$deb") into $PREFIX"
    dpkg -x "$deb" "$PREFIX" || die "dpkg -x $deb failed"
fi
# The package may name its scripts qsub.slurm etc. (Debian alternatives): expose plain names.
for c in "${TORQUE_COMMANDS[@]}"; do
    if [[ ! -e $BIN/$c ]]; then
        for alt in "$BIN/$c.slurm" "$BIN/$c.pl"; do
            [[ -e $alt ]] && ln -sf "$(basename "$alt")" "$BIN/$c" && break
        done
    fi
    [[ -x $BIN/$c ]] || die "$c not found in $BIN after unpacking slurm-wlm-torque"
done

# ---------------------------------------------------------------- Slurm commands next to them
for c in "${SLURM_COMMANDS[@]}"; do
    real=$(PATH=${PATH//$BIN:/} command -v "$c") || die "Slurm command $c not found: install Slurm (scripts/start-slurm.sh)"
    [[ $(readlink "$BIN/$c" 2>/dev/null) == "$real" ]] || ln -sfn "$real" "$BIN/$c"
done

perl -c "$BIN/qstat" >/dev/null 2>&1 || die "qstat does not compile: $(perl -c "$BIN/qstat" 2>&1 | head -n3)"
log "Torque commands ready in $BIN"
echo "$BIN"
