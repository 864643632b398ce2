"""Small in-cluster helper of the AI worker pool (standard library only), shipped to its pods in a ConfigMap and
run on the pinned official Python image: the Docker API stand-in."""
