"""Names the simulated clouds (``deployments.cloudsim``, a process without Django) share with the control plane:
nothing here may import Django or a model."""

#: The key under which the simulated clouds record the demo customer's network in their networks file.
DEMO_CUSTOMER_KEY = "_demo_customer"
