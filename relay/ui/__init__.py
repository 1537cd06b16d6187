"""The Relay web page: `build_demo(engine, store)` returns the gr.Blocks (story list, story, lab, API)."""

from relay.ui.demo import build_demo

__all__ = ["build_demo"]
