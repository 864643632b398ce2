"""Another team's stack: the whole pixelstream platform as one component, configured under this project's own
config namespace, beside whatever else the stack declares."""

import pulumi

from pixelstream import Platform, PlatformArgs, load_stack_config, protect_resources, protected

config = load_stack_config(namespace=pulumi.get_project())
protect_resources(config.secrets)
platform = Platform("media", PlatformArgs(config=config, name=config.cluster.name or "media"))

pulumi.export("url", protected(platform.outputs["url"], config.secrets))
pulumi.export("kubeconfig", platform.outputs["kubeconfig"])
