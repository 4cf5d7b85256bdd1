#!/usr/bin/env bash
# Builds the Debian package: the release binary, the manual pages and shell completions it
# writes about itself, then `cargo deb` with the metadata in Cargo.toml. Prints the path of
# the .deb. Needs cargo-deb (`cargo install cargo-deb`) and dpkg-deb.
#
# Usage: packaging/build-deb.sh
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
cargo build --release --locked --quiet
bin="$target/release/logward"

# cargo-deb reads the asset paths in Cargo.toml relative to target/; with another target
# directory, the generated files are made there and linked in.
out=target/packaging
rm -rf "$out"
mkdir -p "$out/completions"
"$bin" man "$out/man"
"$bin" completions bash > "$out/completions/logward.bash"
"$bin" completions zsh > "$out/completions/_logward"
"$bin" completions fish > "$out/completions/logward.fish"
if [ "$target" != target ]; then
    mkdir -p target/release
    cp "$bin" target/release/logward
fi

# --no-build: the binary above is the one packaged; cargo deb strips it.
cargo deb --no-build --locked --output "$target/debian/" 2>&1 | tail -n 1
