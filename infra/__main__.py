"""The platform stack: validated config in, one Platform component, its outputs exported."""

import pulumi

from pixelstream import Platform, PlatformArgs, load_stack_config, protect_resources, protected

config = load_stack_config()
# Secret config values stay secret in every resource input and output that carries them.
protect_resources(config.secrets)

name = config.cluster.name or f"pixelstream-{pulumi.get_stack()}"
platform = Platform(name, PlatformArgs(config=config, name=name))
for key, value in platform.outputs.items():
    pulumi.export(key, protected(value, config.secrets))
