"""The function workflow's real parts (API emulator with Knative, registry, buildah) for the wiring tests."""

from tests.airgap.conftest import containerd, source_registry  # noqa: F401
from tests.dev.conftest import builder, make_dev_cluster, registry, validator  # noqa: F401
from tests.ros2.conftest import world  # noqa: F401
