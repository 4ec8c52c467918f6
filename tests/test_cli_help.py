"""Every command-line entry point explains every flag: a help text, its default, its choices."""

import argparse
import importlib
import sys

import pytest

from tests.conftest import ROOT

ENTRY_POINTS = sorted(
    f"{path.parent.name}.{path.stem}"
    for folder in ("model", "utils", "benchmarks")
    for path in (ROOT / folder).glob("*.py")
    if 'if __name__ == "__main__":' in path.read_text()
)


def test_the_entry_points_are_found():
    assert {"model.train", "model.denoise", "model.evaluate", "model.export", "utils.split_data"} <= set(ENTRY_POINTS)
    assert {"benchmarks.eval_quality", "model.train_gpu"} <= set(ENTRY_POINTS)


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_help_explains_every_flag(name, monkeypatch, capsys):
    parsers = []
    original = argparse.ArgumentParser.parse_args

    def recording(self, *args, **kwargs):
        parsers.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", recording)
    monkeypatch.setattr(sys, "argv", [name, "--help"])
    with pytest.raises(SystemExit) as exit_status:
        importlib.import_module(name).main()
    assert exit_status.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage:") and len(parsers) == 1
    formatter = parsers[0]._get_formatter()
    for action in parsers[0]._actions:
        if action.help == argparse.SUPPRESS:
            continue  # internal (a benchmark's child process flag)
        flag = "/".join(action.option_strings) or action.dest
        assert action.help, f"{name} {flag}: no help text"
        described = formatter._expand_help(action)
        has_default = action.default not in (None, argparse.SUPPRESS) and action.default is not False
        if action.option_strings and has_default:
            assert "default" in described, f"{name} {flag}: the help does not give the default"
        if action.choices and action.metavar:
            assert all(str(choice) in described for choice in action.choices), f"{name} {flag}: choices not shown"
        assert str(ROOT) not in described, f"{name} {flag}: shows a path of this machine"
