"""The pixelstream policy pack: `pulumi preview --policy-pack policy` (or `pulumi up`).

Every policy is mandatory. Configure them for a stack's own settings (relay range, world-open API access, the
flannel relay opt-in) with `--policy-pack-config <file>`, the file written by
`python -m pixelstream.tools.checks policy-config --stack-file stacks/Pulumi.<stack>.yaml`.
"""

from pulumi_policy import PolicyPack

from pixelstream.tools.policies import ENFORCEMENT, POLICIES, preserve_secret_markers

preserve_secret_markers()
PolicyPack(name="pixelstream", enforcement_level=ENFORCEMENT, policies=POLICIES)
