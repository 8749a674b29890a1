"""Moved to `policyengine.gates.argocd_sync`; this module re-exports it.

TODO(house): a thin re-export for the code written while the house moved (issue 10); import
from `policyengine.gates.argocd_sync` and delete this module.
"""

from policyengine.gates.argocd_sync import (
    ArgoCDSyncGate as ArgoCDSyncGate,
)
from policyengine.gates.argocd_sync import (
    log as log,
)
