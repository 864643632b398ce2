"""Small in-cluster helpers of this project (standard library only), shipped to pods in a ConfigMap and run
on the pinned official Python image: the TURN bootstrap."""
