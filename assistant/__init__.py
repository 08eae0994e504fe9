"""Offline document Q&A: passages with sources from your own files."""
