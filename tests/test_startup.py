"""Start-up: the package imports no test framework, and Ctrl-C while the command's imports
load prints one line and exits 130 (issue 20). Real subprocesses, real SIGINT."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))


@pytest.mark.slow  # a fresh interpreter imports torch and scikit-learn: 10 s or more
def test_importing_the_package_loads_no_test_framework_nor_a_sigint_handler():
    code = textwrap.dedent(
        """
        import signal, sys
        import imbal_estimators, imbal_estimators.app.cli, imbal_estimators.app.compare
        loaded = sorted(m for m in ("pytest", "_pytest", "numpydoc") if m in sys.modules)
        print(loaded, sys.modules.get("pytest", "absent"))
        print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    # no test framework, "import pytest" would work again, and a library import leaves
    # the SIGINT handler alone
    assert out.stdout.split("\n")[:2] == ["[] absent", "True"]


def _interrupt(command, after, cwd):
    process = subprocess.Popen(
        command, env=ENV, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    time.sleep(after)
    process.send_signal(signal.SIGINT)
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return process.returncode, out, err


@pytest.mark.parametrize("after", [1.0, 2.5])
def test_ctrl_c_during_the_imports_of_python_m_prints_one_line(tmp_path, after):
    rc, out, err = _interrupt([sys.executable, "-m", "imbal_estimators", "--help"], after, tmp_path)
    if rc == 0:
        pytest.skip(f"the imports finished within {after} s on this machine")
    assert rc == 130, err
    assert err == "imbal-estimators: interrupted\n"
    assert "Traceback" not in out + err


def test_ctrl_c_during_the_imports_of_the_console_script_prints_one_line(tmp_path):
    """The script pip writes for the entry point, named like it: imbal-estimators."""
    script = tmp_path / "imbal-estimators"
    script.write_text("import sys\nfrom imbal_estimators.app.cli import main\nsys.exit(main())\n")
    rc, out, err = _interrupt([sys.executable, str(script), "--help"], 1.5, tmp_path)
    if rc == 0:
        pytest.skip("the imports finished within 1.5 s on this machine")
    assert (rc, err) == (130, "imbal-estimators: interrupted\n")


def test_after_start_up_ctrl_c_is_a_keyboard_interrupt_again():
    from imbal_estimators.utils import startup

    previous = signal.signal(signal.SIGINT, startup._leave)
    try:
        startup.end_of_start()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
