"""Offline document Q&A: passages with sources from your own files."""

import os

# No outside calls. huggingface_hub (under transformers, sentence-transformers and Gradio) reads its switches
# once, when it is first imported, so they are set here, before any module of the package imports it.
# A value already in the environment wins: HF_HUB_OFFLINE=0 lets a connected machine download a model.
OFFLINE_DEFAULTS = {
    "HF_HUB_OFFLINE": "1",  # never download a model, never ask the Hub; also turns off the Hub's telemetry
    "HF_HUB_DISABLE_TELEMETRY": "1",  # and keep telemetry off if someone turns downloads back on
    "GRADIO_ANALYTICS_ENABLED": "False",  # no usage analytics and no version check from Gradio
}
for _name, _value in OFFLINE_DEFAULTS.items():
    os.environ.setdefault(_name, _value)
