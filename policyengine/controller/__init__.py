"""`policyengine run`: the engine as a long-running process in the cluster.

The pass itself is the reconciler's (`Engine.reconcile_once`); this package adds what a
controller needs around it: the loop and its triggers, /metrics and health, forge webhooks,
shard Leases and fencing, and notifications.
"""
