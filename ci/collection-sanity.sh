#!/usr/bin/env bash
# `make lint`'s collection checks: build the collection envcredit.ops (galaxy.yml), unpack the
# artifact into a throw-away ansible_collections/envcredit/ops tree (ansible-test runs only
# there, and outside this git checkout: inside it, var/ is git-ignored and every file would be
# skipped) and run there:
#   * ansible-test sanity, the tests that run offline with the venv's ansible-core (2.19):
#     compile (the venv's Python 3.11, which the EE runs too) and the tests that need no
#     Python packages. The tests with a requirements file (validate-modules, ansible-doc,
#     import, pep8, pylint, yamllint, runtime-metadata, changelog, integration-aliases) make
#     ansible-test bootstrap pip from ci-files.testing.ansible.com into a venv of their own:
#     no network here. pslint and shellcheck: no PowerShell, no shellcheck installed.
#     Exceptions: tests/sanity/ignore-2.19.txt, each with its reason.
#   * in validate-modules' place for the documentation: ansible-doc of every module by its
#     FQCN (fails on documentation it cannot parse, an option without a description, ...).
# Usage: ci/collection-sanity.sh [ansible-test options]   (the venv must exist: make venv)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bin="$repo/.venv/bin"
work="$(mktemp -d "${TMPDIR:-/tmp}/envcredit-collection-sanity.XXXXXX")"
trap 'rm -rf "$work"' EXIT

tree="$work/ansible_collections/envcredit/ops"
mkdir -p "$tree"
"$bin/ansible-galaxy" collection build "$repo" --output-path "$work" >/dev/null
tar -xzf "$work"/envcredit-ops-*.tar.gz -C "$tree"

tests=(compile action-plugin-docs empty-init ignores line-endings no-assert no-get-exception
       no-illegal-filenames no-smart-quotes replace-urlopen shebang symlinks
       use-argspec-type-path use-compat-six)
args=()
for t in "${tests[@]}"; do args+=(--test "$t"); done
(cd "$tree" && "$bin/ansible-test" sanity --python 3.11 --color no "${args[@]}" "$@")

for m in "$tree"/plugins/modules/*.py; do
    name="envcredit.ops.$(basename "$m" .py)"
    ANSIBLE_COLLECTIONS_PATH="$work" "$bin/ansible-doc" "$name" >/dev/null 2>"$work/doc.err" || {
        echo "ansible-doc $name failed:" >&2; cat "$work/doc.err" >&2; exit 1; }
done
echo "collection sanity: ${#tests[@]} ansible-test sanity tests and the documentation of $(ls "$tree"/plugins/modules/*.py | wc -l) modules passed"
