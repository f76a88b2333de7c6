"""The snap's daemons pass their files through environment variables (snapcraft.yaml); the commands read them."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from hybrid_knative.cli.main import cli

REPO = Path(__file__).resolve().parents[2]


def test_snapcraft_sets_the_variables_the_commands_read() -> None:
    apps = yaml.safe_load((REPO / "snapcraft.yaml").read_text())["apps"]
    assert apps["agent"]["environment"]["HYBRID_KNATIVE_ENROLMENT_FILE"] == "$SNAP_COMMON/join/enrolment"
    assert apps["hub"]["environment"]["HYBRID_KNATIVE_HUB_DIR"] == "$SNAP_COMMON/hub"


def test_agent_reads_the_enrolment_file_from_the_environment(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "enrolment"
    result = CliRunner().invoke(cli, ["agent"], env={"HYBRID_KNATIVE_ENROLMENT_FILE": str(missing)})
    assert result.exit_code != 0
    assert str(missing) in result.output


def test_hub_state_dir_from_the_environment(tmp_path: Path) -> None:
    state = tmp_path / "hub"
    result = CliRunner().invoke(cli, ["token", "create", "--hub", "127.0.0.1:9"],
                                env={"HYBRID_KNATIVE_HUB_DIR": str(state)})
    assert result.exit_code == 0, result.output
    assert (state / "state.json").exists()  # the hub's state folder came from the variable (reads create nothing)
    assert "HYBRID_KNATIVE_HUB_DIR" in CliRunner().invoke(cli, ["hub", "start", "--help"]).output
