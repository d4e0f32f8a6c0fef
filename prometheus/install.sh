#!/bin/sh
# Installs Debian's `prometheus` package (the `prometheus` server and
# `promtool`) project-locally into DIR, for `make prometheus-test` and the
# end-to-end tests:
#
#     sh prometheus/install.sh .tools/prometheus
#
# The package is downloaded with apt-get and unpacked with dpkg-deb, so
# nothing is installed system-wide and no service is started: the binaries
# land in DIR/usr/bin. When the package lists are missing (a fresh machine),
# it runs `apt-get update` first. Where the package cannot be downloaded at
# all, it falls back to `apt-get install prometheus` and links the system's
# binaries. Either way it checks that both binaries run and that their
# version is at least MIN_VERSION (the one the rules are tested with), then
# writes DIR/.installed with the package version. Running it again with
# that stamp and working binaries in place does nothing.
set -eu

MIN_VERSION=2.42

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir=$1
stamp=$dir/.installed
say() { echo "prometheus/install.sh: $*" >&2; }

# "2.42.0+ds" from "promtool, version 2.42.0+ds (branch: ...)".
binary_version() {
    "$1" --version 2>&1 | sed -n 's/^[a-z]*, version \([0-9][0-9.]*\).*/\1/p' | head -n 1
}

# True when the binaries in $1 run and are at least MIN_VERSION; prints the version.
check() {
    for tool in prometheus promtool; do
        if [ ! -x "$1/$tool" ]; then
            say "$1/$tool is missing"
            return 1
        fi
    done
    p=$(binary_version "$1/prometheus")
    t=$(binary_version "$1/promtool")
    if [ -z "$p" ] || [ -z "$t" ]; then
        say "$1/prometheus or $1/promtool does not run (--version printed no version)"
        return 1
    fi
    if [ "$p" != "$t" ]; then
        say "prometheus $p and promtool $t differ"
        return 1
    fi
    lowest=$(printf '%s\n%s\n' "$MIN_VERSION" "$p" | sort -V | head -n 1)
    if [ "$lowest" != "$MIN_VERSION" ]; then
        say "prometheus $p is older than $MIN_VERSION, which the rules are tested with"
        return 1
    fi
    echo "$p"
}

if [ -f "$stamp" ] && check "$dir/usr/bin" >/dev/null 2>&1; then
    echo "prometheus: $(cat "$stamp") already in $dir"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

download() {
    (cd "$work" && apt-get download prometheus) >"$work/apt.log" 2>&1
}

unpacked=""
if command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1; then
    if ! download; then
        say "apt-get download prometheus failed; updating the package lists (apt-get update)"
        if apt-get update >"$work/update.log" 2>&1; then
            download || true
        else
            say "apt-get update failed (not root?): $(tail -n 1 "$work/update.log")"
        fi
    fi
    deb=$(ls "$work"/prometheus_*.deb 2>/dev/null | head -n 1 || true)
    if [ -n "$deb" ]; then
        package_version=$(dpkg-deb -f "$deb" Version)
        rm -rf "$dir.new"
        mkdir -p "$dir.new"
        dpkg-deb -x "$deb" "$dir.new"
        unpacked=$dir.new
    fi
fi

if [ -z "$unpacked" ]; then
    # Fallback: the system's package. Debian's postinst starts the service;
    # it is stopped again, since nothing here needs a Prometheus on :9090.
    say "could not download the package ($(tail -n 1 "$work/apt.log" 2>/dev/null || echo 'no apt-get')); trying apt-get install prometheus"
    if [ ! -x /usr/bin/promtool ]; then
        if ! apt-get install -y --no-install-recommends prometheus >"$work/install.log" 2>&1; then
            say "apt-get install prometheus failed: $(tail -n 1 "$work/install.log")"
            say "install Debian's prometheus package (it provides prometheus and promtool) and run this again"
            exit 1
        fi
        if command -v invoke-rc.d >/dev/null 2>&1; then
            invoke-rc.d prometheus stop >/dev/null 2>&1 || true
        fi
    fi
    package_version=$(dpkg-query -W -f '${Version}' prometheus 2>/dev/null || echo unknown)
    rm -rf "$dir.new"
    mkdir -p "$dir.new/usr/bin"
    ln -s /usr/bin/prometheus "$dir.new/usr/bin/prometheus"
    ln -s /usr/bin/promtool "$dir.new/usr/bin/promtool"
    unpacked=$dir.new
fi

if ! version=$(check "$unpacked/usr/bin"); then
    rm -rf "$dir.new"
    exit 1
fi
rm -rf "$dir"
mv "$dir.new" "$dir"
echo "$package_version" >"$stamp"
echo "prometheus: Debian package prometheus $package_version in $dir (prometheus and promtool $version)"
