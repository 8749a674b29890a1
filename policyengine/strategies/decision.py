"""Moved to `policyengine.values`; this module re-exports it.

TODO(house): a thin re-export for the code written while the house moved (issue 10); import
from `policyengine.values` and delete this module.
"""

from policyengine.values import (
    Decision as Decision,
)
from policyengine.values import (
    Outcome as Outcome,
)
from policyengine.values import (
    Phase as Phase,
)
from policyengine.values import (
    TrafficSplit as TrafficSplit,
)
