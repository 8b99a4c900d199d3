#!/bin/sh
# CI secrets into files readable only by the job, and out again.
#
#   . ci/secrets.sh              at job start (sourced: exports the variables below)
#   sh ci/secrets.sh --cleanup   at job end (GitLab after_script, GitHub `if: always()` step)
#
# Reads (CI/CD variables or repository secrets; none of them is ever in the repository):
#   VAULT_PASSWORD       the Ansible vault password of the environment (or VAULT_PASSWORD_FILE:
#                        the path GitLab gives a variable of type File)
#   SSH_PRIVATE_KEY      the deploy key of the `ops` account (or SSH_PRIVATE_KEY_FILE)
#   SSH_KNOWN_HOSTS      the host keys of the targets (strict host key checking)
# Exports: OPSCTL_VAULT_PASSWORD_FILE, ANSIBLE_PRIVATE_KEY_FILE, OPSCTL_KNOWN_HOSTS (which the
# staging/production inventories' ansible_ssh_common_args read: an inventory variable outranks
# ANSIBLE_SSH_COMMON_ARGS, also exported for ad-hoc use), OPSCTL_CI_SECRETS (the directory);
# on GitHub also through $GITHUB_ENV for the next steps.
# Files are 0600 in a 0700 directory outside the checkout (never in an artifact).

_ci_secrets_dir="${OPSCTL_CI_SECRETS:-${TMPDIR:-/tmp}/opsctl-ci-${CI_JOB_ID:-${GITHUB_RUN_ID:-local}-${GITHUB_JOB:-job}}}"

if [ "${1:-}" = "--cleanup" ]; then
    if [ -d "$_ci_secrets_dir" ]; then
        find "$_ci_secrets_dir" -type f -exec sh -c 'for f; do : > "$f"; done' sh {} + 2>/dev/null
        rm -rf "$_ci_secrets_dir"
        echo "ci/secrets.sh: removed $_ci_secrets_dir"
    fi
else
    _ci_old_umask=$(umask)
    umask 077
    mkdir -p "$_ci_secrets_dir" && chmod 700 "$_ci_secrets_dir"
    _ci_export() {
        export "$1=$2"
        if [ -n "${GITHUB_ENV:-}" ]; then
            echo "$1=$2" >> "$GITHUB_ENV"
        fi
    }
    if [ -n "${VAULT_PASSWORD_FILE:-}" ] && [ -f "$VAULT_PASSWORD_FILE" ]; then
        cp "$VAULT_PASSWORD_FILE" "$_ci_secrets_dir/vault-password"
    elif [ -n "${VAULT_PASSWORD:-}" ]; then
        printf '%s\n' "$VAULT_PASSWORD" > "$_ci_secrets_dir/vault-password"
    fi
    if [ -f "$_ci_secrets_dir/vault-password" ]; then
        chmod 600 "$_ci_secrets_dir/vault-password"
        _ci_export OPSCTL_VAULT_PASSWORD_FILE "$_ci_secrets_dir/vault-password"
    fi
    if [ -n "${SSH_PRIVATE_KEY_FILE:-}" ] && [ -f "$SSH_PRIVATE_KEY_FILE" ]; then
        tr -d '\r' < "$SSH_PRIVATE_KEY_FILE" > "$_ci_secrets_dir/id_deploy"
    elif [ -n "${SSH_PRIVATE_KEY:-}" ]; then
        printf '%s\n' "$SSH_PRIVATE_KEY" | tr -d '\r' > "$_ci_secrets_dir/id_deploy"
    fi
    if [ -f "$_ci_secrets_dir/id_deploy" ]; then
        chmod 600 "$_ci_secrets_dir/id_deploy"
        _ci_export ANSIBLE_PRIVATE_KEY_FILE "$_ci_secrets_dir/id_deploy"
    fi
    if [ -n "${SSH_KNOWN_HOSTS:-}" ]; then
        printf '%s\n' "$SSH_KNOWN_HOSTS" > "$_ci_secrets_dir/known_hosts"
        chmod 600 "$_ci_secrets_dir/known_hosts"
        _ci_export OPSCTL_KNOWN_HOSTS "$_ci_secrets_dir/known_hosts"
        _ci_export ANSIBLE_SSH_COMMON_ARGS "-o UserKnownHostsFile=$_ci_secrets_dir/known_hosts -o StrictHostKeyChecking=yes"
    fi
    _ci_export OPSCTL_CI_SECRETS "$_ci_secrets_dir"
    umask "$_ci_old_umask"
    unset _ci_old_umask
    echo "ci/secrets.sh: secrets in $_ci_secrets_dir:$(cd "$_ci_secrets_dir" && for f in *; do [ -f "$f" ] && printf ' %s' "$f"; done)"
fi
unset _ci_secrets_dir
