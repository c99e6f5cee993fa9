"""VPC peering of deployments with customers' AWS VPCs and Azure VNets (issue 5).

``lifecycle`` (the state machine), ``validation`` (pure checks of a request), ``selectors``/``services``
(reads and audited writes), ``aws``/``azure`` (one converge step per provider, through one client factory
each), ``worker`` (dispatch, error classification), ``instructions`` (what the customer does on their side),
``customer_side`` (the simulated customer, for the embedded default and tests) and ``azure_sim`` (the local
stand-in for the Azure Resource Manager endpoints the SDK calls).
"""
