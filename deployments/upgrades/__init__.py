"""EMQX version upgrades of running deployments: the catalog's valid targets, the request, the node-by-node
rollout (``plan``: what each step renders; ``services``: the steps, run by ``deployments.tasks``)."""
