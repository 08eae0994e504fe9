"""The web app: `python app.py` serves the chat and the API on 127.0.0.1:7860; `gradio app.py` reloads the chat."""

import sys

from assistant.cli import report_errors
from assistant.config import Settings
from assistant.errors import AssistantError
from assistant.serve import serve
from assistant.serve.ui import build_demo
from assistant.service import Assistant

try:
    assistant = Assistant(Settings.from_env())
    demo = build_demo(assistant=assistant)
except AssistantError as err:  # a bad ASSISTANT_* value or examples file: one line, no traceback
    sys.exit(f"assistant: {err}")

if __name__ == "__main__":
    raise SystemExit(report_errors(lambda: serve(assistant, demo) or 0))
