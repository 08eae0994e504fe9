"""The web app: `python app.py` serves it on 127.0.0.1:7860; `gradio app.py` reloads it while you edit."""
from assistant.cli import report_errors
from assistant.config import Settings
from assistant.ui import build_demo, serve

settings = Settings.from_env()
demo = build_demo(settings)

if __name__ == "__main__":
    raise SystemExit(report_errors(lambda: serve(settings, demo) or 0))
