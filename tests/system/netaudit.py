"""Run a Python entry point with an audit hook that logs its name lookups, connections and child processes.

    python tests/system/netaudit.py LOG -m assistant serve ...     (like python -m assistant serve ...)
    python tests/system/netaudit.py LOG app.py ...                  (like python app.py ...)

The hook is installed before the entry point imports anything, and sees every thread. Each line of LOG is
JSON, [event, detail]; the first is ["audit", pid]. Every lookup, connect and datagram made through
Python's socket module is logged (httpx, requests, urllib, huggingface_hub and Gradio all use it), and so is
every child process, which the hook could not follow. `outside_calls(LOG)` lists what left the machine, or may
have: every child process but Tesseract's, the OCR engine, whose arguments show it reads no URL.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import runpy
import sys
import threading
from pathlib import Path

SOCKET_EVENTS = {"socket.connect", "socket.sendto", "socket.sendmsg"}  # detail: the address
LOOKUP_EVENTS = {"socket.getaddrinfo", "socket.gethostbyname"}  # detail: [host, port]
PROCESS_EVENTS = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn"}
LOCAL_NAMES = {None, "", "localhost"}


def install(log_path: str) -> None:
    log = open(log_path, "a", buffering=1)
    lock = threading.Lock()
    log.write(json.dumps(["audit", os.getpid()]) + "\n")

    def hook(event: str, args: tuple) -> None:
        if event in SOCKET_EVENTS:
            detail = args[1]  # args[0] is the socket
        elif event in LOOKUP_EVENTS or event in PROCESS_EVENTS:
            detail = args[:2]
        else:
            return
        with lock:
            log.write(json.dumps([event, detail], default=repr) + "\n")

    sys.addaudithook(hook)


def is_local(event: str, detail) -> bool:
    """True for loopback addresses, unix sockets and the kernel, and Tesseract reading no URL; any other child
    process counts as outside."""
    if event == "audit":
        return True
    if event in PROCESS_EVENTS:
        return is_tesseract_offline(detail)
    if event not in SOCKET_EVENTS | LOOKUP_EVENTS:
        return False
    if detail is None or isinstance(detail, str):  # a connected socket's send, or a unix socket's path
        return True
    host = detail[0]
    if host in LOCAL_NAMES or isinstance(host, int):  # an int: a netlink (pid, groups) address
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except (AttributeError, ValueError):  # a host name other than localhost
        return False


def is_tesseract_offline(detail) -> bool:
    """Tesseract as the assistant starts it, and only so: `--list-langs`, or the image on stdin and the text on
    stdout (`stdin stdout -l <langs> [--dpi N]`). Tesseract is built with libcurl and fetches an input named by a
    URL, or listed in a file of inputs, so any other arguments make the call an outside one."""
    program, arguments = detail[0], [str(arg) for arg in detail[1]]
    if os.path.basename(str(program)) != "tesseract":
        return False
    rest = arguments[1:]
    if rest == ["--list-langs"]:
        return True
    if rest[:3] != ["stdin", "stdout", "-l"] or len(rest) < 4 or not re.fullmatch(r"[\w+/]+", rest[3]):
        return False
    return rest[4:] == [] or (len(rest) == 6 and rest[4] == "--dpi" and rest[5].isdigit())


def read_log(log_path: Path) -> list[tuple[str, object]]:
    return [tuple(json.loads(line)) for line in log_path.read_text().splitlines()]


def outside_calls(log_path: Path) -> list[tuple[str, object]]:
    return [(event, detail) for event, detail in read_log(log_path) if not is_local(event, detail)]


def main() -> None:
    log, *command = sys.argv[1:]
    install(log)
    if command[0] == "-m":
        sys.path[0] = ""  # as `python -m` does: the current folder, not tests/system/
        sys.argv = [command[1], *command[2:]]
        runpy.run_module(command[1], run_name="__main__", alter_sys=True)
    else:
        sys.path[0] = os.path.dirname(os.path.abspath(command[0]))  # as `python app.py` does
        sys.argv = command
        runpy.run_path(command[0], run_name="__main__")


if __name__ == "__main__":
    main()
