"""The detector speed benchmark runs both models on every input (its timings are not asserted here)."""

from benchmarks import detector_speed


def test_it_times_both_models_on_every_input(capsys):
    assert detector_speed.main(["--rounds", "1", "--calls", "1", "--no-write"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[0].strip() for line in lines] == [label for label, _ in detector_speed.SHAPES]
    assert all("float" in line and "int8" in line and line.endswith("x") for line in lines)


def test_bad_arguments_are_refused(capsys):
    assert detector_speed.main(["--rounds", "0", "--no-write"]) == 2
    assert "at least 1" in capsys.readouterr().err
