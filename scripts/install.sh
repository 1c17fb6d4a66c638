#!/usr/bin/env bash
# Installs fleet-upload on a vehicle and runs the agent (`master run`) as the systemd service fleet-agent.
# Run as root from a checkout. Safe to run again: what is already in place is left alone, and the service
# is restarted (new binaries, unit or agent.env) or reloaded (new configuration) only when something changed.
#
#   scripts/install.sh [--config FILE] [--prefix DIR] [--config-dir DIR] [--state-dir DIR] [--build-dir DIR]
#                      [--no-build] [--no-systemd] [--no-apt] [--skip-check]
#
#   --config FILE      the agent configuration to install as CONFIG_DIR/agent.yaml; default: keep the one
#                      there, else copy examples/agent.yaml (which you then edit)
#   --prefix DIR       binaries go to DIR/bin, the rendered unit to DIR/share/fleet-upload (default /usr/local)
#   --config-dir DIR   agent.yaml and agent.env (default /etc/fleet-upload)
#   --state-dir DIR    the agent's state directory (default /var/lib/fleet-upload)
#   --build-dir DIR    SwiftPM's build directory, i.e. its --scratch-path (default .build in the checkout)
#   --no-build         install the binaries already in BUILD_DIR/release
#   --no-systemd       install files only; do not install, enable or start the unit. Automatic when
#                      systemctl is missing or systemd is not running (PID 1 is something else)
#   --no-apt           do not apt-get the runtime libraries (libpq5, libcurl4, libssl3, libzstd1, libxml2)
#   --skip-check       install the configuration even if `master run --check` refuses it (with a warning)
#
# Steps: runtime libraries (apt) → `swift build -c release --static-swift-stdlib` (the Swift runtime and
# Foundation are linked in, so a vehicle needs no Swift toolchain, only libpq, libcurl, libcrypto, libzstd, libxml2) →
# upload, retry, trigger, master into PREFIX/bin → CONFIG_DIR (0750), STATE_DIR (0750), an agent.env
# template (0600) → `master run --config … --check` on the new configuration before it replaces the old one
# → the unit into /etc/systemd/system, daemon-reload, enable --now.
#
# Exit codes: 0 installed, 2 bad usage or a configuration the check refuses, 3 environment unusable (not
# root, no swift, missing libraries, the check cannot reach the database or the bucket, the unit fails).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
unit_name=fleet-agent.service
unit_dir=/etc/systemd/system
binaries=(upload retry trigger master)
runtime_packages=(libpq5 libcurl4 libssl3 libzstd1 libxml2)

prefix=/usr/local
config_dir=/etc/fleet-upload
state_dir=/var/lib/fleet-upload
build_dir=$repo/.build
config=
build=yes
systemd=yes
apt=yes
check=yes

me=install
# shellcheck source=scripts/lib/common.sh
source "$(dirname "$0")/lib/common.sh"

# An absolute path for DIR or FILE given relative to where the script was started.
absolute() { realpath -m -- "$1"; }

while [ $# -gt 0 ]; do
    case "$1" in
    --prefix | --config-dir | --state-dir | --build-dir | --config)
        if [ $# -lt 2 ] || [ -z "$2" ]; then die 2 "$1 needs a value"; fi
        case "$1" in
        --prefix) prefix=$(absolute "$2") ;;
        --config-dir) config_dir=$(absolute "$2") ;;
        --state-dir) state_dir=$(absolute "$2") ;;
        --build-dir) build_dir=$(absolute "$2") ;;
        --config) config=$(absolute "$2") ;;
        esac
        shift 2
        ;;
    --no-build) build=no; shift ;;
    --no-systemd) systemd=no; shift ;;
    --no-apt) apt=no; shift ;;
    --skip-check) check=no; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die 2 "unknown option: $1 (see scripts/install.sh --help)" ;;
    esac
done
[ -z "$config" ] || [ -f "$config" ] || die 2 "--config $config: no such file"
for d in "$prefix" "$config_dir" "$state_dir"; do
    case "$d" in *[[:space:]]*) die 2 "$d: a path with white space cannot go into the unit's ExecStart" ;; esac
done

if [ "$systemd" = yes ]; then
    if ! command -v systemctl >/dev/null; then
        systemd=no
        say "systemctl not found: installing files only, no service (as with --no-systemd)"
    elif [ ! -d /run/systemd/system ]; then
        systemd=no
        say "systemd is not running (PID 1 is $(cat /proc/1/comm 2>/dev/null || echo unknown)): installing files only, no service (as with --no-systemd)"
    fi
fi
if [ "$(id -u)" != 0 ] && { [ "$systemd" = yes ] || [ "$apt" = yes ]; }; then
    die 3 "run as root (sudo scripts/install.sh …); only --no-systemd --no-apt installs work without it"
fi

# ---- runtime libraries -------------------------------------------------------------------------------
# The binaries link libpq, libcurl, libcrypto, libzstd and libxml2 (FoundationXML's parser) dynamically, besides the C and
# C++ runtime every Debian has. Each is looked for by its soname, so a system where they came from elsewhere
# (Ubuntu 24.04's libcurl4t64, libssl3t64) passes too.
missing=()
ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)
have_library() { "$ldconfig" -p 2>/dev/null | grep -q "[[:space:]]$1 "; }
have_library libpq.so.5 || missing+=(libpq5)
have_library libcurl.so.4 || missing+=(libcurl4)
have_library libcrypto.so.3 || missing+=(libssl3)
have_library libzstd.so.1 || missing+=(libzstd1)
have_library libxml2.so.2 || missing+=(libxml2)
if [ ${#missing[@]} -eq 0 ]; then
    say "runtime libraries: present (${runtime_packages[*]})"
elif [ "$apt" = no ]; then
    warn "runtime libraries missing: ${missing[*]} (--no-apt: install them with apt-get install -y ${missing[*]})"
elif ! command -v apt-get >/dev/null; then
    die 3 "runtime libraries missing: ${missing[*]}, and there is no apt-get; install libpq, libcurl 4, OpenSSL 3, libzstd and libxml2"
else
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Ubuntu 24.04 renamed some of them (the t64 transition): take whichever name this release has.
    names=()
    for p in "${missing[@]}"; do
        if apt-cache show "$p" >/dev/null 2>&1; then names+=("$p"); else names+=("${p}t64"); fi
    done
    say "runtime libraries: apt-get install ${names[*]}"
    apt-get install -y -qq --no-install-recommends "${names[@]}" >/dev/null
fi

# ---- build -------------------------------------------------------------------------------------------
bin_dir=$build_dir/release
if [ "$build" = yes ]; then
    command -v swift >/dev/null ||
        die 3 "swift is not on PATH (sudo resets PATH: try sudo env PATH=\"\$PATH\" scripts/install.sh …, or build first and pass --no-build)"
    # One product at a time: a plain `swift build -c release` would also build the test-support target,
    # which needs a debug (testable) FleetCore. The first product builds the shared modules.
    for b in "${binaries[@]}"; do
        say "building $b: swift build -c release --static-swift-stdlib --product $b --scratch-path $build_dir"
        (cd "$repo" && swift build -c release --static-swift-stdlib --product "$b" --scratch-path "$build_dir") >&2 ||
            die 3 "the release build of $b failed (output above)"
    done
fi
for b in "${binaries[@]}"; do
    [ -x "$bin_dir/$b" ] || die 3 "$bin_dir/$b not found; build it (drop --no-build) or pass --build-dir"
done
if ldd "$bin_dir/master" 2>/dev/null | grep -Eq 'libswift|libFoundation|libdispatch|libBlocksRuntime'; then
    warn "$bin_dir/master links the Swift runtime dynamically: it runs only where a Swift toolchain is installed; rebuild with --static-swift-stdlib (drop --no-build)"
fi

# ---- binaries ----------------------------------------------------------------------------------------
changed_binaries=no
install -d -m 0755 "$prefix/bin"
for b in "${binaries[@]}"; do
    target=$prefix/bin/$b
    if [ -f "$target" ] && cmp -s "$bin_dir/$b" "$target"; then
        [ "$(stat -c %a "$target")" = 755 ] || chmod 0755 "$target"
        say "$target: unchanged"
    else
        # install(1) unlinks the old file first, so a running agent keeps its binary until it restarts.
        install -m 0755 "$bin_dir/$b" "$target"
        changed_binaries=yes
        say "$target: installed ($(du -h "$target" | cut -f1))"
    fi
done
unresolved=$(ldd "$prefix/bin/master" 2>&1 | grep 'not found' || true)
[ -z "$unresolved" ] || die 3 "$prefix/bin/master cannot run here, libraries missing:
$unresolved"

# ---- directories and agent.env -----------------------------------------------------------------------
for d in "$config_dir" "$state_dir"; do
    if [ -d "$d" ]; then
        [ "$(stat -c %a "$d")" = 750 ] || { chmod 0750 "$d"; say "$d: mode set to 0750"; }
    else
        install -d -m 0750 "$d"
        say "$d: created (0750)"
    fi
done

env_file=$config_dir/agent.env
changed_env=no
if [ -f "$env_file" ]; then
    [ "$(stat -c %a "$env_file")" = 600 ] || { chmod 0600 "$env_file"; say "$env_file: mode set to 0600"; }
    say "$env_file: kept"
else
    (
        umask 077
        cat >"$env_file" <<'EOF'
# Environment of fleet-agent.service (systemd EnvironmentFile: KEY=value per line, no `export`).
# Read when the service starts: `systemctl restart fleet-agent` after editing (reload does not re-read it).
#
# The ledger: a PostgreSQL URL, or libpq's PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE.
#DATABASE_URL=postgresql://fleet:PASSWORD@db.example.com:5432/fleet
#
# S3 credentials: a profile in /root/.aws/credentials …
#AWS_PROFILE=china
# … or keys (on EC2 leave all of them out: the instance role is used).
#AWS_ACCESS_KEY_ID=
#AWS_SECRET_ACCESS_KEY=
#
# Any configuration key can be overridden here too: FLEET_ + its path in capitals.
#FLEET_DEVICE=vehicle-CN-001
EOF
    )
    changed_env=yes
    say "$env_file: written (0600); put DATABASE_URL and AWS_PROFILE or AWS_* keys in it"
fi

# ---- the agent configuration -------------------------------------------------------------------------
# A new configuration is written next to the old one, checked there (relative source paths resolve the same
# way), and only then moved into place: a refused file never replaces a working one.
target_config=$config_dir/agent.yaml
candidate=
edit_me=no
if [ -n "$config" ]; then
    if [ -f "$target_config" ] && cmp -s "$config" "$target_config"; then
        say "$target_config: unchanged"
    else
        candidate=$config
    fi
elif [ -f "$target_config" ]; then
    say "$target_config: kept"
else
    candidate=$repo/examples/agent.yaml
    edit_me=yes
fi

# Runs `master run --config FILE --check` with the environment the service gets: agent.env, HOME, PATH.
run_check() {
    local file=$1 line key value
    local env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "HOME=$(getent passwd "$(id -un)" | cut -d: -f6)" LANG=C.UTF-8)
    while IFS= read -r line || [ -n "$line" ]; do
        line=${line#"${line%%[![:space:]]*}"}
        case "$line" in '' | '#'* | ';'*) continue ;; esac
        key=${line%%=*}
        value=${line#*=}
        [ "$key" != "$line" ] || continue
        key=${key%"${key##*[![:space:]]}"}
        case "$value" in \"*\" | \'*\') value=${value:1:${#value}-2} ;; esac
        env+=("$key=$value")
    done <"$env_file"
    env -i "${env[@]}" "$prefix/bin/master" run --config "$file" --check
}

changed_config=no
checked=no
if [ -n "$candidate" ]; then
    staged=$config_dir/.agent-new.yaml  # the loader goes by the extension
    install -m 0640 "$candidate" "$staged"
    checked_file=$staged
else
    checked_file=$target_config
fi
if [ "$check" = yes ]; then
    say "checking: master run --config $target_config --check"
    rc=0
    output=$(run_check "$checked_file" 2>&1) || rc=$?
    [ -z "$output" ] || printf '%s\n' "${output//"$checked_file"/"$target_config"}" | sed 's/^/    /'
    if [ "$rc" != 0 ]; then
        [ -z "$candidate" ] || rm -f "$staged"
        if [ "$edit_me" = yes ]; then
            echo "install: there was no $target_config; edit examples/agent.yaml (project, device, bucket, sources) or your own copy and run again with --config FILE" >&2
        elif [ -n "$candidate" ]; then
            echo "install: $candidate was not installed; $target_config and the service are unchanged" >&2
        fi
        [ "$rc" = 2 ] || [ "$rc" = 3 ] || rc=3
        die "$rc" "the check failed (exit $rc); fix what it names and run again (--skip-check installs anyway)"
    fi
    checked=yes
else
    warn "--skip-check: the configuration was not checked; run $prefix/bin/master run --config $target_config --check"
fi
if [ -n "$candidate" ]; then
    if [ -f "$target_config" ]; then
        cp -p "$target_config" "$target_config.previous"
        say "$target_config.previous: the configuration it replaces"
    fi
    mv -f "$staged" "$target_config"
    changed_config=yes
    say "$target_config: installed from $candidate (0640)"
    [ "$edit_me" = no ] || warn "$target_config is the example: edit it (project, device, bucket, sources), then run scripts/install.sh again"
fi

# ---- the unit ----------------------------------------------------------------------------------------
# Rendered with this install's paths; kept under PREFIX/share for reference and for installs without systemd.
sed_escape() { printf '%s' "$1" | sed 's/[\\|&]/\\&/g'; }
render_unit() {
    local state_line="StateDirectory=fleet-upload"
    case "$state_dir" in
    /var/lib/fleet-upload) ;;
    /var/lib/?*) state_line="StateDirectory=${state_dir#/var/lib/}" ;;
    *) state_line="Environment=STATE_DIRECTORY=$state_dir" ;;
    esac
    sed -e "s|/usr/local/bin/master|$(sed_escape "$prefix/bin/master")|" \
        -e "s|^EnvironmentFile=-/etc/fleet-upload/agent.env|EnvironmentFile=-$(sed_escape "$env_file")|" \
        -e "s|--config /etc/fleet-upload/agent.yaml|--config $(sed_escape "$target_config")|" \
        -e "s|^StateDirectory=fleet-upload\$|$(sed_escape "$state_line")|" \
        -e "$([ "${state_line%%=*}" = StateDirectory ] || echo '/^StateDirectoryMode=/d')" \
        "$repo/systemd/$unit_name"
}
share=$prefix/share/fleet-upload
install -d -m 0755 "$share"
rendered=$(mktemp)
trap 'rm -f "$rendered"' EXIT
render_unit >"$rendered"
if [ -f "$share/$unit_name" ] && cmp -s "$rendered" "$share/$unit_name"; then
    say "$share/$unit_name: unchanged"
else
    install -m 0644 "$rendered" "$share/$unit_name"
    say "$share/$unit_name: written"
fi

if [ "$systemd" = no ]; then
    say "done, without systemd: start the agent with $prefix/bin/master run --config $target_config (the unit is in $share/$unit_name)"
    exit 0
fi

changed_unit=no
if [ -f "$unit_dir/$unit_name" ] && cmp -s "$rendered" "$unit_dir/$unit_name"; then
    say "$unit_dir/$unit_name: unchanged"
else
    install -m 0644 "$rendered" "$unit_dir/$unit_name"
    changed_unit=yes
    systemctl daemon-reload
    say "$unit_dir/$unit_name: installed, systemctl daemon-reload"
fi
if [ "$edit_me" = yes ]; then
    say "$unit_name: not enabled or (re)started while $target_config is the unedited example; edit it and run scripts/install.sh again"
    exit 0
fi
if ! systemctl is-enabled --quiet "$unit_name" 2>/dev/null; then
    systemctl enable --quiet "$unit_name"
    say "systemctl enable $unit_name"
fi

service_failed() {
    echo "install: $unit_name did not start; its last log lines:" >&2
    journalctl -u "$unit_name" -n 20 --no-pager >&2 || true
    exit 3
}
if ! systemctl is-active --quiet "$unit_name"; then
    # Type=notify: start returns once the agent has said READY=1, or fails.
    systemctl start "$unit_name" || service_failed
    say "systemctl start $unit_name"
elif [ "$changed_binaries" = yes ] || [ "$changed_unit" = yes ] || [ "$changed_env" = yes ]; then
    systemctl restart "$unit_name" || service_failed
    say "systemctl restart $unit_name (new binaries, unit or agent.env)"
elif [ "$changed_config" = yes ]; then
    systemctl reload-or-restart "$unit_name" || service_failed
    say "systemctl reload $unit_name (new configuration)"
else
    say "$unit_name: running, nothing changed"
fi
systemctl is-active --quiet "$unit_name" || service_failed
[ "$checked" = yes ] || warn "the service runs a configuration that was not checked"
say "done: $unit_name is running; logs: journalctl -u ${unit_name%.service} -f"
