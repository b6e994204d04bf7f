#!/usr/bin/env bash
# The real Azure CLI for the az compatibility tests: azure-cli from PyPI (pinned with every
# dependency in tests/azure-cli/requirements.lock) in its own virtual environment, and az's
# `bastion` and `ssh` extensions installed from their released wheels (az downloads them from
# Microsoft's index, which these machines cannot reach): from $RAMPART_AZ_EXTENSIONS, else the
# shared vendor folder beside the project. Cached in target/az-venv between runs.
# Prints the az program's path; exits non-zero, saying why, when something is missing.
# Usage: tests/azure-cli/install.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/az-venv
lock=tests/azure-cli/requirements.lock

if ! cmp -s "$lock" "$venv/requirements.lock" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$lock" >&2
    cp "$lock" "$venv/requirements.lock"
fi

wheels=""
for dir in "${RAMPART_AZ_EXTENSIONS:-}" ../shared/vendor/azure-cli-extensions /work/shared/vendor/azure-cli-extensions; do
    if [ -n "$dir" ] && [ -f "$dir/bastion-1.4.2-py3-none-any.whl" ] && [ -f "$dir/ssh-2.0.6-py3-none-any.whl" ]; then
        wheels=$dir
        break
    fi
done
extensions="$PWD/$venv/extensions"
if [ ! -d "$extensions/bastion" ] || [ ! -d "$extensions/ssh" ]; then
    if [ -z "$wheels" ]; then
        echo "the az extensions' wheels (bastion 1.4.2, ssh 2.0.6) were not found: set RAMPART_AZ_EXTENSIONS" >&2
        exit 1
    fi
    config=$(mktemp -d)
    trap 'rm -rf "$config"' EXIT
    # A fresh profile would ask Microsoft's storage for az's latest version: say it just did.
    version=$("$venv/bin/python" -c 'import azure.cli.core as c; print(c.__version__)')
    printf '{"versions": {"azure-cli": {"local": "%s"}, "core": {"local": "%s"}}, "update_time": "%s"}' \
        "$version" "$version" "$(date '+%Y-%m-%d %H:%M:%S.%6N')" >"$config/versionCheck.json"
    rm -rf "$extensions"
    for wheel in bastion-1.4.2 ssh-2.0.6; do
        AZURE_CONFIG_DIR=$config AZURE_EXTENSION_DIR=$extensions AZURE_CORE_COLLECT_TELEMETRY=false \
            "$venv/bin/az" extension add --source "$wheels/$wheel-py3-none-any.whl" -y --only-show-errors >&2
    done
fi
echo "$PWD/$venv/bin/az"
