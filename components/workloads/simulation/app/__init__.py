"""The simulation fleet's orchestration service and its dashboard page (standard library only), shipped to its
pod in a ConfigMap and run on the pinned official Python image."""
