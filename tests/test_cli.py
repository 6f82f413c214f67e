import types

import pytest

from easyocc import cli
from easyocc.errors import InputError


@pytest.fixture
def fake_command(monkeypatch):
    module = types.ModuleType("fake_cmd")

    def add_arguments(parser):
        parser.add_argument("--path", required=True)

    def run(args):
        raise InputError(args.path, "is broken")

    module.add_arguments, module.run = add_arguments, run
    monkeypatch.setitem(__import__("sys").modules, "fake_cmd", module)
    monkeypatch.setitem(cli.COMMANDS, "fake", ("fake_cmd", "a fake command"))


def test_user_errors_are_one_line_exit_2(fake_command, capsys):
    assert cli.main(["fake", "--path", "/x/y.npz"]) == 2
    err = capsys.readouterr().err
    assert err == "easyocc fake: error: /x/y.npz: is broken\n"


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "usage: easyocc" in capsys.readouterr().err
