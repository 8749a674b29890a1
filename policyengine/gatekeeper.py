"""Moved to `policyengine.gates.gatekeeper`; this module re-exports it.

TODO(house): a thin re-export for the code written while the house moved (issue 10); import
from `policyengine.gates.gatekeeper` and delete this module.
"""

from policyengine.gates.gatekeeper import (
    Gatekeeper as Gatekeeper,
)
from policyengine.gates.gatekeeper import (
    _recorded_status as _recorded_status,
)
from policyengine.gates.gatekeeper import (
    cluster_reader as cluster_reader,
)
from policyengine.gates.gatekeeper import (
    forge_factory as forge_factory,
)
from policyengine.gates.gatekeeper import (
    log as log,
)
