"""The `bopt` command line."""

import pytest

from bopt.cli import main


def test_demo_reports_best_configuration_value_regret_and_time(capsys):
    assert main(["demo", "--problem", "branin", "--budget", "4", "--quiet"]) == 0
    out = capsys.readouterr().out
    for expected in ("bopt demo: branin", "best configuration:", "x0 = ", "best value: ",
                     "regret: ", "time in suggest: "):
        assert expected in out


@pytest.mark.parametrize("argv, message", [
    (["demo", "--budget", "0"], "--budget: must be a positive integer, got 0"),
    (["demo", "--acquisition", "nope"], "invalid choice: 'nope'"),
])
def test_demo_rejects_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err


def test_demo_reports_bad_device_and_problem_without_a_traceback(capsys):
    assert main(["demo", "--device", "gpu", "--quiet"]) == 2
    assert "device must be 'auto', 'cpu', 'cuda'" in capsys.readouterr().err
    assert main(["demo", "--problem", "nope", "--quiet"]) == 2
    assert "unknown problem 'nope'" in capsys.readouterr().err
