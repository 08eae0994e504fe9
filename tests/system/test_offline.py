"""No outside calls: the offline switches are on by default, and the audit hook that proves it sees what it must.

The whole server (start-up, index build, model load, the page, the chat and the API) is watched by the same
hook in tests/system/test_proxy.py."""

import os
import subprocess
import sys
import time
from pathlib import Path

from assistant import OFFLINE_DEFAULTS
from tests.helpers import free_port
from tests.system.netaudit import outside_calls, read_log

NETAUDIT = Path(__file__).with_name("netaudit.py")


def product_env() -> dict[str, str]:
    """This environment without the offline switches, so that the product must set them itself."""
    return {k: v for k, v in os.environ.items() if k not in OFFLINE_DEFAULTS}


def test_the_audit_hook_reports_outside_addresses_and_child_processes_but_not_loopback(tmp_path):
    tesseract = tmp_path / "tesseract"  # stands in for the OCR engine: the hook reads its arguments only
    tesseract.write_text("#!/bin/sh\n")
    tesseract.chmod(0o755)
    script = tmp_path / "calls.py"
    script.write_text(
        "import socket, subprocess\n"
        "for host in ('127.0.0.1', '::1', '192.0.2.1'):\n"  # UDP connect sends nothing; 192.0.2.1 is TEST-NET-1
        "    family = socket.AF_INET6 if ':' in host else socket.AF_INET\n"
        "    try: socket.socket(family, socket.SOCK_DGRAM).connect((host, 9))\n"
        "    except OSError: pass\n"
        "socket.getaddrinfo('localhost', 80); socket.getaddrinfo('192.0.2.2', 80)\n"  # numeric: no DNS query
        "subprocess.run(['true'])\n"
        f"subprocess.run([{str(tesseract)!r}, 'stdin', 'stdout', '-l', 'eng'])\n"  # OCR: local
        f"subprocess.run([{str(tesseract)!r}, 'stdin', 'stdout', '-l', 'deu+fra', '--dpi', '300'])\n"
        f"subprocess.run([{str(tesseract)!r}, '--list-langs'])\n"
        f"subprocess.run([{str(tesseract)!r}, 'http://192.0.2.3/scan.png', 'stdout'])\n"  # Tesseract fetching a URL
        f"subprocess.run([{str(tesseract)!r}, 'inputs.txt', 'stdout', '-l', 'eng'])\n"  # a list of inputs, maybe URLs
    )
    log = tmp_path / "net.log"
    subprocess.run([sys.executable, str(NETAUDIT), str(log), str(script)], check=True, timeout=60)
    assert read_log(log)[0][0] == "audit"
    assert outside_calls(log) == [
        ("socket.connect", ["192.0.2.1", 9]),
        ("socket.getaddrinfo", ["192.0.2.2", 80]),
        ("subprocess.Popen", ["true", ["true"]]),
        ("subprocess.Popen", [str(tesseract), [str(tesseract), "http://192.0.2.3/scan.png", "stdout"]]),
        ("subprocess.Popen", [str(tesseract), [str(tesseract), "inputs.txt", "stdout", "-l", "eng"]]),
    ]


def test_serve_with_a_model_that_is_not_installed_fails_fast_without_asking_the_hub(tmp_path):
    # huggingface_hub reads HF_HUB_OFFLINE when first imported, and the server imports Gradio, which imports
    # it, before the model code: set later, the switch came too late and this asked huggingface.co 25 times.
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "note.txt").write_text("Delegates from Oman arrived on Tuesday.\n")
    log = tmp_path / "net.log"
    start = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            str(NETAUDIT),
            str(log),
            "-m",
            "assistant",
            "serve",
            "--port",
            str(free_port()),
            "--model",
            "no-such-org/no-such-model",
        ],
        cwd=tmp_path,
        env=product_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 1 and "cannot load embedding model 'no-such-org/no-such-model'" in done.stderr
    assert outside_calls(log) == []
    assert time.monotonic() - start < 60
