from __future__ import annotations

import io

import pytest

from hybrid_knative.progress import Status


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_one_line_per_step_no_spinner_off_tty() -> None:
    out = io.StringIO()
    status = Status(stream=out, verbosity=0)
    with status.step("Install A"):
        status.note("applying 1/2")
        status.detail("hidden")
    with pytest.raises(RuntimeError), status.step("Install B"):
        raise RuntimeError("x")
    assert out.getvalue().splitlines() == ["✓ Install A", "✗ Install B"]


def test_verbose_shows_details_and_quiet_hides_success() -> None:
    out = io.StringIO()
    verbose = Status(stream=out, verbosity=1)
    with verbose.step("S"):
        verbose.note("applying 1/1")
    assert out.getvalue().splitlines() == ["  applying 1/1", "✓ S"]
    quiet = io.StringIO()
    s = Status(stream=quiet, verbosity=-1)
    with s.step("S"):
        s.info("hello")
    assert quiet.getvalue() == ""
    with pytest.raises(ValueError), s.step("F"):
        raise ValueError
    assert quiet.getvalue() == "✗ F\n"  # failures always show


def test_spinner_only_on_tty() -> None:
    tty = Tty()
    status = Status(stream=tty)
    assert status.tty
    with status.step("Wait"):
        status.note("waiting for 1 of 2")
    text = tty.getvalue()
    assert text.endswith("✓ Wait\n")
    assert "\r\033[K" in text  # the spinner line is cleared before the result line


def test_a_skipped_step_says_so_instead_of_a_check_mark() -> None:
    out = io.StringIO()
    status = Status(stream=out, verbosity=0)
    with status.step("Resolve the zone on this host"):
        status.skip("nothing changed on this host: see above")
    with status.step("Next"):
        pass
    assert out.getvalue().splitlines() == [
        "– Resolve the zone on this host (nothing changed on this host: see above)", "✓ Next"]


def test_a_skipped_step_in_a_branch_keeps_its_mark_first() -> None:
    out = io.StringIO()
    branch = Status(stream=out, verbosity=0).branch("dns")
    with branch.step("Resolve the zone on this host"):
        branch.skip("nothing changed on this host")
    assert out.getvalue().splitlines() == ["– [dns] Resolve the zone on this host (nothing changed on this host)"]
