#!/bin/sh
# Print the change ticket of this pipeline; exit 1 when there is none.
# First match of TICKET_PATTERN (default CHG-<digits>[-<digits>...]) in, in this order:
#   CHANGE_TICKET (a CI variable, to override), the merge request's title and description
#   (GitLab: CI_MERGE_REQUEST_TITLE/DESCRIPTION; GitHub: PR_TITLE/PR_BODY), and the commit
#   message -- on the main branch the merge commit's message carries the merge request's
#   title and description (GitLab's default merge commit template; GitHub's "Merge pull request").
pattern="${TICKET_PATTERN:-CHG-[0-9]+(-[0-9]+)*}"
for text in "${CHANGE_TICKET:-}" "${CI_MERGE_REQUEST_TITLE:-}" "${CI_MERGE_REQUEST_DESCRIPTION:-}" \
            "${PR_TITLE:-}" "${PR_BODY:-}" "${CI_COMMIT_MESSAGE:-}" "${CI_COMMIT_DESCRIPTION:-}"; do
    ticket=$(printf '%s\n' "$text" | grep -oE "$pattern" | head -n 1)
    if [ -n "$ticket" ]; then
        echo "$ticket"
        exit 0
    fi
done
echo "ci/ticket.sh: no change ticket ($pattern) in CHANGE_TICKET, the merge request or the commit message" >&2
exit 1
