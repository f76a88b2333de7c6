"""The `clone` command: options, output, exit codes, clear errors (no tracebacks)."""

from __future__ import annotations

from click.testing import CliRunner, Result

from hybrid_knative.cli.main import cli
from tests.clone.conftest import TARGET_DOMAIN, World


def invoke(world: World, *args: str) -> Result:
    base = ["clone", "--kubeconfig", str(world.source.kubeconfig), "--context", world.source.context,
            "--to-kubeconfig", str(world.target.kubeconfig), "--state-dir", str(world.tmp / "state"),
            "--poll-interval", "0.001", "--timeout", "5"]
    return CliRunner().invoke(cli, [*base, *args], catch_exceptions=False)


def test_cli_dry_run_then_clone_then_sync(world: World) -> None:
    common = ["--to", "cloud", "--registry", world.registry, "--registry-authfile", str(world.dst_registry.authfile),
              "--ingress-address", f"127.0.0.1:{world.ingress.port}", "-n", "shop"]
    dry = invoke(world, *common, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "Nothing was written" in dry.output and "+kind: Service" in dry.output
    assert "aHVudGVyMg==" not in dry.output  # secret values never printed
    assert world.target.server.writes() == []
    done = invoke(world, *common)
    assert done.exit_code == 0, done.output
    assert f"✓ shop/hello  http://hello-shop.{TARGET_DOMAIN}  answers 200" in done.output
    assert "✓ Images: 3 copied by digest" in done.output
    again = invoke(world, *common)
    assert again.exit_code == 0 and "✓ Images: 0 copied by digest (0 B), 3 already there" in again.output
    assert "0 created, 0 updated" in again.output
    assert world.source.server.writes() == []


def test_cli_unknown_context_is_a_clear_error(world: World) -> None:
    result = invoke(world, "--to", "nowhere", "--registry", world.registry)
    assert result.exit_code == 2
    assert "no context 'nowhere'" in result.output and "--to" in result.output and "Traceback" not in result.output


def test_cli_no_install_on_a_bare_target(make_world: object) -> None:
    world = make_world(target_knative=False)  # type: ignore[operator]
    result = invoke(world, "--to", "cloud", "--registry", world.registry, "--no-install", "--domain", TARGET_DOMAIN)
    assert result.exit_code == 2 and "--no-install" in result.output
    assert world.target.server.writes() == []


def test_cli_services_that_do_not_answer_exit_non_zero(world: World) -> None:
    result = invoke(world, "--to", "cloud", "--registry", world.registry, "--registry-authfile",
                    str(world.dst_registry.authfile), "--ingress-address", "127.0.0.1:9", "-n", "shop")
    assert result.exit_code == 3
    assert "✗ shop/hello" in result.output


def test_cli_bad_model_uri_is_a_clear_error(world: World) -> None:
    for bad, why in (("s3://models/", "is not FROM=TO"), ("s3://models/=pvc://x/", "not reachable from another")):
        result = invoke(world, "--to", "cloud", "--registry", world.registry, "--model-uri", bad)
        assert result.exit_code == 2, result.output
        assert why in result.output and "Traceback" not in result.output
    assert world.target.server.writes() == []


def test_cli_help_explains_models_and_bridges() -> None:
    result = CliRunner().invoke(cli, ["clone", "--help"])
    assert result.exit_code == 0
    for option in ("--model-uri", "--model-service-account", "--skip-local-models", "--include-bridges"):
        assert option in result.output
