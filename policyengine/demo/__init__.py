"""`policyengine demo`: the whole product on one laptop — a GitOps repository made from `examples/`,
Prometheus, the reconciler pass by pass on simulated time, and a simulated fleet serving by Git.
"""
