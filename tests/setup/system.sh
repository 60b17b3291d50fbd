#!/usr/bin/env bash
# System prerequisites of the test suite, on Debian 12 (bookworm). Idempotent: when everything
# is in place it only checks, in a fraction of a second.
#
# - chronyd, faketime, openssl, ppp: installed with apt.
# - Debian's chromium (and a font), which the browser tests drive with Playwright
#   (executable_path=/usr/bin/chromium; Playwright's own browser download is never used).
# - Two real FTP daemons, vsftpd and proftpd (sim/ftp_daemons.py runs them in the foreground on
#   loopback, never as system services). Their packages all "Conflict: ftp-server", so apt
#   cannot install both: apt installs only their library dependencies, and the packages
#   themselves (vsftpd, proftpd-core, and proftpd-mod-crypto for mod_tls.so) are downloaded
#   and unpacked with dpkg-deb -x into .venv/debian/ (git-ignored, removed by `make clean`).
#   Nothing of them is configured, enabled or started by this script.
# - A system user for the daemons' logins (see FTP_USER/FTP_PASSWORD in sim/ftp_daemons.py), with
#   no shell, and a PAM service of our own for vsftpd (pam_unix only).
#
# Run as root to install what is missing (as in CI); as another user it only reports what is
# missing and fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dest="$repo/.venv/debian"

# Test-only account and PAM service: these values are repeated in sim/ftp_daemons.py (FTP_USER,
# FTP_PASSWORD, PAM_SERVICE), which starts the daemons for the tests and the benchmark.
ftp_user="ticgw-ftp"
ftp_password="ticgw-ftp-test"
pam_service="/etc/pam.d/ticgw-ftp"

tools=(chronyd faketime openssl useradd chpasswd chat pppd chromium)
tool_packages=(chrony faketime openssl ppp chromium fonts-dejavu-core)
daemon_packages=(vsftpd proftpd-core proftpd-mod-crypto)
# Files that must exist in $dest, and the ELF files whose libraries must all resolve.
daemon_files=(usr/sbin/vsftpd usr/sbin/proftpd usr/lib/proftpd/mod_tls.so)

# chronyd, useradd and chpasswd live in sbin, which a user's PATH may lack.
PATH="$PATH:/usr/sbin:/sbin"

log() { echo "system.sh: $*" >&2; }

# ---------------------------------------------------------------------------- checks
missing_tools() {
    local t
    for t in "${tools[@]}"; do
        command -v "$t" >/dev/null 2>&1 || echo "$t"
    done
}

# Prints what is wrong with the unpacked daemons (nothing when they are usable).
daemon_problems() {
    local f out
    for f in "${daemon_files[@]}"; do
        if [[ ! -e "$dest/$f" ]]; then
            echo "missing $dest/$f"
            continue
        fi
        out="$(ldd "$dest/$f" 2>&1 || true)"
        if grep -q "not found" <<<"$out"; then
            echo "$f: $(grep "not found" <<<"$out" | awk '{print $1}' | tr '\n' ' ')not found"
        fi
    done
}

account_problems() {
    getent passwd "$ftp_user" >/dev/null || echo "no user $ftp_user"
    [[ -f "$pam_service" ]] || echo "no PAM service $pam_service"
}

problems() {
    local t
    for t in $(missing_tools); do echo "no command $t"; done
    daemon_problems
    account_problems
}

todo="$(problems)"
if [[ -z "$todo" ]]; then
    exit 0
fi

if [[ "$(id -u)" != 0 ]]; then
    log "the test suite needs system packages; missing:"
    sed 's/^/    /' <<<"$todo" >&2
    cat >&2 <<EOF
Run this script as root (sudo bash tests/setup/system.sh), which does:
    apt-get install --no-install-recommends ${tool_packages[*]} \
        <the libraries of ${daemon_packages[*]}>
    apt-get download ${daemon_packages[*]}, unpacked with dpkg-deb -x into $dest
    useradd --system $ftp_user (password for the FTP tests), and $pam_service
EOF
    exit 1
fi

# ----------------------------------------------------------------------------- apt
export DEBIAN_FRONTEND=noninteractive
updated=no
apt_update_once() {
    if [[ "$updated" == no ]]; then
        log "apt-get update"
        apt-get update -qq
        updated=yes
    fi
}

# Libraries the daemon packages depend on: their direct Depends/PreDepends that are real
# library packages (lib*). The rest (adduser, debconf, ucf, init-system-helpers, lsb-base,
# procps, netbase, the ftp-server packages themselves) only serve installing them as services.
library_deps() {
    apt-cache depends --important "${daemon_packages[@]}" \
        | sed -n 's/^ *|\{0,1\}\(Pre\)\{0,1\}Depends: \([^< ][^ ]*\)$/\2/p' \
        | grep '^lib' | sort -u
}

if ! apt-cache show "${daemon_packages[@]}" >/dev/null 2>&1; then
    apt_update_once
fi
mapfile -t libs < <(library_deps)
if [[ "${#libs[@]}" -eq 0 ]]; then
    log "apt-cache found no dependencies for ${daemon_packages[*]}"
    exit 1
fi

wanted=("${tool_packages[@]}" "${libs[@]}" passwd)
absent=()
for p in "${wanted[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
    if [[ "$status" != "install ok installed" ]]; then
        absent+=("$p")
    fi
done
if [[ "${#absent[@]}" -gt 0 ]]; then
    apt_update_once
    log "apt-get install ${absent[*]}"
    apt-get install -y -qq --no-install-recommends "${absent[@]}" >/dev/null
fi

# ------------------------------------------------------------------ the daemons
if [[ -n "$(daemon_problems)" ]]; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    chmod 755 "$work"
    # apt downloads as its own user _apt when it can write there.
    chown _apt "$work" 2>/dev/null || true
    log "apt-get download ${daemon_packages[*]}"
    (cd "$work" && apt-get download -qq "${daemon_packages[@]}") || {
        apt_update_once
        (cd "$work" && apt-get download -qq "${daemon_packages[@]}")
    }
    rm -rf "$dest.new"
    mkdir -p "$dest.new"
    for deb in "$work"/*.deb; do
        log "unpacking $(basename "$deb") into $dest"
        dpkg-deb -x "$deb" "$dest.new"
    done
    rm -rf "$dest"
    mv "$dest.new" "$dest"
    left="$(daemon_problems)"
    if [[ -n "$left" ]]; then
        log "the unpacked daemons are not usable:"
        sed 's/^/    /' <<<"$left" >&2
        exit 1
    fi
fi

# ------------------------------------------------------------------ the account
if ! getent passwd "$ftp_user" >/dev/null; then
    log "useradd $ftp_user"
    useradd --system --user-group --create-home --home-dir "/var/lib/$ftp_user" \
        --shell /usr/sbin/nologin --comment "ticgw FTP tests" "$ftp_user"
fi
# Always (re)set: cheap, and only done when something else was missing.
echo "$ftp_user:$ftp_password" | chpasswd

if [[ ! -f "$pam_service" ]]; then
    log "writing $pam_service"
    cat >"$pam_service" <<'EOF'
# ticgw's FTP tests (tests/setup/system.sh): vsftpd's pam_service_name. Unix passwords only.
auth     required  pam_unix.so
account  required  pam_unix.so
session  required  pam_permit.so
EOF
fi

todo="$(problems)"
if [[ -n "$todo" ]]; then
    log "still missing after installing:"
    sed 's/^/    /' <<<"$todo" >&2
    exit 1
fi
log "system prerequisites ready"
