"""The pixelstream policy pack: `pulumi preview --policy-pack policy` (or `pulumi up`).

Every policy is mandatory. Configure the TURN relay range and world-open API access with
`--policy-pack-config` ({"no-world-open-ingress": {"relayMin": 49152, "relayMax": 65535, "allowWorldApi": false}}).
"""

from pulumi_policy import PolicyPack

from pixelstream.policies import ENFORCEMENT, POLICIES, preserve_secret_markers

preserve_secret_markers()
PolicyPack(name="pixelstream", enforcement_level=ENFORCEMENT, policies=POLICIES)
