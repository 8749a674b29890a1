"""Moved to `policyengine.gates.policy_gate`; this module re-exports it.

TODO(house): a thin re-export for the code written while the house moved (issue 10); import
from `policyengine.gates.policy_gate` and delete this module.
"""

from policyengine.gates.policy_gate import (
    OPEN_GATE as OPEN_GATE,
)
from policyengine.gates.policy_gate import (
    PolicyGate as PolicyGate,
)
from policyengine.gates.policy_gate import (
    combine as combine,
)
from policyengine.gates.policy_gate import (
    gated_outcome as gated_outcome,
)
from policyengine.gates.policy_gate import (
    gated_status as gated_status,
)
