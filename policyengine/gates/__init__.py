"""gates: what may stop or bend a decision before it is taken.

`policy_gate` is the pure part (a PolicyGate and how it bends the release status and the
outcome); `argocd_sync` reads Argo CD's sync of the step's commit; `gatekeeper` is the shell
that builds one PolicyGate per policy from the forge (pull-request approval and merge), the
cluster (Argo CD sync) and load tests (performance gate), and opens the proposals.
"""
