"""Running SMcli: the command line, the password, SMcli's exit codes and error lines.

``SMcli ADDR_A ADDR_B -S -c "cmd; cmd;" [-p PASSWORD]``: both controllers are given, so SMcli
reaches the subsystem through whichever answers. A failure is one line naming the pool, with
SMcli's own error code and text (``Error 1002 - The operation cannot complete because ...``).
The password goes on SMcli's command line (SMcli has no other way to take it); it is never
put in a message or a record.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Sequence

from encompass_core import rundir
from encompass_core.errors import DriverError

#: SMcli's exit statuses the driver tells apart (DS Storage Manager CLI guide, exit status table).
EXIT_ERROR = 1
EXIT_NO_SUBSYSTEM = 4
_UNREACHABLE = {EXIT_NO_SUBSYSTEM, 5, 6, 7, 11, 14}
_ERROR_LINE = re.compile(r"^\s*Error\s+(\d+)\s*-\s*(.+?)\s*$", re.MULTILINE)
_LABEL = re.compile(r"^[A-Za-z0-9_#-]{1,30}$")


class SmcliError(DriverError):
    """A script command the subsystem refused: its ``code`` and ``text`` as SMcli said them."""

    def __init__(self, message: str, code: int | None, text: str) -> None:
        super().__init__(message)
        self.code = code
        self.text = text


def quote(label: str) -> str:
    """A label in a script (``"web01_0"``); labels are checked first, so no quoting games."""
    if not _LABEL.match(label):
        raise ValueError(f"not a DS4000 label: {label!r}")
    return f'"{label}"'


class Smcli:
    """SMcli for one pool's subsystem."""

    def __init__(self, pool: str, executable: str, controllers: Sequence[str],
                 password: Callable[[], str | None], timeout: float) -> None:
        self.pool = pool
        self.executable = executable
        self.controllers = list(controllers)
        self._password = password
        self.timeout = timeout

    def _path(self) -> str:
        found = shutil.which(self.executable)
        if found is None:
            raise DriverError(f"pool '{self.pool}': SMcli not found ({self.executable}); install IBM DS "
                              "Storage Manager's SMcli or set smcli = \"/path/to/SMcli\" in its table")
        return found

    def run(self, *commands: str) -> str:
        """Run script commands (each ends with ``;``) in one SMcli call; return its output."""
        script = " ".join(commands)
        argv = [self._path(), *self.controllers, "-S", "-c", script]
        password = self._password()
        if password:
            argv += ["-p", password]
        done = rundir.run(argv, f"SMcli for pool '{self.pool}'", self.timeout,
                          f"[pools.{self.pool}] timeout")
        output = done.stdout.decode("utf-8", "replace") + done.stderr.decode("utf-8", "replace")
        if done.returncode == 0:
            return output
        what = ", ".join(dict.fromkeys(" ".join(c.split()[:2]).rstrip(";") for c in commands))
        error = _ERROR_LINE.search(output)
        if error is not None:
            code, text = int(error.group(1)), error.group(2)
            raise SmcliError(f"pool '{self.pool}': SMcli refused '{what}': Error {code} - {text}",
                             code, text)
        said = _last_line(output)
        if done.returncode in _UNREACHABLE:
            raise DriverError(f"pool '{self.pool}': cannot reach the DS4xxx controllers at "
                              f"{', '.join(self.controllers)} (SMcli exit {done.returncode}: {said}); "
                              "check the addresses in 'controllers' and that the subsystem is up")
        raise SmcliError(f"pool '{self.pool}': SMcli failed on '{what}' (exit {done.returncode}): {said}",
                         None, said)


def _last_line(output: str) -> str:
    """The line of SMcli's output that says what went wrong (not its closing 'SMcli failed.')."""
    lines = [line.strip() for line in output.splitlines()
             if line.strip() and line.strip() not in ("SMcli failed.", "Script execution halted.")]
    return lines[-1] if lines else "no output"
