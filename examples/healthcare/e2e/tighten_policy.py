#!/usr/bin/env python3
"""Tightens a COPY of the healthcare policy for the rollout part of the demo.

scripts/e2e_demo.sh publishes examples/healthcare (a temporary copy), rolls it
out, then runs this on a second copy and publishes the result as the next
version: one more rule on route create_record,

    prescriber: a prescription needs the extra scope `records.prescribe`
                (else 403 insufficient_scope)

so Bob's prescription, allowed (201) by the first version, is refused by the
second (his token has no such scope), while notes, lab results and every
test beside the policy still pass: the demo shows the change reaching the
agents stage by stage and going away again on rollback. Refuses (exit 1) a
copy tightened already, or one where the line it inserts after is not there
exactly once, rather than publish an unchanged policy.

usage: tighten_policy.py COPY_OF_EXAMPLES_HEALTHCARE
"""

import os
import sys

ANCHOR = "    body NewRecord { max_bytes = 65536 }\n"
RULE = (
    "    // Tightened by the end-to-end demo (examples/healthcare/e2e/tighten_policy.py).\n"
    "    prescriber: require request.json.type != \"prescription\"\n"
    "        || \"records.prescribe\" in split(token.scope, \" \")\n"
    "      else deny 403 insufficient_scope \"a prescription needs scope `records.prescribe`\"\n"
)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    path = os.path.join(sys.argv[1], "policy", "records.vakt")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if RULE in text:
        sys.exit("tighten_policy.py: %s is tightened already" % path)
    if text.count(ANCHOR) != 1:
        sys.exit("tighten_policy.py: %s: the line `%s` is not there exactly once"
                 % (path, ANCHOR.strip()))
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace(ANCHOR, ANCHOR + RULE))


if __name__ == "__main__":
    main()
